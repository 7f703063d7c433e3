"""One training loop for all three heads: frozen backbone (features once, then the head) or LoRA.

An ``Example`` is a few encoded sequences and a target; a loss function gets the flat logits of a
batch of examples (in order: example by example, sequence by sequence, position by position) and the
examples themselves, so the Bradley-Terry, outcome and per-step losses are each a few lines.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from referee import progress
from referee.errors import RefereeError
from referee.rewards.heads import RewardNet, Sequence


@dataclass
class Example:
    seqs: list[Sequence]
    target: Any = None
    meta: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        return sum(len(s.positions) for s in self.seqs)


@dataclass
class TrainOptions:
    """Settings shared by every kind. ``lr``/``epochs`` of None take the mode's defaults."""

    epochs: int | None = None
    lr: float | None = None
    batch_size: int = 16
    lora: bool = False
    lora_r: int = 8
    weight_decay: float = 0.0
    seed: int = 0

    def resolved(self) -> "TrainOptions":
        # A frozen backbone leaves a linear problem: many cheap epochs at a high rate. LoRA moves the
        # backbone itself: one or two epochs at a small rate.
        epochs = self.epochs if self.epochs is not None else (2 if self.lora else 30)
        lr = self.lr if self.lr is not None else (2e-4 if self.lora else 1e-2)
        if epochs < 1 or lr <= 0 or self.batch_size < 1:
            raise RefereeError("training settings: epochs and batch size must be at least 1 and lr above 0")
        return TrainOptions(epochs, lr, self.batch_size, self.lora, self.lora_r, self.weight_decay, self.seed)


LossFn = Callable[[torch.Tensor, list[Example]], torch.Tensor]


def fit(net: RewardNet, examples: list[Example], loss_fn: LossFn, options: TrainOptions,
        desc: str = "training") -> dict:
    """Train ``net.head`` (and LoRA weights when asked) on ``examples``; returns loss history."""
    if not examples:
        raise RefereeError("no training examples")
    opts = options.resolved()
    torch.manual_seed(opts.seed)
    rng = random.Random(opts.seed)
    started = time.time()
    if opts.lora:
        history = _fit_lora(net, examples, loss_fn, opts, rng, desc)
    else:
        history = _fit_frozen(net, examples, loss_fn, opts, rng, desc)
    net.backbone.eval()
    return {"examples": len(examples), "epochs": opts.epochs, "lr": opts.lr, "batch_size": opts.batch_size,
            "lora": opts.lora, "epoch_losses": [round(x, 6) for x in history],
            "loss_first_epoch": history[0], "loss_last_epoch": history[-1],
            "train_seconds": round(time.time() - started, 2)}


def _batches(n: int, size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    return [order[i:i + size] for i in range(0, n, size)]


def _fit_frozen(net, examples, loss_fn, opts, rng, desc) -> list[float]:
    seqs = [s for ex in examples for s in ex.seqs]
    feats = net.features(seqs, desc="hidden states").to(net.device)
    net.head.set_standardisation(feats)
    starts, offset = [], 0
    for ex in examples:
        starts.append(offset)
        offset += ex.width
    optim = torch.optim.AdamW(net.head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    history = []
    per_epoch = (len(examples) + opts.batch_size - 1) // opts.batch_size
    with progress.bar(opts.epochs * per_epoch, desc, unit="step") as bar:
        for _ in range(opts.epochs):
            total, count = 0.0, 0
            for batch in _batches(len(examples), opts.batch_size, rng):
                rows = torch.tensor([starts[i] + k for i in batch for k in range(examples[i].width)],
                                    device=net.device)
                loss = loss_fn(net.head(feats[rows]), [examples[i] for i in batch])
                optim.zero_grad()
                loss.backward()
                optim.step()
                total += loss.item() * len(batch)
                count += len(batch)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
            history.append(total / count)
    return history


def _fit_lora(net, examples, loss_fn, opts, rng, desc) -> list[float]:
    # Standardise with the untouched backbone's features (LoRA starts as the identity) of a sample.
    sample = [s for ex in rng.sample(examples, min(len(examples), 64)) for s in ex.seqs]
    net.head.set_standardisation(net.features(sample, desc="hidden states").to(net.device))
    net.add_lora(r=opts.lora_r)
    net.backbone.train()
    params = [p for p in net.backbone.parameters() if p.requires_grad] + list(net.head.parameters())
    optim = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    history = []
    per_epoch = (len(examples) + opts.batch_size - 1) // opts.batch_size
    with progress.bar(opts.epochs * per_epoch, desc, unit="step") as bar:
        for _ in range(opts.epochs):
            total, count = 0.0, 0
            for batch in _batches(len(examples), opts.batch_size, rng):
                exs = [examples[i] for i in batch]
                logits = net.logits([s for ex in exs for s in ex.seqs], grad=True)
                loss = loss_fn(logits, exs)
                optim.zero_grad()
                loss.backward()
                optim.step()
                total += loss.item() * len(batch)
                count += len(batch)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
            history.append(total / count)
    net.backbone.eval()
    return history
