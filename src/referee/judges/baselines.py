"""Baseline pairwise judges: real ``PairwiseVerifier``s with the same ``judge_pairs`` records as the LLM
judges, so any protocol or audit can run them as a control.

A judge is only interesting if it beats these: always preferring the longer answer (the verbosity bias
in its purest form) and a seeded coin. Both read no model, so they cost nothing and run anywhere.
"""

from __future__ import annotations

from referee.draws import content_unit
from referee.errors import RefereeError
from referee.judges.records import SWAPS, PairJudge, make_record, shown

BASELINE_SWAPS = SWAPS[:2]  # none and conservative: a baseline carries no probabilities to average


def _check_swap(swap: str) -> None:
    if swap not in BASELINE_SWAPS:
        raise RefereeError(f"baseline judge: swap must be one of {', '.join(BASELINE_SWAPS)}, got {swap!r}")


def _orders(swap: str) -> tuple[str, ...]:
    return ("AB", "BA") if swap == "conservative" else ("AB",)


class LongerJudge(PairJudge):
    """Prefers the longer answer (in characters); a tie when both have the same length.

    Blind to position by construction, so its position consistency is 100%.
    """

    name = "longer"

    def __init__(self, swap: str = "conservative"):
        _check_swap(swap)
        self.swap = swap

    def verdict(self, pair) -> str:
        la, lb = len(pair.answer_a.strip()), len(pair.answer_b.strip())
        return "A" if la > lb else "B" if lb > la else "tie"

    def judge_pairs(self, pairs) -> list[dict]:
        records = []
        for pair in pairs:
            v = self.verdict(pair)
            orders = [{"order": o, "winner_shown": shown(o, v), "p_first": None, "probs": None, "mass": None,
                       "raw": None, "attempts": 0} for o in _orders(self.swap)]
            p_a = {"A": 1.0, "B": 0.0, "tie": 0.5}[v]
            records.append(make_record(pair, orders, self.swap, "baseline:longer", "baseline", p_a))
        return records


class RandomJudge(PairJudge):
    """Picks the first or the second shown answer with equal odds, seeded per (seed, pair, order).

    The draw depends only on those, so a pair gets the same verdict in any batch, subset or rerun. With
    ``swap="conservative"`` the two orders are drawn independently: half the pairs come out as ties,
    and position consistency is 50% in expectation.
    """

    name = "random"

    def __init__(self, seed: int = 0, swap: str = "none"):
        _check_swap(swap)
        self.seed = seed
        self.swap = swap

    def _draw(self, pair, order: str) -> float:
        # The pair's text goes in with its id: files that number pairs 1, 2, ... get independent coins.
        return content_unit(self.seed, pair.id, pair.question, pair.answer_a, pair.answer_b, order)

    def judge_pairs(self, pairs) -> list[dict]:
        records = []
        for pair in pairs:
            orders = []
            for o in _orders(self.swap):
                first = self._draw(pair, o) < 0.5
                orders.append({"order": o, "winner_shown": "first" if first else "second",
                               "p_first": 0.5, "probs": None, "mass": None, "raw": None, "attempts": 0})
            records.append(make_record(pair, orders, self.swap, "baseline:random", "baseline", 0.5))
        return records

