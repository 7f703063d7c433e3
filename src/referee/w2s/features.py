"""Texts as fixed features for the ladder's classifiers: a bag of words, or a frozen backbone's hidden
states at chosen layers, pooled over tokens.

Backbone features are computed once per backbone for every layer the ladder asks for, in one pass per
batch that stops at the deepest of them, and cached in the run folder: training a head on them then
takes seconds on a CPU, and a ladder of depths of one model costs a single pass over the texts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from referee import ledger, progress
from referee.errors import RefereeError


class Features:
    """Rows of a feature matrix, dense (numpy) or sparse (scipy CSR), given to torch batch by batch."""

    def __init__(self, matrix):
        self.matrix = matrix
        self.dim = matrix.shape[1]
        self.sparse = not isinstance(matrix, np.ndarray)

    def rows(self, idx: Sequence[int]) -> torch.Tensor:
        block = self.matrix[np.asarray(idx)]
        if self.sparse:
            block = block.toarray()
        return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))


_TOKEN = re.compile(r"[a-z0-9']+")


def _ngrams(text: str, n: int) -> list[str]:
    words = _TOKEN.findall(text.lower())
    grams = list(words)
    for k in range(2, n + 1):
        grams += [" ".join(words[i:i + k]) for i in range(len(words) - k + 1)]
    return grams


def bow_features(texts: Sequence[str], fit_on: Sequence[int], max_features: int, ngrams: int,
                 min_df: int) -> tuple[Features, int]:
    """TF-IDF of word n-grams, L2-normalised rows; the vocabulary and idf come from ``fit_on`` only
    (label-free, but still only texts the models may train on). Returns features and vocabulary size."""
    from scipy.sparse import csr_matrix

    grams = [_ngrams(t, ngrams) for t in texts]
    df = Counter(g for i in fit_on for g in set(grams[i]))
    kept = sorted((g for g, c in df.items() if c >= min_df), key=lambda g: (-df[g], g))[:max_features]
    if not kept:  # tiny data: keep every n-gram rather than none
        kept = sorted(df, key=lambda g: (-df[g], g))[:max_features]
    vocab = {g: j for j, g in enumerate(kept)}
    n_docs = len(fit_on)
    idf = np.array([math.log((1 + n_docs) / (1 + df[g])) + 1.0 for g in kept], dtype=np.float32)
    rows, cols, vals = [], [], []
    for i, gs in enumerate(grams):
        counts = Counter(vocab[g] for g in gs if g in vocab)
        if not counts:
            continue
        js = np.fromiter(counts.keys(), dtype=np.int64)
        v = np.fromiter(counts.values(), dtype=np.float32) * idf[js]
        v /= np.linalg.norm(v)
        rows += [i] * len(js)
        cols += js.tolist()
        vals += v.tolist()
    matrix = csr_matrix((vals, (rows, cols)), shape=(len(texts), len(kept)), dtype=np.float32)
    return Features(matrix), len(kept)


def _texts_key(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool (batch, tokens, dim) over real tokens: their mean, or the last one (either padding side).

    Texts are padded on the right, so real tokens keep their positions and never attend to padding:
    a text's features do not depend on its batch-mates."""
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (mask * positions).argmax(-1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def base_model(causal_lm):
    """The transformer under a causal LM head (no vocabulary projection: features need none)."""
    return getattr(causal_lm, "base_model", causal_lm)


def n_blocks(model) -> int:
    config = model.config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise ValueError(f"cannot tell how many layers {type(model).__name__} has")


def resolve_layer(layer: int, blocks: int, where: str) -> int:
    """A config's layer (negative counts from the last) as 0..blocks, or an error naming the setting."""
    resolved = blocks + 1 + layer if layer < 0 else layer
    if not 0 <= resolved <= blocks:
        raise RefereeError(f"{where}: setting 'layer' is {layer} but the model has {blocks} layers "
                           f"(use 0..{blocks}, or negative counting from the last)")
    return resolved


def params_up_to(model, layer: int) -> int:
    """Parameters a classifier at ``layer`` uses: everything outside the numbered blocks, plus blocks
    1..layer. The x axis of the ladder plot."""
    pattern = re.compile(r"(?:^|\.)(?:layers|h|layer|blocks)\.(\d+)\.")
    total = 0
    for name, p in model.named_parameters():
        m = pattern.search(name)
        if m is None or int(m.group(1)) < layer:
            total += p.numel()
    return total


class _Enough(Exception):
    """Raised by a hook once the deepest wanted layer has run: the layers above it are never computed."""


def _blocks(model) -> torch.nn.ModuleList:
    blocks = n_blocks(model)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == blocks:
            return module
    raise ValueError(f"cannot find the {blocks} transformer blocks of {type(model).__name__}")


def hidden_at(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[int]) -> dict:
    """Hidden states (batch, tokens, dim) entering the model's blocks (layer 0) or leaving block k
    (layer k), for each wanted layer, running the model only as deep as the deepest one.

    The states are the raw residual stream (no final norm), the same kind at every depth.
    """
    blocks = _blocks(model)
    wanted, deepest, states, hooks = set(layers), max(layers), {}, []

    def grab(layer):
        def hook(module, args, kwargs, output=None):
            if output is None:  # the pre-hook of block 0: its input is layer 0
                tensor = args[0] if args else kwargs["hidden_states"]
            else:
                tensor = output[0] if isinstance(output, tuple) else output
            states[layer] = tensor
            if layer == deepest:
                raise _Enough
        return hook

    if 0 in wanted:
        hooks.append(blocks[0].register_forward_pre_hook(grab(0), with_kwargs=True))
    for k in sorted(wanted - {0}):
        hooks.append(blocks[k - 1].register_forward_hook(grab(k), with_kwargs=True))
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _Enough:
        pass
    finally:
        for h in hooks:
            h.remove()
    return states


def backbone_features(hf, texts: Sequence[str], layers: Sequence[int], pooling: str, max_length: int,
                      batch_size: int, cache_dir: Path | None = None) -> dict[int, np.ndarray]:
    """Pooled hidden states of every text at each of ``layers`` (0..blocks), in one pass per batch that
    stops at the deepest layer asked for.

    ``hf`` is a referee HFModel. Results are stored under ``cache_dir`` keyed by the model's fingerprint,
    the texts and the pooling, so a resumed or repeated run skips the pass.
    """
    layers = sorted(set(layers))
    key = hashlib.sha256(json.dumps([hf.fingerprint, _texts_key(texts), pooling, max_length]).encode()).hexdigest()[:20]
    paths = {L: cache_dir / f"{key}-L{L}.npy" for L in layers} if cache_dir else {}
    if paths and all(p.exists() for p in paths.values()):
        return {L: np.load(p) for L, p in paths.items()}
    out = _pooled_states(hf, texts, layers, pooling, max_length, batch_size)
    for L, p in paths.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp.npy")
        np.save(tmp, out[L])
        tmp.replace(p)
    return out


@torch.inference_mode()
def _pooled_states(hf, texts: Sequence[str], layers: list[int], pooling: str, max_length: int,
                   batch_size: int) -> dict[int, np.ndarray]:
    model = base_model(hf.model).eval()
    out = {L: np.zeros((len(texts), model.config.hidden_size), dtype=np.float32) for L in layers}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    with progress.bar(total=len(texts), desc=f"features [{hf.spec}]", unit="text") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = encode(hf, [texts[i] for i in idx], max_length)
            t0 = time.perf_counter()
            states = hidden_at(model, enc["input_ids"], enc["attention_mask"], layers)
            for L in layers:
                out[L][idx] = pool(states[L].float(), enc["attention_mask"], pooling).cpu().numpy()
            ledger.record(hf.spec, calls=len(idx), prompt_tokens=int(enc["attention_mask"].sum()),
                          seconds=time.perf_counter() - t0)
            bar.update(len(idx))
    return out


def encode(hf, texts: Sequence[str], max_length: int):
    """Tokenise texts padded on the right (see ``pool``), truncated to ``max_length``, on the model's device."""
    tok = hf.tokenizer
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    device = next(hf.model.parameters()).device
    return tok(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_length,
               padding_side="right").to(device)
