"""Choosing the next beam among candidate prompts under a query budget: best-arm identification with
bandits, as ProTeGi does, so that promising prompts get more evaluations than hopeless ones.

Each candidate is an arm; pulling it evaluates it once (the caller decides on what: here, a fresh random
sample of training items) and gives a reward in [0, 1]. ``Arms`` counts pulls and refuses any beyond the
budget, so no selector can overspend. Every selector returns the ``keep`` arms it judges best, best first,
and a ranking of all arms by what it learnt:

- ``brute_force``: the budget split evenly, every arm pulled as often; ranked by mean reward.
- ``ucb``: each arm once, then always the arm with the highest mean + c * sqrt(ln t / n) (Auer et al. 2002).
- ``ucb_e``: the same with the bonus sqrt(a / n), tuned for a fixed budget (Audibert et al. 2010).
- ``successive_rejects``: phases in which every active arm is pulled up to n_k times, then the worst one
  leaves (Audibert et al. 2010); the phase lengths are stretched so the whole budget is spent when the
  rejections stop at ``keep`` arms instead of one.
- ``successive_halving``: rounds in which every active arm gets an equal share of what is left, then the
  worse half leaves, until ``keep`` remain (Karnin et al. 2013).

``exploration`` is c for ``ucb`` (default 2) and a for ``ucb_e`` (default 10); the others ignore it. A
small a spends nearly everything on the apparent best arm, which finds the best prompt but leaves the
rest of a beam poorly estimated: on six Bernoulli arms (means 0.2 to 0.8, 600 to 1500 pulls) a = 2 found
the top two in 73% of seeds, a = 10 in 95-100%.

Selectors are deterministic given the rewards (ties go to the lower arm index, the earlier candidate), so
a seeded ``pull`` makes the whole selection repeatable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from referee.errors import RefereeError

Pull = Callable[[list[int]], Sequence[float]]  # one pull of each listed arm -> their rewards, in order
DEFAULT_EXPLORATION = {"ucb": 2.0, "ucb_e": 10.0}


@dataclass
class Selection:
    kept: list[int]  # the chosen arms, best first
    ranking: list[int]  # every arm, best first
    rewards: list[list[float]]  # each arm's rewards in pull order
    spent: int  # pulls used, never more than the budget

    def mean(self, arm: int) -> float | None:
        got = self.rewards[arm]
        return sum(got) / len(got) if got else None


class Arms:
    """The candidates as arms: pulls them through ``pull`` and keeps each one's rewards, within the budget."""

    def __init__(self, n: int, budget: int, pull: Pull):
        self.n, self.budget, self._pull = n, budget, pull
        self.rewards: list[list[float]] = [[] for _ in range(n)]
        self.spent = 0

    @property
    def left(self) -> int:
        return self.budget - self.spent

    def pull(self, arms: list[int]) -> None:
        """One pull of each listed arm (together, so the caller can batch them)."""
        if len(arms) > self.left:
            raise RuntimeError(f"selection: {len(arms)} pulls asked with {self.left} left of the budget")
        if not arms:
            return
        got = list(self._pull(list(arms)))
        if len(got) != len(arms):
            raise RuntimeError(f"selection: {len(got)} rewards for {len(arms)} pulls")
        for arm, reward in zip(arms, got):
            self.rewards[arm].append(float(reward))
        self.spent += len(arms)

    def mean(self, arm: int) -> float:
        got = self.rewards[arm]
        return sum(got) / len(got) if got else -math.inf

    def best_first(self, arms: Sequence[int]) -> list[int]:
        return sorted(arms, key=lambda a: (-self.mean(a), a))

    def result(self, kept: list[int], ranking: list[int]) -> Selection:
        return Selection(kept, ranking, [list(r) for r in self.rewards], self.spent)


