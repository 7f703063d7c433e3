"""Statistics for judging judges: rates, agreement, Cohen's kappa and correlations, each with a 95% interval.

Every function returns an ``Estimate``: the value on the data as given, and a percentile bootstrap
interval from resampling *items* (pairs, answers) with replacement under a fixed seed, so the same data
always gives the same interval. Where rows come in groups that are not independent (several samples of
one problem), pass ``clusters`` (each row's group): whole groups are resampled, rows kept together, so
the interval is not made narrow by counting one problem's samples as separate evidence. Items a statistic does not apply to (say, a pair without a human label)
are passed as ``None`` and left out of the value and of every resample alike.

Agreement with people follows the two setups of the MT-Bench paper (Zheng et al., 2023), as its released
agreement script computes them:

- **S1** keeps ties: three classes (A, B, tie); a judge whose two orders disagree counts as a tie.
- **S2** keeps only pairs where *neither* the judge nor the human voted tie.

Here an ``invalid`` judge verdict (unreadable output) is never dropped quietly: it is a miss in S1 and in
S2 (it is not a tie, so S2 keeps the pair), and its rate is reported beside the agreement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from referee.errors import RefereeError

LEVEL = 0.95
N_BOOT = 1000


@dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap interval. ``value`` is None when the data leave it undefined."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}

    def fmt(self, digits: int = 2, percent: bool = False) -> str:
        """``0.62 [0.55, 0.70]`` (or ``62% [55, 70]``); ``n/a`` when undefined."""
        if percent:
            return interval_text(self.value, self.low, self.high, digits=0, percent=True)
        return interval_text(self.value, self.low, self.high, digits=digits)


def interval_text(value: float | None, low: float | None, high: float | None, digits: int = 2,
                  percent: bool = False, signed: bool = False, unit: str | None = None,
                  unknown: str | None = "?") -> str:
    """A value with its interval, the bounds written like the value: ``0.62 [0.55, 0.70]``, ``62% [55, 70]``
    (``percent``), ``+5.0 points [-2.0, +12.0]`` (``percent, signed, unit=" points"``); ``n/a`` when the value
    is undefined. An unknown bound is written ``unknown``; ``unknown=None`` leaves the interval out."""
    if value is None:
        return "n/a"
    scale = 100 if percent else 1
    unit = ("%" if percent else "") if unit is None else unit
    number = f"{{:{'+' if signed else ''}.{digits}f}}"
    text = number.format(scale * value) + unit
    if low is None or high is None:
        if unknown is None:
            return text
        lo = unknown if low is None else number.format(scale * low)
        hi = unknown if high is None else number.format(scale * high)
        return f"{text} [{lo}, {hi}]"
    return f"{text} [{number.format(scale * low)}, {number.format(scale * high)}]"


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _interval(samples: np.ndarray, level: float) -> tuple[float | None, float | None]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None, None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _groups(clusters: Sequence, keep: Sequence[int]) -> list[np.ndarray]:
    """The kept rows' positions (0..len(keep)-1) grouped by cluster, in order of first appearance."""
    if len(clusters) < (max(keep) + 1 if len(keep) else 0):
        raise RefereeError("stats: clusters must give a group for every row")
    groups: dict = {}
    for pos, row in enumerate(keep):
        groups.setdefault(clusters[row], []).append(pos)
    return [np.asarray(g) for g in groups.values()]


def _resampled_rows(groups: list[np.ndarray], n_boot: int, seed: int):
    """Row positions of each cluster-bootstrap resample: groups drawn with replacement, their rows kept."""
    for draw in _indices(len(groups), n_boot, seed):
        yield np.concatenate([groups[g] for g in draw])


