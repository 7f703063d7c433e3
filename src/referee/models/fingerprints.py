"""Fingerprints of local weights: the cache key that says which numbers a model gives.

A fingerprint hashes the content of every file that changes what a model says (weights, configs, tokenizer
files, the chat template), so a model is cached by what it is, not by where it lies, and an edited file is
never answered from the cache of the old one; a file's digest is remembered per size and mtime so large
weights are read once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from referee.paths import referee_home

# Every file that changes what a model says: weights; config.json, generation_config.json, the tokenizer's
# and adapter's JSON; sentencepiece and tiktoken vocabularies; chat templates (chat_template.jinja, which a
# checkpoint saved by recent transformers holds instead of a key in tokenizer_config.json); BPE text files.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf", ".json", ".model", ".jinja", ".tiktoken")
TOKENIZER_TEXT_FILES = {"merges.txt", "vocab.txt"}


def weights_fingerprint(path: str, adapter: str | None = None) -> str:
    """A hash of the weight and config files (content), remembered per file size and mtime.

    Hub ids that are not local folders are named by their id and resolved revision.
    """
    from referee.models.checkpoints import base_folder_and_adapters, is_checkpoint

    if is_checkpoint(path):
        base, chain, base_fp = base_folder_and_adapters(f"hf:{path}")
        parts = [base_fp or (_folder_hash(base) if Path(base).is_dir() else _hub_identity(base))]
        parts += [_folder_hash(a) for a in chain]
    else:
        parts = [_folder_hash(path) if Path(path).is_dir() else _hub_identity(path)]
    if adapter:
        parts.append(_folder_hash(adapter))
    return "sha256:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


# A trained verifier's folder is also the run folder that trained it: what the run writes about itself
# (rewritten by every invocation, even one that only reads the verifier back) is not the model.
RUN_BOOKKEEPING = {"manifest.json", "ledger.json", "state.json", "metrics.json"}


def _hub_identity(model_id: str) -> str:
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(model_id, local_files_only=True)
        return _folder_hash(local)
    except Exception:  # noqa: BLE001 - not cached locally: the id itself is the best we know
        return f"hub:{model_id}"


def _folder_hash(folder: str) -> str:
    files = sorted(p for p in Path(folder).rglob("*")
                   if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name in TOKENIZER_TEXT_FILES)
                   and p.name not in RUN_BOOKKEEPING
                   and "records" not in p.relative_to(folder).parts)
    memo_path = referee_home() / "fingerprints.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    digests, changed = [], False
    for f in files:
        st = f.stat()
        mkey = f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if mkey not in memo:
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            memo[mkey] = h.hexdigest()
            changed = True
        digests.append(f"{f.relative_to(folder)}={memo[mkey]}")
    if changed:
        try:
            memo_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo_path.with_name(f"fingerprints.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(memo))
            os.replace(tmp, memo_path)
        except OSError:
            pass
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def spec_fingerprint(spec: str) -> str | None:
    """The fingerprint ``load_model(spec)`` would give a local model, from its files alone: a stage keyed on a
    model it only trains from need not load its weights. None for a served model (it has no files here)."""
    from referee.models import local_weights, parse_spec
    from referee.models.devices import pick_device, pick_dtype

    kind, target, options = parse_spec(spec)
    if kind == "openai":
        return None
    folder, fingerprint = local_weights(kind, target, options)
    fingerprint = fingerprint or weights_fingerprint(folder, options.get("adapter"))
    return with_precision(fingerprint, pick_dtype(options.get("dtype"), pick_device(options.get("device"))))


def with_precision(fingerprint: str, dtype) -> str:
    """A model's fingerprint with its precision named when it is not float32: other precisions give other
    numbers, so their calls are cached apart."""
    name = str(dtype).replace("torch.", "")
    return fingerprint if name == "float32" else f"{fingerprint}+{name}"
