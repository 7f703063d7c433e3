"""F1 of label predictions, with a bootstrap interval over items (``referee.stats.bootstrap``).

Binary F1 is the F1 of the positive class (the last declared one); macro F1 is the mean of every class's
F1. An unreadable answer (label -1) is a prediction of no class: a miss for the item's own class, a
false alarm for none.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from referee import stats
from referee.errors import RefereeError

INVALID = -1


def class_f1(gold: np.ndarray, pred: np.ndarray, cls: int) -> float:
    """F1 of one class; 0 when the class is neither present nor predicted (no true positive to count)."""
    tp = float(np.sum((pred == cls) & (gold == cls)))
    predicted, actual = float(np.sum(pred == cls)), float(np.sum(gold == cls))
    return 2 * tp / (predicted + actual) if predicted + actual else 0.0


def f1(gold: Sequence[int], pred: Sequence[int], average: str, n_classes: int) -> float:
    """Binary: F1 of the last declared class (the positive one, as label 1 is); macro: mean over classes."""
    gold, pred = np.asarray(gold), np.asarray(pred)
    if average == "binary":
        return class_f1(gold, pred, n_classes - 1)
    if average == "macro":
        return float(np.mean([class_f1(gold, pred, c) for c in range(n_classes)]))
    raise RefereeError(f"f1: average should be binary or macro, got {average!r}")


def f1_estimate(gold: Sequence[int], pred: Sequence[int | None], average: str, n_classes: int,
                n_boot: int = stats.N_BOOT, seed: int = 0) -> stats.Estimate:
    """F1 with its 95% percentile bootstrap interval; None predictions count as unreadable (no class)."""
    pred = [INVALID if p is None else p for p in pred]
    return stats.bootstrap(lambda g, p: f1(g, p, average, n_classes), list(gold), pred, n_boot=n_boot, seed=seed)
