"""Trained checkpoints: a LoRA adapter plus the spec of the model it was trained on.

A checkpoint folder holds the peft adapter files, the tokenizer, and ``referee-checkpoint.json``
naming its base spec. The base may itself be a checkpoint (M2 trained from M1 trained from M0), so a
policy is rebuilt by loading the chain from the bottom and merging each adapter in turn. Every such
folder is again a model: ``hf:RUN/checkpoints/m1`` works wherever a spec does.
"""

from __future__ import annotations

import json
from pathlib import Path

from referee.errors import RefereeError

MARKER = "referee-checkpoint.json"


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / MARKER).exists()


def read_marker(path: str | Path) -> dict:
    try:
        return json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError) as e:
        raise RefereeError(f"{Path(path) / MARKER}: unreadable checkpoint marker ({e})") from None


def write_marker(path: str | Path, base_spec: str, kind: str, **extra) -> None:
    (Path(path) / MARKER).write_text(json.dumps({"base": base_spec, "kind": kind, **extra}, indent=2))


def steady_adapter_config(folder: str | Path) -> None:
    """Write the adapter's ``target_modules`` sorted. peft resolves ``all-linear`` to a set and writes it in
    the set's order, which follows Python's hash seed, so two runs of one config would save different bytes
    and their checkpoints would fingerprint differently (every stage after them recomputing)."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
        path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def base_folder_and_adapters(spec: str) -> tuple[str, list[str], str | None]:
    """Resolve a spec to (base weights folder or hub id, adapters to merge bottom-up, base fingerprint)."""
    from referee.models import parse_spec

    kind, target, options = parse_spec(spec)
    if kind == "openai":
        raise RefereeError(f"{spec}: only embedded or hf: models can be trained or stacked with adapters")
    adapters = [options["adapter"]] if "adapter" in options else []
    if kind == "embedded":
        from referee.models.embedded import ensure_converted

        folder, fingerprint = ensure_converted()
        return str(folder), adapters, fingerprint
    if is_checkpoint(target):
        marker = read_marker(target)
        if marker.get("full"):  # a full fine-tune: its own weights, nothing below to merge
            return target, adapters, None
        base, below, fp = base_folder_and_adapters(marker["base"])
        return base, below + [target] + adapters, fp
    return target, adapters, None


def load_merged(spec: str, dtype=None):
    """The spec's model as one plain transformers model (adapters merged) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, adapters, _ = base_folder_and_adapters(spec)
    tokenizer = AutoTokenizer.from_pretrained(adapters[-1] if adapters and _has_tokenizer(adapters[-1]) else base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype) if dtype else AutoModelForCausalLM.from_pretrained(base)
    for adapter in adapters:
        from peft import PeftModel

        if not Path(adapter, "adapter_config.json").exists():
            raise RefereeError(f"adapter {adapter}: no adapter_config.json there")
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model, tokenizer


def _has_tokenizer(folder: str) -> bool:
    return (Path(folder) / "tokenizer_config.json").exists()
