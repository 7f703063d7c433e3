"""One training loop for all three heads: frozen backbone (features once, then the head) or LoRA.

An ``Example`` is a few encoded sequences and a target; a loss function gets the flat logits of a
batch of examples (in order: example by example, sequence by sequence, position by position) and the
examples themselves, so the Bradley-Terry, outcome and per-step losses are each a few lines.

A share of the examples (``val_frac``, when that makes at least 5) is held out; after every epoch the
loss on them is measured, and the weights of the best epoch are kept. A linear head on a few hundred
frozen features overfits in a few epochs, so this matters more than the number of epochs.

Under a launcher (``torchrun``, ``accelerate launch``) the N processes train as one process with N times
the batch size: with a frozen backbone each computes the features of every N-th batch, they share them,
and each trains the same head on all of them; with LoRA each takes its slice of every batch, and the
gradients are summed across processes before each step.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from referee import progress
from referee.distributed import init_process_group_if_needed, rank, sum_across_processes, world_size
from referee.errors import RefereeError
from referee.rewards.heads import RewardNet, Sequence

MIN_VAL = 5


@dataclass
class Example:
    seqs: list[Sequence]
    target: Any = None
    meta: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        return sum(len(s.positions) for s in self.seqs)

    @property
    def terms(self) -> int:
        """How many terms this example adds to a batch's mean loss: one, or one per labelled step."""
        return sum(t is not None for t in self.target) if isinstance(self.target, list) else 1


@dataclass
class TrainOptions:
    """Settings shared by every kind. ``lr``/``epochs`` of None take the mode's defaults."""

    epochs: int | None = None
    lr: float | None = None
    batch_size: int = 16  # per process: N processes take N times as many examples per step
    lora: bool = False
    lora_r: int = 8
    weight_decay: float = 0.0
    val_frac: float = 0.1
    seed: int = 0

    def resolved(self) -> "TrainOptions":
        # A frozen backbone leaves a linear problem: many cheap epochs at a high rate. LoRA moves the
        # backbone itself: one or two epochs at a small rate.
        epochs = self.epochs if self.epochs is not None else (2 if self.lora else 30)
        lr = self.lr if self.lr is not None else (2e-4 if self.lora else 1e-2)
        if epochs < 1 or lr <= 0 or self.batch_size < 1:
            raise RefereeError("training settings: epochs and batch size must be at least 1 and lr above 0")
        if not 0 <= self.val_frac < 1:
            raise RefereeError(f"training settings: val_frac should be in [0, 1), got {self.val_frac}")
        return replace(self, epochs=epochs, lr=lr)


LossFn = Callable[[torch.Tensor, list[Example]], torch.Tensor]


