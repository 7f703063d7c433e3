"""Stored labels as training data: TRL preference pairs or TRL stepwise records, which ``referee rm train``
reads as they are (``--kind rm`` and ``--kind prm``).

Several annotators: each item takes the majority of its labels. Pairs: a tie verdict, or no majority,
gives no pair (counted). Steps: each step takes the majority of its labels; a step without one gets a
null label (kept as context, not trained on, as ``rm train`` reads null). A neutral step (0) becomes
positive or negative by ``neutral`` (TRL's stepwise format has true/false only; PRM800K's best reward
model counted neutral as positive), or stays ``"neutral"``, which referee reads by its own neutral policy.
"""

from __future__ import annotations

import json
from collections import Counter

from referee.errors import RefereeError
from referee.labels.items import LabelItem

NEUTRAL_CHOICES = ("positive", "negative", "keep")


def _majority(values: list) -> object | None:
    """The value most labels give, None when the top two are level."""
    top = Counter(values).most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def preference_records(rows: list[dict], items: list[LabelItem]) -> tuple[list[dict], dict]:
    by_item: dict[str, list[str]] = {}
    for r in rows:
        by_item.setdefault(r["item"], []).append(r["label"])
    out, counts = [], Counter()
    for item in items:
        labels = by_item.get(item.id)
        if not labels:
            continue
        verdict = _majority(labels)
        if verdict in ("A", "B"):
            chosen, rejected = (0, 1) if verdict == "A" else (1, 0)
            out.append({"id": item.id, "prompt": item.question, "chosen": item.answers[chosen],
                        "rejected": item.answers[rejected], "votes": dict(Counter(labels))})
            counts["pairs"] += 1
        else:
            counts["tie" if verdict == "tie" else "no_majority"] += 1
    return out, {"pairs": counts["pairs"], "dropped_tie": counts["tie"], "dropped_no_majority": counts["no_majority"]}


def stepwise_records(rows: list[dict], items: list[LabelItem], neutral: str = "positive") -> tuple[list[dict], dict]:
    if neutral not in NEUTRAL_CHOICES:
        raise RefereeError(f"label export: neutral={neutral!r}: expected one of {', '.join(NEUTRAL_CHOICES)}")
    value = {"+": True, "-": False, "0": {"positive": True, "negative": False, "keep": "neutral"}[neutral]}
    by_item: dict[str, list[list[str]]] = {}
    for r in rows:
        by_item.setdefault(r["item"], []).append(json.loads(r["label"]))
    out, unsettled = [], 0
    for item in items:
        labels = by_item.get(item.id)
        if not labels:
            continue
        steps = [_majority([one[k] for one in labels]) for k in range(len(item.answers))]
        unsettled += sum(s is None for s in steps)
        out.append({"id": item.id, "prompt": item.question, "completions": item.answers,
                    "labels": [None if s is None else value[s] for s in steps], "annotators": len(labels)})
    return out, {"solutions": len(out), "steps_without_majority": unsettled}


def export_records(rows: list[dict], items: list[LabelItem], neutral: str = "positive") -> tuple[list[dict], dict]:
    if not items:
        raise RefereeError("label export: the store holds no items")
    if items[0].mode == "pairs":
        return preference_records(rows, items)
    return stepwise_records(rows, items, neutral)
