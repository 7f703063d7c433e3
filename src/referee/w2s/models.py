"""The model ladder: classifiers of increasing strength, all trained by the same loop and losses.

A rung is one of

- ``bow``: a bag-of-words (TF-IDF of words and word pairs) logistic model, the weakest supervisor;
- ``backbone``: a frozen HF model with a linear (or small MLP) head on the hidden states of one layer,
  pooled over tokens. Features are computed once per backbone for every layer the ladder asks for,
  and cached in the run folder, so training a head takes seconds on a CPU and a ladder of depths of
  one model (say layers 4, 12 and 30 of SmolLM2) costs a single pass over the texts;
- ``lora``: a HF backbone fine-tuned with LoRA adapters together with its linear head (for GPUs; on a
  CPU only tiny models are practical).

Every rung trains with a loss from ``losses.py`` on target distributions (weak soft labels or ground
truth one-hot), so the auxiliary confidence loss applies to every student, the bag of words included.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from pydantic import Field

from referee import ledger, progress
from referee.config import StrictModel


# ---- settings ----------------------------------------------------------------------------------
class TrainSettings(StrictModel):
    """How a head (or a LoRA model) is trained; a rung may override any of these."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)


class RungConfig(StrictModel):
    name: str
    kind: Literal["bow", "backbone", "lora"]
    model: str = "embedded"  # a model spec (backbone and lora): embedded, hf:PATH_OR_HUB_ID
    layer: int = -1  # hidden layer to pool: 0 = embeddings, k = after block k, -1 = last
    pooling: Literal["mean", "last"] = "mean"
    max_length: int = Field(256, ge=8)
    feature_batch_size: int = Field(32, ge=1)
    head: Literal["linear", "mlp"] = "linear"
    hidden: int = Field(256, ge=1)  # width of the mlp head
    # bag of words
    max_features: int = Field(20000, ge=10)
    ngrams: int = Field(2, ge=1, le=3)
    min_df: int = Field(2, ge=1)
    # lora
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    train: dict = {}  # overrides of TrainSettings for this rung

    def train_settings(self, base: TrainSettings, where: str) -> TrainSettings:
        from referee.config import validate

        return validate(TrainSettings, {**base.model_dump(), **self.train}, f"{where}: rung '{self.name}' train")


# ---- features ----------------------------------------------------------------------------------
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


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
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
    from referee.errors import RefereeError

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


@torch.inference_mode()
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
    model = base_model(hf.model).eval()
    device = next(model.parameters()).device
    tok = hf.tokenizer
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    out = {L: np.zeros((len(texts), model.config.hidden_size), dtype=np.float32) for L in layers}
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    with progress.bar(total=len(texts), desc=f"features [{hf.spec}]", unit="text") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                      max_length=max_length, padding_side="right").to(device)
            t0 = time.perf_counter()
            states = hidden_at(model, enc["input_ids"], enc["attention_mask"], layers)
            for L in layers:
                out[L][idx] = _pool(states[L].float(), enc["attention_mask"], pooling).cpu().numpy()
            ledger.record(hf.spec, calls=len(idx), prompt_tokens=int(enc["attention_mask"].sum()),
                          seconds=time.perf_counter() - t0)
            bar.update(len(idx))
    if paths:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for L, p in paths.items():
            tmp = p.with_suffix(".tmp.npy")
            np.save(tmp, out[L])
            tmp.replace(p)
    return out