def fit(net: RewardNet, examples: list[Example], loss_fn: LossFn, options: TrainOptions,
        desc: str = "training") -> dict:
    """Train ``net.head`` (and LoRA weights when asked) on ``examples``; returns the loss history."""
    if not examples:
        raise RefereeError("no training examples")
    opts = options.resolved()
    init_process_group_if_needed()
    torch.manual_seed(opts.seed)
    rng = random.Random(opts.seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    n_val = int(len(examples) * opts.val_frac)
    n_val = n_val if n_val >= MIN_VAL and len(examples) - n_val >= MIN_VAL else 0
    val = [examples[i] for i in order[:n_val]]
    train = [examples[i] for i in order[n_val:]]
    started = time.time()
    trainer_class = _LoraTrainer if opts.lora else _FrozenTrainer
    trainer = trainer_class(net, train, val, loss_fn, opts)
    history, val_history, best = trainer.run(rng, desc)
    net.backbone.eval()
    processes = {"processes": world_size()} if world_size() > 1 else {}  # each step took processes x batch_size
    return {"examples": len(examples), "train_examples": len(train), "val_examples": len(val),
            "epochs": opts.epochs, "lr": opts.lr, "batch_size": opts.batch_size, "lora": opts.lora,
            "epoch_losses": [round(x, 6) for x in history], "val_losses": [round(x, 6) for x in val_history],
            "best_epoch": best + 1, "loss_first_epoch": history[0], "loss_last_epoch": history[-1],
            "train_seconds": round(time.time() - started, 2), **processes}


def _batches(n: int, size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    return [order[i:i + size] for i in range(0, n, size)]


class _Trainer:
    """The epoch loop; subclasses say how a batch of examples becomes logits."""

    def __init__(self, net, train, val, loss_fn, opts):
        self.net, self.train, self.val, self.loss_fn, self.opts = net, train, val, loss_fn, opts
        self.step_size = opts.batch_size * world_size()  # examples per step, over all processes

    def examples(self, split: str) -> list[Example]:
        return self.train if split == "train" else self.val

    def params(self) -> list[torch.nn.Parameter]:
        """What trains: the head, and whatever in the backbone is not frozen (LoRA adapters)."""
        return [p for _, p in self._named()]

    def logits(self, split: str, batch: list[int], grad: bool) -> torch.Tensor:
        raise NotImplementedError

    def batch_loss(self, split: str, batch: list[int], grad: bool) -> float:
        """The mean loss over a batch of examples; with ``grad``, its gradients are left in the parameters."""
        loss = self.loss_fn(self.logits(split, batch, grad), [self.examples(split)[i] for i in batch])
        if grad:
            loss.backward()
        return loss.item()

    def snapshot(self) -> dict:
        return {n: p.detach().clone() for n, p in self._named()}

    def restore(self, state: dict) -> None:
        with torch.no_grad():
            for n, p in self._named():
                p.copy_(state[n])

    def _named(self):
        return [(f"head.{n}", p) for n, p in self.net.head.named_parameters()] + \
               [(f"backbone.{n}", p) for n, p in self.net.backbone.named_parameters() if p.requires_grad]

    def val_loss(self) -> float:
        total = 0.0
        with torch.no_grad():
            for batch in [list(range(i, min(i + self.step_size, len(self.val))))
                          for i in range(0, len(self.val), self.step_size)]:
                total += self.batch_loss("val", batch, grad=False) * len(batch)
        return total / len(self.val)

    def run(self, rng: random.Random, desc: str) -> tuple[list[float], list[float], int]:
        optim = torch.optim.AdamW(self.params(), lr=self.opts.lr, weight_decay=self.opts.weight_decay)
        history, val_history = [], []
        best, best_state = 0, None
        per_epoch = (len(self.train) + self.step_size - 1) // self.step_size
        with progress.bar(self.opts.epochs * per_epoch, desc, unit="step") as bar:
            for epoch in range(self.opts.epochs):
                total = 0.0
                for batch in _batches(len(self.train), self.step_size, rng):
                    optim.zero_grad()
                    loss = self.batch_loss("train", batch, grad=True)
                    optim.step()
                    total += loss * len(batch)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                history.append(total / len(self.train))
                if self.val:
                    val_history.append(self.val_loss())
                    if val_history[-1] <= min(val_history):
                        best, best_state = epoch, self.snapshot()
                    bar.set_postfix(loss=f"{history[-1]:.4f}", val=f"{val_history[-1]:.4f}")
                else:
                    best = epoch
        if best_state is not None:
            self.restore(best_state)
        return history, val_history, best


class _FrozenTrainer(_Trainer):
    """Backbone frozen: hidden states of every read-out are computed once; only the head trains (the same
    head on every process, from the same features: it is small, and no gradient needs to travel)."""

    def __init__(self, net, train, val, loss_fn, opts):
        super().__init__(net, train, val, loss_fn, opts)
        self.feats, self.starts = {}, {}
        for split, exs in (("train", train), ("val", val)):
            seqs = [s for ex in exs for s in ex.seqs]
            self.feats[split] = net.features(seqs, desc=f"hidden states ({split})").to(net.device)
            self.starts[split] = _offsets(exs)
        net.head.set_standardisation(self.feats["train"])

    def logits(self, split, batch, grad):
        exs = self.examples(split)
        starts = self.starts[split]
        rows = torch.tensor([starts[i] + k for i in batch for k in range(exs[i].width)], device=self.net.device)
        return self.net.head(self.feats[split][rows])


class _LoraTrainer(_Trainer):
    """LoRA adapters on every linear layer of the backbone, trained with the head."""

    def __init__(self, net, train, val, loss_fn, opts):
        super().__init__(net, train, val, loss_fn, opts)
        # Standardise with the untouched backbone's features (LoRA starts as the identity) of a sample.
        sample = [s for ex in random.Random(opts.seed).sample(train, min(len(train), 64)) for s in ex.seqs]
        net.head.set_standardisation(net.features(sample, desc="hidden states").to(net.device))
        net.add_lora(r=opts.lora_r)

    def logits(self, split, batch, grad):
        exs = self.examples(split)
        self.net.backbone.train(grad)
        return self.net.logits([s for i in batch for s in exs[i].seqs], grad=grad)

    def batch_loss(self, split, batch, grad):
        """Under a launcher, this process's slice of the batch, weighted by its share of the batch's loss terms
        so that the sum over processes is the batch's mean loss (and the summed gradients its gradient)."""
        if world_size() == 1:
            return super().batch_loss(split, batch, grad)
        exs = self.examples(split)
        mine = batch[rank() * self.opts.batch_size:(rank() + 1) * self.opts.batch_size]
        part = torch.zeros((), device=self.net.device)
        if mine:  # the last batch may leave a process nothing: it adds zero
            share = sum(exs[i].terms for i in mine) / sum(exs[i].terms for i in batch)
            part = self.loss_fn(self.logits(split, mine, grad), [exs[i] for i in mine]) * share
            if grad:
                part.backward()
        if grad:
            self._sum_gradients()
        return sum_across_processes(part.detach().clone()).item()

    def _sum_gradients(self) -> None:
        """One all-reduce of every trainable parameter's gradient, flattened together."""
        params = self.params()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        summed = sum_across_processes(torch.cat([g.reshape(-1) for g in grads]))
        for p, g in zip(params, summed.split([g.numel() for g in grads])):
            p.grad = g.view_as(p)


def _offsets(examples: list[Example]) -> list[int]:
    starts, offset = [], 0
    for ex in examples:
        starts.append(offset)
        offset += ex.width
    return starts
