"""The two weak-to-strong training losses of Burns et al. (2023), on class probabilities.

Both are cross-entropies against a target distribution, and cross-entropy is linear in its target, so
the auxiliary confidence loss

    (1 - a) CE(f(x), weak(x)) + a CE(f(x), hardened f(x))

is computed as one cross-entropy against the mixed target ``(1 - a) weak + a hardened``. The hardened
targets are the student's own predictions made one-hot, so the student is encouraged to trust itself
where it disagrees with its supervisor instead of copying the supervisor's mistakes.
"""

from __future__ import annotations

import torch


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c target_c log softmax(logits)_c (targets are distributions)."""
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def aux_weight(progress: float, a_max: float, warmup: float) -> float:
    """The weight a of the self-confidence term: linear from 0 to ``a_max`` over the first ``warmup``
    fraction of training, then constant. ``progress`` is the fraction of training steps done."""
    if warmup <= 0:
        return a_max
    return a_max * min(1.0, max(0.0, progress) / warmup)


def harden(probs: torch.Tensor, weak: torch.Tensor) -> torch.Tensor:
    """The student's predictions made one-hot.

    Two classes: class 1 where the student's probability of class 1 is above the batch quantile at
    ``1 - prior``, with ``prior`` the weak labels' mean probability of class 1, so the hardened batch
    has about as many positives as the supervisor says there are (a plain 0.5 threshold would let an
    uncertain student collapse to one class). More classes: the student's most probable class.
    """
    n_classes = probs.shape[-1]
    if n_classes == 2:
        p1 = probs[:, 1].float()
        prior = weak[:, 1].float().mean().clamp(0.0, 1.0)
        threshold = torch.quantile(p1, 1.0 - prior)
        positive = (p1 > threshold).float()
        return torch.stack([1.0 - positive, positive], dim=-1)
    return torch.nn.functional.one_hot(probs.argmax(-1), n_classes).float()


class NaiveLoss:
    """Cross-entropy on the weak soft labels (the ground-truth one-hot labels for a ceiling run)."""

    name = "naive"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return soft_cross_entropy(logits, targets)


class AuxConfidenceLoss:
    """(1 - a) CE(f(x), weak(x)) + a CE(f(x), hardened f(x)), with a warmed up over training."""

    name = "aux"

    def __init__(self, a_max: float = 0.75, warmup: float = 0.2):
        if not 0.0 <= a_max <= 1.0:
            raise ValueError(f"aux a_max must be in [0, 1], got {a_max}")
        self.a_max = a_max
        self.warmup = warmup

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        a = aux_weight(progress, self.a_max, self.warmup)
        hardened = harden(torch.softmax(logits.detach().float(), dim=-1), targets)
        return soft_cross_entropy(logits, (1.0 - a) * targets + a * hardened)


def make_loss(name: str, a_max: float = 0.75, warmup: float = 0.2):
    if name == "naive":
        return NaiveLoss()
    if name == "aux":
        return AuxConfidenceLoss(a_max, warmup)
    raise ValueError(f"unknown loss {name!r}; expected naive or aux")