def brute_force(arms: Arms, keep: int, exploration: float | None = None) -> Selection:
    for _ in range(arms.budget // arms.n):
        arms.pull(list(range(arms.n)))
    ranking = arms.best_first(range(arms.n))
    return arms.result(ranking[:keep], ranking)


def ucb(arms: Arms, keep: int, exploration: float | None = None) -> Selection:
    exploration = DEFAULT_EXPLORATION["ucb"] if exploration is None else exploration
    return _upper_confidence(arms, keep, lambda n, t: exploration * math.sqrt(math.log(t) / n))


def ucb_e(arms: Arms, keep: int, exploration: float | None = None) -> Selection:
    exploration = DEFAULT_EXPLORATION["ucb_e"] if exploration is None else exploration
    return _upper_confidence(arms, keep, lambda n, t: math.sqrt(exploration / n))


def _upper_confidence(arms: Arms, keep: int, bonus: Callable[[int, int], float]) -> Selection:
    """Every arm once, then the arm with the highest mean + bonus(its pulls, pulls so far) until the budget
    is spent; the ``keep`` best by mean reward are chosen."""
    arms.pull(list(range(arms.n)))
    while arms.left > 0:
        arms.pull([max(range(arms.n), key=lambda a: (arms.mean(a) + bonus(len(arms.rewards[a]), arms.spent), -a))])
    ranking = arms.best_first(range(arms.n))
    return arms.result(ranking[:keep], ranking)


def successive_rejects(arms: Arms, keep: int, exploration: float | None = None) -> Selection:
    """Phase k (1 .. n - keep) pulls each active arm until it has n_k pulls, then drops the worst, with
    n_k = max(1, floor((budget - n) / (L * (n + 1 - k)))) and L = keep / (keep + 1) + sum_{j=keep+1}^{n} 1/j:
    without the max(1, .) the pulls would add up to at most budget - n, and it adds at most n more."""
    n = arms.n
    if n <= keep:
        return brute_force(arms, keep)
    scale = keep / (keep + 1) + sum(1 / j for j in range(keep + 1, n + 1))
    active, rejected, had = list(range(n)), [], 0
    for k in range(1, n - keep + 1):
        target = max(1, math.floor((arms.budget - n) / (scale * (n + 1 - k))), had)
        for _ in range(target - had):
            arms.pull(active)
        had = target
        worst = min(active, key=lambda a: (arms.mean(a), -a))
        active.remove(worst)
        rejected.append(worst)
    kept = arms.best_first(active)
    return arms.result(kept, kept + rejected[::-1])


def successive_halving(arms: Arms, keep: int, exploration: float | None = None) -> Selection:
    """Each round, every active arm gets an equal share of the budget left for the rounds left (at least
    one pull), then the better half (at least ``keep``) stays. Stops early if the budget cannot pull every
    active arm once more."""
    n = arms.n
    if n <= keep:
        return brute_force(arms, keep)
    rounds, size = 0, n
    while size > keep:
        size, rounds = max(keep, math.ceil(size / 2)), rounds + 1
    active, dropped = list(range(n)), []
    for r in range(rounds):
        if arms.left < len(active):
            break
        for _ in range(max(1, arms.left // (len(active) * (rounds - r)))):
            arms.pull(active)
        ordered = arms.best_first(active)
        active = ordered[:max(keep, math.ceil(len(active) / 2))]
        dropped = ordered[len(active):] + dropped
    ordered = arms.best_first(active)
    return arms.result(ordered[:keep], ordered + dropped)


SELECTORS: dict[str, Callable[[Arms, int, float | None], Selection]] = {
    "brute_force": brute_force, "ucb": ucb, "ucb_e": ucb_e,
    "successive_rejects": successive_rejects, "successive_halving": successive_halving}


def select(method: str, n_arms: int, keep: int, budget: int, pull: Pull,
           exploration: float | None = None) -> Selection:
    """The ``keep`` best of ``n_arms`` arms by ``method``, spending at most ``budget`` pulls."""
    if method not in SELECTORS:
        raise RefereeError(f"selection: unknown method {method!r}; known: {', '.join(SELECTORS)}")
    if n_arms < 1 or keep < 1:
        raise RefereeError(f"selection: need at least one arm and one to keep, got {n_arms} and {keep}")
    if budget < n_arms:
        raise RefereeError(f"selection: a budget of {budget} pulls cannot pull each of {n_arms} candidates once")
    return SELECTORS[method](Arms(n_arms, budget, pull), keep, exploration)