# ---- heads and the training loop ---------------------------------------------------------------
class Head(torch.nn.Module):
    """A linear (or one-hidden-layer) classifier on standardised features."""

    def __init__(self, dim: int, n_classes: int, kind: str, hidden: int, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        if kind == "linear":
            self.net = torch.nn.Linear(dim, n_classes)
        else:
            self.net = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(),
                                           torch.nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def train_loop(forward: Callable[[np.ndarray], torch.Tensor], params, n_items: int, targets: np.ndarray,
               loss_fn, settings: TrainSettings, seed: int, desc: str = "train") -> list[float]:
    """Minibatch AdamW over ``n_items`` items (positions 0..n_items-1 of ``targets``); ``forward`` maps
    positions to logits. The loss sees the fraction of steps done (for the aux loss's warm-up).
    Returns the mean loss of each epoch."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW([p for p in params if p.requires_grad], lr=settings.lr,
                            weight_decay=settings.weight_decay)
    bs = min(settings.batch_size, n_items)
    steps_per_epoch = max(1, n_items // bs)  # drop the ragged end: a tiny batch makes a poor quantile
    total = settings.epochs * steps_per_epoch
    target_t = torch.as_tensor(targets, dtype=torch.float32)
    history, step = [], 0
    with progress.bar(total=total, desc=desc, unit="step") as bar:
        for _ in range(settings.epochs):
            perm = rng.permutation(n_items)
            losses = []
            for b in range(steps_per_epoch):
                pos = perm[b * bs:(b + 1) * bs]
                logits = forward(pos)
                loss = loss_fn(logits, target_t[pos].to(logits.device), step / total)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                step += 1
                bar.update(1)
            history.append(float(np.mean(losses)))
    return history


@contextmanager
def one_thread():
    """Run tiny-matrix training on one thread: with several, thread start-up and spinning cost more
    than the arithmetic (measured here: 30x slower with 2 threads on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FeatureRung:
    """A rung whose texts become fixed features once (bag of words, frozen backbone); each training
    job is a fresh head."""

    def __init__(self, config: RungConfig, features: Features, size: int, device: str = "cpu"):
        self.config = config
        self.name = config.name
        self.features = features
        self.size = size
        self.device = device

    def fit_predict(self, train_idx: Sequence[int], targets: np.ndarray, loss_fn, settings: TrainSettings,
                    seed: int, predict_idx: Sequence[int], desc: str = "train") -> tuple[np.ndarray, list[float]]:
        """Train a new head on items ``train_idx`` toward ``targets`` (rows are distributions); return
        class probabilities of items ``predict_idx`` and the loss per epoch."""
        torch.manual_seed(seed)
        train_idx = np.asarray(train_idx)
        if self.features.sparse:  # tf-idf rows are already on one scale
            mean = torch.zeros(self.features.dim)
            std = torch.ones(self.features.dim)
        else:
            x = self.features.matrix[train_idx]
            mean = torch.from_numpy(x.mean(0))
            std = torch.from_numpy(x.std(0)).clamp(min=1e-6)
        head = Head(self.features.dim, targets.shape[1], self.config.head, self.config.hidden, mean, std)
        head = head.to(self.device)
        with one_thread() if self.device == "cpu" else nullcontext():
            return self._fit_predict(head, train_idx, targets, loss_fn, settings, seed, predict_idx, desc)

    def _fit_predict(self, head, train_idx, targets, loss_fn, settings, seed, predict_idx, desc):
        history = train_loop(lambda pos: head(self.features.rows(train_idx[pos]).to(self.device)),
                             list(head.parameters()), len(train_idx), targets, loss_fn, settings, seed, desc)
        head.eval()
        with torch.no_grad():
            probs = [torch.softmax(head(self.features.rows(chunk).to(self.device)), -1).cpu().numpy()
                     for chunk in np.array_split(np.asarray(predict_idx), max(1, len(predict_idx) // 1024 + 1))
                     if len(chunk)]
        return np.concatenate(probs), history


class LoraRung:
    """A HF backbone fine-tuned with LoRA adapters and a linear head on pooled hidden states."""

    def __init__(self, config: RungConfig, hf, texts: Sequence[str], layer: int):
        self.config = config
        self.name = config.name
        self.hf = hf
        self.texts = texts
        self.layer = layer
        self.size = params_up_to(base_model(hf.model), layer)

    def _encode(self, idx):
        tok = self.hf.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        device = next(self.hf.model.parameters()).device
        return tok([self.texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                   max_length=self.config.max_length, padding_side="right").to(device)

    def fit_predict(self, train_idx, targets, loss_fn, settings, seed, predict_idx, desc="train"):
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(seed)
        backbone = base_model(self.hf.model)  # LoRA freezes these weights: every job starts from them
        attention = {"q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "query", "value"}
        modules = sorted({n.rsplit(".", 1)[-1] for n, m in backbone.named_modules()
                          if isinstance(m, torch.nn.Linear)} & attention)
        peft_model = get_peft_model(backbone, LoraConfig(r=self.config.lora_r, lora_alpha=self.config.lora_alpha,
                                                         target_modules=modules or "all-linear", lora_dropout=0.0))
        device = next(backbone.parameters()).device
        dim = backbone.config.hidden_size
        head = Head(dim, targets.shape[1], self.config.head, self.config.hidden,
                    torch.zeros(dim), torch.ones(dim)).to(device)
        train_idx = np.asarray(train_idx)

        def logits_of(idx, train: bool):
            enc = self._encode(idx)
            peft_model.train(train)
            states = hidden_at(peft_model, enc["input_ids"], enc["attention_mask"], [self.layer])
            return head(_pool(states[self.layer].float(), enc["attention_mask"], self.config.pooling))

        try:
            params = [p for p in peft_model.parameters() if p.requires_grad] + list(head.parameters())
            history = train_loop(lambda pos: logits_of(train_idx[pos], True), params, len(train_idx), targets,
                                 loss_fn, settings, seed, desc)
            with torch.no_grad():
                bs = self.config.feature_batch_size
                idx = list(predict_idx)
                probs = np.concatenate([torch.softmax(logits_of(idx[s:s + bs], False), -1).float().cpu().numpy()
                                        for s in range(0, len(idx), bs)])
        finally:
            peft_model.unload()  # take the adapters out again: the next job starts clean
            backbone.eval()
        return probs, history
