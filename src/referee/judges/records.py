"""Reading judge records: what each shown order said about the underlying answers A and B.

A judge record (``PairwiseJudge.judge_pairs``) keeps one entry per order it judged: order "AB" shows
answer A first, "BA" shows answer B first, and ``winner_shown`` is "first", "second", "tie" or
"invalid". The helpers here turn that back into verdicts about A and B, so the audits can compare
orders, and build records in the same shape for the baselines.
"""

from __future__ import annotations

from referee.chat import as_chat
from referee.errors import RefereeError
from referee.tasks.pairs import Pair
from referee.verifiers.base import Comparison, PairwiseVerifier

VERDICTS = ("A", "B", "tie", "invalid")
ORDERS = ("AB", "BA")
SHOWN = ("first", "second", "tie", "invalid")
SWAPS = ("none", "conservative", "average", "random")  # how a pair's shown orders are chosen and combined


def underlying(order: str, winner_shown: str) -> str:
    """The verdict about answers A/B that ``winner_shown`` means in ``order``."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; expected AB or BA")
    if winner_shown in ("tie", "invalid"):
        return winner_shown
    if winner_shown not in ("first", "second"):
        raise ValueError(f"unknown winner_shown {winner_shown!r}")
    first, second = order[0], order[1]
    return first if winner_shown == "first" else second


def shown(order: str, verdict: str) -> str:
    """The inverse of ``underlying``: what a verdict about A/B looks like in ``order``."""
    if verdict in ("tie", "invalid"):
        return verdict
    return "first" if order[0] == verdict else "second"


def order_verdicts(record: dict) -> dict[str, str]:
    """{order: verdict about A/B} for each order the record holds."""
    return {o["order"]: underlying(o["order"], o["winner_shown"]) for o in record.get("orders", [])}


def both_orders(record: dict) -> bool:
    return set(order_verdicts(record)) == set(ORDERS)


def combine(verdicts: dict[str, str], swap: str, probs: dict[str, dict] | None = None) -> str:
    """The final verdict from the per-order verdicts: one order as is; two orders conservatively (a win
    only when both agree, otherwise a tie; invalid when either order is unreadable). With ``swap="average"``
    and each order's shown probabilities (``probs``: {order: {"first", "second", "tie": p}}), the mean
    three-way probabilities decide instead; verdicts without probabilities fall back to the conservative rule."""
    values = list(verdicts.values())
    if not values:
        return "invalid"
    if len(values) == 1:
        return values[0]
    if "invalid" in values:
        return "invalid"
    if swap == "average" and probs is not None:
        return _averaged(probs)
    return values[0] if all(v == values[0] for v in values) else "tie"


def _averaged(probs: dict[str, dict]) -> str:
    """The most likely verdict about A/B under the orders' mean probabilities; a tie when they cancel out."""
    mean = {"A": 0.0, "B": 0.0, "tie": 0.0}
    for order, shown_probs in probs.items():
        for shown_verdict, prob in shown_probs.items():
            mean[underlying(order, shown_verdict)] += prob / len(probs)
    best = max(("A", "B", "tie"), key=lambda k: mean[k])
    if best != "tie" and abs(mean["A"] - mean["B"]) < 1e-9:
        best = "tie"  # the two orders cancel out exactly: no preference
    return best


def win_value(verdict: str, side: str) -> float | None:
    """1 if ``side`` won, 0 if it lost, 0.5 for a tie, None for invalid."""
    if verdict == "invalid":
        return None
    if verdict == "tie":
        return 0.5
    return 1.0 if verdict == side else 0.0


def p_side(record: dict, side: str) -> float | None:
    """P(``side`` is better): from ``p_a`` when the judge gave one, else from the verdict (1, 0.5, 0)."""
    p_a = record.get("p_a")
    if p_a is not None:
        return float(p_a) if side == "A" else 1.0 - float(p_a)
    return win_value(record["winner"], side)


def with_correct(record: dict) -> dict:
    """``record`` with ``labelled`` (its pair has a label: A, B or tie) and ``correct`` (the verdict is the
    label; None when it is unreadable or there is no label), so ``referee compare --metric correct`` pairs
    judges item by item: ``--where labelled=True`` keeps the pairs it applies to, and ``--missing zero``
    counts an unreadable verdict as wrong (of all), by default leaving it out (of answered)."""
    labelled = record.get("label") in VERDICTS[:3]
    correct = None if not labelled or record["winner"] == "invalid" else record["winner"] == record["label"]
    return {**record, "labelled": labelled, "correct": correct}


def make_record(pair, orders: list[dict], swap: str, template: str, verdict_mode: str,
                p_a: float | None = None) -> dict:
    """A record in the judge_pairs shape from per-order entries (used by the baselines)."""
    verdict = combine({o["order"]: underlying(o["order"], o["winner_shown"]) for o in orders}, swap)
    return with_correct({"id": pair.id, "winner": verdict, "p_a": p_a, "label": pair.label, "template": template,
                         "verdict_mode": verdict_mode, "swap": swap, "category": pair.category, "truncated": False,
                         "orders": orders})


class PairJudge(PairwiseVerifier):
    """A pairwise verifier whose verdicts are ``judge_pairs`` records (LLM judges, panels, baselines):
    ``compare_many`` is written once here, over ``judge_pairs``."""

    def judge_pairs(self, pairs) -> list[dict]:
        raise NotImplementedError

    def compare_many(self, prompts, a, b) -> list[Comparison]:
        if not len(prompts) == len(a) == len(b):
            raise RefereeError("compare_many: give as many answers A and B as prompts")
        pairs = [Pair(str(i), as_chat(p), x, y) for i, (p, x, y) in enumerate(zip(prompts, a, b))]
        return [Comparison(r["winner"], r["p_a"], detail=r) for r in self.judge_pairs(pairs)]
