"""A LoRA checkpoint's bytes must not depend on Python's hash seed: peft writes ``target_modules`` (a set)
in set order, so without ``steady_adapter_config`` two runs of one config fingerprint M1 differently and
recompute every stage after it."""

import subprocess
import sys

from referee.models.checkpoints import steady_adapter_config

SAVE = """
import sys
from peft import LoraConfig
LoraConfig(target_modules={"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
           ).save_pretrained(sys.argv[1])
"""


def _saved(tmp_path, seed: str):
    folder = tmp_path / f"seed{seed}"
    subprocess.run([sys.executable, "-c", SAVE, str(folder)], check=True, env={"PYTHONHASHSEED": seed,
                                                                             "PATH": "/usr/bin:/bin"})
    return folder


def test_two_hash_seeds_save_the_same_adapter_config(tmp_path):
    folders = [_saved(tmp_path, seed) for seed in ("1", "2", "3")]
    raw = {(f / "adapter_config.json").read_bytes() for f in folders}
    assert len(raw) > 1  # peft's own file follows the hash seed: the problem is real
    for f in folders:
        steady_adapter_config(f)
    steady = {(f / "adapter_config.json").read_bytes() for f in folders}
    assert len(steady) == 1
    steady_adapter_config(folders[0])  # idempotent
    assert (folders[0] / "adapter_config.json").read_bytes() in steady


def test_a_folder_without_an_adapter_is_left_alone(tmp_path):
    steady_adapter_config(tmp_path)
    assert list(tmp_path.iterdir()) == []
