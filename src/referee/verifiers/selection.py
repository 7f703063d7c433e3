"""Best-of-N selection: out of N samples of a problem, pick one by a verifier's top score, by the most
(weighted) votes for a final answer, or at random; and the accuracy-vs-N curves of each rule.

Ties are broken uniformly at random and the *expected* accuracy under that rule is counted, so no rule
favours the first sample or the right answer. Pure numpy, one problem at a time.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from referee.errors import RefereeError


@dataclass
class ProblemSamples:
    """One problem's samples as arrays: right or not, final-answer ids (-1: none), verifier scores."""

    correct: np.ndarray  # (n,) bool
    answer_ids: np.ndarray  # (n,) int, -1 where the sample has no final answer
    answer_correct: np.ndarray  # (A,) bool: is answer id a the right one
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # (n,) float, nan where invalid

    @classmethod
    def build(cls, correct, answer_keys, scores=None) -> "ProblemSamples":
        keys = sorted({k for k in answer_keys if k is not None})
        index = {k: i for i, k in enumerate(keys)}
        ids = np.array([index[k] if k is not None else -1 for k in answer_keys], dtype=int)
        correct = np.asarray(correct, dtype=bool)
        ans_ok = np.zeros(len(keys), dtype=bool)
        for i, k in enumerate(answer_keys):
            if k is not None and correct[i]:
                ans_ok[index[k]] = True
        return cls(correct, ids, ans_ok, {k: np.asarray(v, dtype=float) for k, v in (scores or {}).items()})


def _tie_mean(values: np.ndarray, wins: np.ndarray) -> np.ndarray:
    """Expected value over the winners of each row (uniform tie-breaking); rows without winners give 0."""
    count = wins.sum(axis=1)
    total = (values * wins).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def select_random(p: ProblemSamples, idx: np.ndarray) -> np.ndarray:
    return p.correct[idx].mean(axis=1)


def select_best(p: ProblemSamples, idx: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The top-scored sample of each subset; invalid (nan) scores lose to any valid one."""
    s = np.where(np.isnan(scores[idx]), -np.inf, scores[idx])
    top = s.max(axis=1, keepdims=True)
    return _tie_mean(p.correct[idx].astype(float), s == top)


def select_vote(p: ProblemSamples, idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The answer with the most (weighted) votes in each subset; samples without an answer do not vote."""
    n_answers = len(p.answer_correct)
    if n_answers == 0:
        return np.zeros(len(idx))
    ids = p.answer_ids[idx]  # (S, N)
    w = np.ones(idx.shape) if weights is None else np.nan_to_num(weights[idx], nan=0.0)
    onehot = ids[:, :, None] == np.arange(n_answers)[None, None, :]  # (S, N, A)
    tally = (onehot * w[:, :, None]).sum(axis=1)  # (S, A)
    present = onehot.any(axis=1)
    tally = np.where(present, tally, -np.inf)
    top = tally.max(axis=1, keepdims=True)
    wins = present & (tally >= top - 1e-9)  # sums of float weights: equal up to rounding is a tie
    return _tie_mean(np.broadcast_to(p.answer_correct.astype(float), wins.shape), wins)


def subsets(n_max: int, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(S, n) sample indices: every n-subset when there are at most ``count`` of them, else ``count``
    uniformly random ones (each without repeats)."""
    if math.comb(n_max, n) <= count:
        return np.array(list(itertools.combinations(range(n_max), n)), dtype=int).reshape(-1, n)
    return rng.permuted(np.tile(np.arange(n_max), (count, 1)), axis=1)[:, :n]


def sizes(n_max: int) -> list[int]:
    """1, 2, 4, ... up to n_max (and n_max itself when it is not a power of two)."""
    out = [1 << i for i in range(n_max.bit_length()) if 1 << i <= n_max]
    return out if out[-1] == n_max else out + [n_max]


@dataclass(frozen=True)
class Method:
    """A way to pick: ``kind`` is random, majority, best or vote; ``score`` names the score array used."""

    name: str
    kind: str
    score: str | None = None

    def pick(self, p: ProblemSamples, idx: np.ndarray) -> np.ndarray:
        if self.kind == "random":
            return select_random(p, idx)
        if self.kind == "majority":
            return select_vote(p, idx)
        if self.kind == "best":
            return select_best(p, idx, p.scores[self.score])
        return select_vote(p, idx, p.scores[self.score])


def accuracy_curves(problems: list[ProblemSamples], methods: list[Method], n_subsets: int = 200,
                    n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """{method: {N: {"accuracy", "low", "high"}}}; the same subsets are used for every method."""
    if not problems:
        raise RefereeError("best-of-n: no problems to evaluate")
    n_max = len(problems[0].correct)
    if any(len(p.correct) != n_max for p in problems):
        raise RefereeError("best-of-n: every problem needs the same number of samples")
    rng = np.random.default_rng(seed)
    per = {m.name: {} for m in methods}
    for n in sizes(n_max):
        values = {m.name: np.empty(len(problems)) for m in methods}
        for i, p in enumerate(problems):
            idx = subsets(n_max, n, n_subsets, rng)
            for m in methods:
                values[m.name][i] = m.pick(p, idx).mean()
        for m in methods:
            per[m.name][n] = values[m.name]
    boot = np.random.default_rng(seed + 1).integers(0, len(problems), size=(n_boot, len(problems)))
    alpha = (1 - level) / 2
    out = {}
    for name, by_n in per.items():
        out[name] = {}
        for n, v in by_n.items():
            means = v[boot].mean(axis=1)
            lo, hi = np.quantile(means, [alpha, 1 - alpha])
            out[name][n] = {"accuracy": float(v.mean()), "low": float(lo), "high": float(hi)}
    return out
