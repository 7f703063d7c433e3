"""Several processes train as one: SFT started by torchrun as 2 CPU processes (gloo) follows the loss curve of
one process with the same global batch, and only the main process writes the checkpoint and talks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from referee.trainers import LoraSettings, TrainSettings, train_sft

PROMPTS = ["Say the word.", "What is the word?", "Tell me the word now.", "The word, please.", "Word?",
           "Give me the word.", "Which word?", "Your word."]
# Answers of 1 to 4 words: the processes' shards hold different numbers of loss tokens.
DEMOS = [{"prompt": p, "completion": " banana" * (1 + i % 4)} for i, p in enumerate(PROMPTS)]
STEPS = 8  # two epochs of two global batches of 4

# Each step both runs train on the same 4 examples (the sampler draws one order from the seed; the two
# processes take the first and the second half of each batch of 4), and transformers divides each process's
# summed token loss by the token count over all processes, so the gradients agree up to float summation
# order (two partial sums and an all-reduce instead of one sum, halves padded to other widths). Measured
# here: at most 2e-6 apart over the 8 steps, while a process training alone on its half (batch 2) is 0.3
# off at step 1. 1e-4 leaves room for other CPUs' float paths and still catches a wrong shard or
# unsynchronised gradients.
TOLERANCE = 1e-4

DRIVER = """
import json, sys
from referee.distributed import is_main_process, world_size
from referee.trainers import TrainSettings, train_sft

base, data, out, settings = sys.argv[1:]
rows = [json.loads(line) for line in open(data)]
spec, history = train_sft(base, rows, out, TrainSettings.model_validate_json(settings))
if is_main_process():
    with open(out + ".losses.json", "w") as f:
        json.dump({"processes": world_size(), "losses": [h["loss"] for h in history if "loss" in h]}, f)
"""


def _settings(batch_size: int) -> TrainSettings:
    return TrainSettings(learning_rate=5e-3, max_steps=STEPS, batch_size=batch_size, max_length=64,
                         lora=LoraSettings(r=8, alpha=16, dropout=0.0))


def _losses(history: list[dict]) -> list[float]:
    return [h["loss"] for h in history if "loss" in h]


def _torchrun(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """Two CPU processes on this machine; --standalone picks a free port for their rendezvous."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


def test_two_processes_follow_the_loss_curve_of_one_and_write_one_checkpoint(tiny_model_path, tmp_path):
    base = f"hf:{tiny_model_path}"
    data = tmp_path / "demos.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DEMOS))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    runs = tmp_path / "runs"
    runs.mkdir()

    r = _torchrun(driver, base, data, runs / "two", _settings(batch_size=2).model_dump_json())
    assert r.returncode == 0, r.stderr[-3000:]
    two = json.loads((runs / "two.losses.json").read_text())
    _, history = train_sft(base, DEMOS, tmp_path / "one", _settings(batch_size=4))
    one = _losses(history)

    assert two["processes"] == 2 and len(two["losses"]) == len(one) == STEPS
    gaps = [abs(a - b) for a, b in zip(two["losses"], one)]
    assert max(gaps) < TOLERANCE, (two["losses"], one)
    # What the tolerance tells apart: one process on one half of each batch.
    _, alone = train_sft(base, DEMOS, tmp_path / "alone", _settings(batch_size=2))
    assert max(abs(a - b) for a, b in zip(_losses(alone), one)) > 100 * TOLERANCE

    # One checkpoint, finished, written by one process: no tmp folder or trainer folder left behind.
    assert sorted(p.name for p in runs.iterdir()) == ["two", "two.losses.json"]
    marker = json.loads((runs / "two" / "referee-checkpoint.json").read_text())
    assert marker["base"] == base and marker["kind"] == "sft"
    assert marker["final_loss"] == pytest.approx(two["losses"][-1])
    assert (runs / "two" / "adapter_model.safetensors").exists() and not (runs / "two" / "trainer").exists()


def test_train_command_under_torchrun_speaks_once(tiny_model_path, tmp_path):
    """Every process runs `referee train sft`; the spec is printed once, the loss line said once."""
    data = tmp_path / "demos.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DEMOS[:4]))
    r = _torchrun("-m", "referee", "train", "sft", "--base", f"hf:{tiny_model_path}", "--data", data,
                  "--out", tmp_path / "sft", "--max-steps", 2, "--batch-size", 2, "--lora-r", 4, "--max-length", 64,
                  env={**os.environ, "REFEREE_QUIET": "0"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines() == [f"hf:{tmp_path / 'sft'}"]
    assert sum(line.startswith("loss ") for line in r.stderr.splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.jsonl", "sft"]


def test_reward_model_training_refuses_several_processes(tmp_path):
    """referee's own RM loop is not distributed: it says so before any run folder is made."""
    r = subprocess.run([sys.executable, "-m", "referee", "rm", "train", "--kind", "rm", "--data", tmp_path / "x.jsonl",
                        "--out", tmp_path / "rm"], capture_output=True, text=True,
                       env={**os.environ, "WORLD_SIZE": "2", "RANK": "0"})
    assert r.returncode == 2 and "reward model training runs in one process, not 2" in r.stderr, r.stderr
    assert not (tmp_path / "rm").exists()


def test_the_example_accelerate_configs_load_and_keep_what_saving_needs():
    """configs/accelerate/*.yaml are valid for the installed accelerate; ZeRO-3 and FSDP gather the weights
    to save them (else the checkpoint would be written without its weights)."""
    from accelerate.commands.config.config_args import load_config_from_file

    folder = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
    configs = {p.stem: load_config_from_file(str(p)) for p in sorted(folder.glob("*.yaml"))}
    assert {name: c.distributed_type.value for name, c in configs.items()} == {
        "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED", "fsdp": "FSDP", "multi_gpu": "MULTI_GPU"}
    assert configs["deepspeed_zero2"].deepspeed_config["zero_stage"] == 2
    assert configs["deepspeed_zero3"].deepspeed_config == {**configs["deepspeed_zero3"].deepspeed_config,
                                                           "zero_stage": 3, "zero3_save_16bit_model": True}
    assert configs["fsdp"].fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