def _check_level(level: float, n_boot: int) -> None:
    if not 0 < level < 1:
        raise RefereeError(f"stats: level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise RefereeError(f"stats: n_boot must be >= 1, got {n_boot}")


def mean_ci(values: Sequence[float | None], n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL,
            clusters: Sequence | None = None) -> Estimate:
    """The mean of the values that are not None (a rate, when they are 0/1), with its bootstrap interval.

    Resamples the kept items (or, with ``clusters``, whole groups of them); vectorised, so thousands of
    resamples cost next to nothing.
    """
    _check_level(level, n_boot)
    keep = [i for i, v in enumerate(values) if v is not None]
    x = np.array([values[i] for i in keep], dtype=float)
    if x.size == 0:
        return Estimate(None, None, None, 0)
    if clusters is None:
        boots = x[_indices(x.size, n_boot, seed)].mean(axis=1)
    else:  # a resample's mean: the drawn groups' sums over their sizes
        groups = _groups(clusters, keep)
        sums, sizes = np.array([x[g].sum() for g in groups]), np.array([len(g) for g in groups])
        draws = _indices(len(groups), n_boot, seed)
        boots = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    lo, hi = _interval(boots, level)
    return Estimate(float(x.mean()), lo, hi, int(x.size))


def rate(flags: Sequence[bool | None], **kw) -> Estimate:
    """The share of True among the flags that are not None."""
    return mean_ci([None if f is None else float(bool(f)) for f in flags], **kw)


def paired_diff(a: Sequence[float | None], b: Sequence[float | None], **kw) -> Estimate:
    """mean(a - b) over items where both are known; resampling items (or ``clusters``) keeps each pair
    together."""
    if len(a) != len(b):
        raise RefereeError("stats: paired_diff needs two lists of the same length")
    return mean_ci([None if x is None or y is None else x - y for x, y in zip(a, b)], **kw)


def unpaired_diff(a: Sequence[float | None], b: Sequence[float | None], n_boot: int = N_BOOT, seed: int = 0,
                  level: float = LEVEL) -> Estimate:
    """mean(a) - mean(b) for two independent groups (Nones left out), each resampled on its own; ``n`` is
    the smaller group's size."""
    _check_level(level, n_boot)
    x = np.asarray([v for v in a if v is not None], dtype=float)
    y = np.asarray([v for v in b if v is not None], dtype=float)
    if not x.size or not y.size:
        return Estimate(None, None, None, min(x.size, y.size))
    boots = (x[_indices(x.size, n_boot, seed)].mean(axis=1) - y[_indices(y.size, n_boot, seed + 1)].mean(axis=1))
    lo, hi = _interval(boots, level)
    return Estimate(_finite(x.mean() - y.mean()), lo, hi, min(x.size, y.size))


def bootstrap(statistic: Callable[..., float], *columns: Sequence, n_boot: int = N_BOOT, seed: int = 0,
              level: float = LEVEL, clusters: Sequence | None = None) -> Estimate:
    """Any statistic of aligned columns, with an interval from resampling rows (or, with ``clusters``,
    whole groups of rows).

    ``statistic(*arrays)`` gets numpy arrays of the kept rows (rows where some column is None are
    dropped first). Resamples where the statistic is undefined (NaN, say a correlation of a constant)
    are left out of the interval.
    """
    _check_level(level, n_boot)
    if len({len(c) for c in columns}) > 1:
        raise RefereeError("stats: bootstrap columns must have the same length")
    keep = [i for i in range(len(columns[0])) if all(c[i] is not None for c in columns)] if columns else []
    if not keep:
        return Estimate(None, None, None, 0)
    arrays = [np.asarray([c[i] for i in keep]) for c in columns]
    value = _finite(statistic(*arrays))
    resamples = _indices(len(keep), n_boot, seed) if clusters is None else \
        _resampled_rows(_groups(clusters, keep), n_boot, seed)
    boots = np.array([statistic(*(a[idx] for a in arrays)) for idx in resamples], dtype=float)
    lo, hi = _interval(boots, level)
    return Estimate(value, lo, hi, len(keep))


# ---- agreement between verdicts ---------------------------------------------------------------------
VERDICTS = ("A", "B", "tie")


def auc(scores: Sequence[float], labels: Sequence[float]) -> float:
    """The chance that a random positive (label >= 0.5) outscores a random negative, ties counting half;
    nan when either class is empty. Pass it to ``bootstrap`` for an interval."""
    s, y = np.asarray(scores, float), np.asarray(labels, float) >= 0.5
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def _check_verdicts(judge: Sequence, human: Sequence) -> None:
    if len(judge) != len(human):
        raise RefereeError("stats: give one judge verdict per human label")
    for v in list(judge) + list(human):
        if v is not None and v not in VERDICTS and v != "invalid":
            raise RefereeError(f"stats: verdict {v!r} is not one of A, B, tie, invalid")


def agreement_s1(judge: Sequence[str | None], human: Sequence[str | None], **kw) -> Estimate:
    """MT-Bench S1: share of labelled pairs where the judge's verdict equals the human's, ties kept as a
    class. ``invalid`` judge verdicts count as misses; pairs without a human label (None) are left out."""
    _check_verdicts(judge, human)
    return rate([None if h is None or j is None else j == h for j, h in zip(judge, human)], **kw)


def agreement_s2(judge: Sequence[str | None], human: Sequence[str | None], **kw) -> Estimate:
    """MT-Bench S2: agreement over pairs where neither the judge nor the human said tie.

    An ``invalid`` judge verdict is not a tie, so it stays in and counts as a miss.
    """
    _check_verdicts(judge, human)
    flags = []
    for j, h in zip(judge, human):
        if h is None or j is None or h == "tie" or j == "tie":
            flags.append(None)
        else:
            flags.append(j == h)
    return rate(flags, **kw)


def accuracy_no_tie(judge: Sequence[str | None], human: Sequence[str | None], **kw) -> Estimate:
    """LLMBar-style accuracy: over pairs with a non-tie human label, the share the judge got right; a
    judge tie (or invalid) is a miss. Unlike S2 it does not reward a judge for abstaining."""
    _check_verdicts(judge, human)
    return rate([None if h is None or j is None or h == "tie" else j == h for j, h in zip(judge, human)], **kw)


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two integer-coded label arrays: (p_o - p_e) / (1 - p_e)."""
    n = a.size
    if n == 0:
        return float("nan")
    k = int(max(a.max(), b.max())) + 1
    table = np.zeros((k, k))
    np.add.at(table, (a, b), 1)
    p_o = np.trace(table) / n
    p_e = float((table.sum(axis=1) / n) @ (table.sum(axis=0) / n))
    if p_e >= 1:  # both raters used one and the same class: kappa is undefined
        return float("nan")
    return float((p_o - p_e) / (1 - p_e))


def cohen_kappa(a: Sequence, b: Sequence, **kw) -> Estimate:
    """Cohen's kappa between two raters' labels (any hashable labels; None = left out), with interval.

    Undefined (None) when both raters put every item in one and the same class.
    """
    if len(a) != len(b):
        raise RefereeError("stats: cohen_kappa needs two lists of the same length")
    keep = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    classes = sorted({str(v) for pair in keep for v in pair})
    code = {c: i for i, c in enumerate(classes)}
    return bootstrap(_kappa, [code[str(x)] for x, _ in keep], [code[str(y)] for _, y in keep], **kw)


# ---- correlations --------------------------------------------------------------------------------------
def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    from scipy.stats import pearsonr

    return float(pearsonr(x, y).statistic)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def pearson(x: Sequence[float | None], y: Sequence[float | None], **kw) -> Estimate:
    """Pearson's r (scipy) over items where both are known; None when either side is constant."""
    return bootstrap(_pearson, x, y, **kw)


def spearman(x: Sequence[float | None], y: Sequence[float | None], **kw) -> Estimate:
    """Spearman's rho (scipy, ties get average ranks) over items where both are known."""
    return bootstrap(_spearman, x, y, **kw)


def jsonable(obj):
    """Metrics with Estimates inside, as plain JSON-ready dicts and lists."""
    if isinstance(obj, Estimate):
        return obj.to_dict()
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj
