"""Performance gap recovered, its uncertainty, and how much the student imitates its supervisor.

PGR = (acc(weak-to-strong) - acc(weak)) / (acc(ceiling) - acc(weak)): 0 means the student is no better
than its supervisor, 1 means it is as good as if trained on ground truth. It is a ratio of
differences, so when the ceiling is not above the weak model it is undefined or meaningless (a negative
gap flips its sign): such runs are flagged and left out of averages rather than averaged in.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(labels)))


def pgr(weak: float, w2s: float, ceiling: float) -> float | None:
    gap = ceiling - weak
    if gap <= 0:
        return None
    return (w2s - weak) / gap


def pgr_report(labels: np.ndarray, weak_pred: np.ndarray, w2s_pred: np.ndarray, ceiling_pred: np.ndarray,
               n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Accuracies, PGR and a paired bootstrap interval over test items.

    All three models are scored on the same resampled items, so the interval reflects how much the
    test set's draw moves the ratio. Resamples whose gap is not positive have no PGR; their share is
    reported, and the interval comes from the rest. ``flag`` is set when the weak model is not worse
    than the ceiling on the actual test set.
    """
    labels = np.asarray(labels)
    right = np.stack([np.asarray(p) == labels for p in (weak_pred, w2s_pred, ceiling_pred)]).astype(np.float64)
    acc_weak, acc_w2s, acc_ceiling = (float(r.mean()) for r in right)
    value = pgr(acc_weak, acc_w2s, acc_ceiling)
    rng = np.random.default_rng(seed)
    n = len(labels)
    draws = rng.integers(0, n, size=(n_boot, n))
    boot = right[:, draws].mean(-1)  # (3, n_boot)
    gap = boot[2] - boot[0]
    ok = gap > 0
    ratios = (boot[1][ok] - boot[0][ok]) / gap[ok]
    alpha = (1 - level) / 2
    interval = [float(np.quantile(ratios, alpha)), float(np.quantile(ratios, 1 - alpha))] if len(ratios) else None
    gap_interval = [float(np.quantile(gap, alpha)), float(np.quantile(gap, 1 - alpha))]
    return {
        "acc_weak": acc_weak, "acc_w2s": acc_w2s, "acc_ceiling": acc_ceiling,
        "gap": acc_ceiling - acc_weak, "gap_ci": gap_interval,
        "pgr": value, "pgr_ci": interval, "boot_without_gap": float(1 - ok.mean()),
        "flag": None if value is not None else "weak model not worse than the ceiling",
        "n_test": n,
    }


def imitation(labels: np.ndarray, weak_pred: np.ndarray, student_pred: np.ndarray) -> dict:
    """On items where the weak label is wrong, how often the student gives that same wrong label.

    Also the student's accuracy on those items and its agreement with the supervisor overall. A
    student that generalises beyond its supervisor copies few of its mistakes.
    """
    labels, weak_pred, student_pred = (np.asarray(a) for a in (labels, weak_pred, student_pred))
    wrong = weak_pred != labels
    n_wrong = int(wrong.sum())
    copied = int((student_pred[wrong] == weak_pred[wrong]).sum())
    return {
        "weak_wrong": n_wrong,
        "copied": copied,
        "imitation_rate": copied / n_wrong if n_wrong else None,
        "student_acc_where_weak_wrong": float((student_pred[wrong] == labels[wrong]).mean()) if n_wrong else None,
        "agreement": float((student_pred == weak_pred).mean()) if len(labels) else None,
    }


def summarise(results: Sequence[dict], key: str = "pgr") -> dict:
    """Mean and median PGR over runs that are not flagged, and how many were flagged."""
    kept = [r[key] for r in results if r.get("flag") is None and r.get(key) is not None]
    return {
        "runs": len(results),
        "flagged": len(results) - len(kept),
        "mean_pgr": float(np.mean(kept)) if kept else None,
        "median_pgr": float(np.median(kept)) if kept else None,
    }
