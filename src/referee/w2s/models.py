"""The model ladder: classifiers of increasing strength, all trained by the same loop and losses.

A rung is one of

- ``bow``: a bag-of-words (TF-IDF of words and word pairs) logistic model, the weakest supervisor;
- ``backbone``: a frozen HF model with a linear (or small MLP) head on the hidden states of one layer,
  pooled over tokens (the features, computed once, come from ``features.py``);
- ``lora``: a HF backbone fine-tuned with LoRA adapters together with its linear head (for GPUs; on a
  CPU only tiny models are practical).

Every rung trains with a loss from ``losses.py`` on target distributions (weak soft labels or ground
truth one-hot), so the auxiliary confidence loss applies to every student, the bag of words included.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from pydantic import Field

from referee import progress
from referee.config import StrictModel, validate
from referee.w2s.features import Features, base_model, encode, hidden_at, params_up_to, pool


# ---- settings ----------------------------------------------------------------------------------
class ClassifierTrainSettings(StrictModel):
    """How a rung's classifier (a head, or a LoRA model with its head) is trained; a rung may override any
    of these. Not ``referee.trainers.TrainSettings``: that one drives TRL on chat models."""

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
    train: dict = {}  # overrides of ClassifierTrainSettings for this rung

    def train_settings(self, base: ClassifierTrainSettings, where: str) -> ClassifierTrainSettings:
        return validate(ClassifierTrainSettings, {**base.model_dump(), **self.train},
                        f"{where}: rung '{self.name}' train")


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
               loss_fn, settings: ClassifierTrainSettings, seed: int, desc: str = "train") -> list[float]:
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
    job is a fresh head. ``model`` is the backbone the features came from (None for a bag of words)."""

    def __init__(self, config: RungConfig, features: Features, size: int, device: str = "cpu", model=None):
        self.config = config
        self.name = config.name
        self.features = features
        self.size = size
        self.device = device
        self.model = model

    def fit_predict(self, train_idx: Sequence[int], targets: np.ndarray, loss_fn, settings: ClassifierTrainSettings,
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
    """A HF backbone (``model``, a referee HFModel) fine-tuned with LoRA adapters and a linear head on
    pooled hidden states."""

    def __init__(self, config: RungConfig, model, texts: Sequence[str], layer: int):
        self.config = config
        self.name = config.name
        self.model = model
        self.texts = texts
        self.layer = layer
        self.size = params_up_to(base_model(model.model), layer)

    def fit_predict(self, train_idx, targets, loss_fn, settings, seed, predict_idx, desc="train"):
        torch.manual_seed(seed)
        backbone = base_model(self.model.model)  # LoRA freezes these weights: every job starts from them
        peft_model = self._with_adapters(backbone)
        dim = backbone.config.hidden_size
        head = Head(dim, targets.shape[1], self.config.head, self.config.hidden,
                    torch.zeros(dim), torch.ones(dim)).to(next(backbone.parameters()).device)
        train_idx = np.asarray(train_idx)

        def logits_of(idx, train: bool):
            enc = encode(self.model, [self.texts[i] for i in idx], self.config.max_length)
            peft_model.train(train)
            states = hidden_at(peft_model, enc["input_ids"], enc["attention_mask"], [self.layer])
            return head(pool(states[self.layer].float(), enc["attention_mask"], self.config.pooling))

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

    def _with_adapters(self, backbone):
        """Fresh LoRA adapters on the attention projections (every linear layer when it has none of them)."""
        from peft import LoraConfig, get_peft_model

        attention = {"q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "query", "value"}
        modules = sorted({n.rsplit(".", 1)[-1] for n, m in backbone.named_modules()
                          if isinstance(m, torch.nn.Linear)} & attention)
        return get_peft_model(backbone, LoraConfig(r=self.config.lora_r, lora_alpha=self.config.lora_alpha,
                                                   target_modules=modules or "all-linear", lora_dropout=0.0))
