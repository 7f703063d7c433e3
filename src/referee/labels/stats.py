"""What the stored labels say: agreement between annotators, with gold and with a judge, and what the
critique buys (the assistance experiment: the same annotators, items randomly shown with or without it).

Units. Pairs: one judgement is one unit; it agrees with gold when its verdict (A, B or tie about the
file's answers) equals the gold one. Steps: one step is one unit; steps a person marked neutral (0) or
whose gold is missing or neutral are left out, + is compared as right and - as wrong; a judgement's
score is the share of its compared steps that agree, and "first wrong step" agreement is reported too
(both saying "no wrong step" counts as agreeing).

Seconds per label are measured by the server: from sending the page to receiving the answer.
"""

from __future__ import annotations

import json
from itertools import combinations

from referee.labels.items import LabelItem
from referee.stats import Estimate, cohen_kappa, mean_ci, unpaired_diff

STEP_VALUE = {"+": 1.0, "-": 0.0, "0": None}


def step_labels(row: dict) -> list[str]:
    return json.loads(row["label"])


def first_wrong(labels: list) -> int | None:
    """The index of the first step labelled wrong (- or gold 0.0), None when none is."""
    return next((i for i, v in enumerate(labels) if v in ("-", 0.0)), None)


def gold_score(row: dict, item: LabelItem) -> float | None:
    """How far one judgement agrees with the item's gold (module doc); None when there is nothing to compare."""
    if not item.has_gold():
        return None
    if item.mode == "pairs":
        return float(row["label"] == item.gold)
    pairs = [(STEP_VALUE[p], g) for p, g in zip(step_labels(row), item.gold) if STEP_VALUE[p] is not None
             and g is not None]
    return sum(p == g for p, g in pairs) / len(pairs) if pairs else None


def first_wrong_agrees(row: dict, item: LabelItem) -> float | None:
    if item.mode != "steps" or not item.has_gold():
        return None
    return float(first_wrong(step_labels(row)) == first_wrong(item.gold))


def seconds(row: dict) -> float:
    return row["answered_at"] - row["shown_at"]


def _units(row: dict, item: LabelItem) -> dict:
    """The unit labels of one judgement, keyed for matching another annotator's (pairs: one; steps: one per step)."""
    if item.mode == "pairs":
        return {(item.id, None): row["label"]}
    return {(item.id, k): v for k, v in enumerate(step_labels(row))}


def between_annotators(rows: list[dict], items: dict[str, LabelItem], seed: int = 0) -> list[dict]:
    """Cohen's kappa for every two annotators over the units both labelled."""
    by_annotator: dict[str, dict] = {}
    for r in rows:
        by_annotator.setdefault(r["annotator"], {}).update(_units(r, items[r["item"]]))
    out = []
    for a, b in combinations(sorted(by_annotator), 2):
        shared = sorted(set(by_annotator[a]) & set(by_annotator[b]), key=str)
        kappa = cohen_kappa([by_annotator[a][u] for u in shared], [by_annotator[b][u] for u in shared], seed=seed)
        agree = mean_ci([float(by_annotator[a][u] == by_annotator[b][u]) for u in shared], seed=seed)
        out.append({"annotators": [a, b], "units": len(shared), "kappa": kappa.to_dict(), "agreement": agree.to_dict()})
    return out


def with_judge(rows: list[dict], verdicts: dict[str, str], seed: int = 0) -> dict:
    """Agreement of people's pair verdicts with a judge's (``verdicts``: item id -> A, B, tie or invalid);
    an invalid judge verdict is counted, not compared."""
    compared = [r for r in rows if verdicts.get(r["item"]) in ("A", "B", "tie")]
    invalid = sum(verdicts.get(r["item"]) == "invalid" for r in rows)
    same = mean_ci([float(r["label"] == verdicts[r["item"]]) for r in compared], seed=seed)
    kappa = cohen_kappa([r["label"] for r in compared], [verdicts[r["item"]] for r in compared], seed=seed)
    return {"judgements": len(compared), "judge_invalid": invalid, "missing": len(rows) - len(compared) - invalid,
            "agreement": same.to_dict(), "kappa": kappa.to_dict()}


def _group(rows: list[dict], items: dict[str, LabelItem], seed: int) -> dict:
    scores = [gold_score(r, items[r["item"]]) for r in rows]
    times = [seconds(r) for r in rows]
    first = [first_wrong_agrees(r, items[r["item"]]) for r in rows]
    return {"judgements": len(rows), "with_gold": sum(s is not None for s in scores),
            "gold_agreement": mean_ci(scores, seed=seed).to_dict(),
            "first_wrong_step_agreement": mean_ci(first, seed=seed).to_dict(),
            "seconds": mean_ci(times, seed=seed).to_dict(),
            "median_seconds": sorted(times)[len(times) // 2] if times else None,
            "_scores": scores, "_times": times}


def assistance(rows: list[dict], items: dict[str, LabelItem], seed: int = 0) -> dict:
    """Gold agreement and seconds per label with and without the critique, and the differences
    (with minus without) with bootstrap intervals over judgements."""
    shown = _group([r for r in rows if r["critique_shown"]], items, seed)
    hidden = _group([r for r in rows if not r["critique_shown"]], items, seed)
    effect = {"gold_agreement": unpaired_diff(shown["_scores"], hidden["_scores"], seed=seed).to_dict(),
              "seconds": unpaired_diff(shown["_times"], hidden["_times"], seed=seed).to_dict()}
    strip = lambda g: {k: v for k, v in g.items() if not k.startswith("_")}  # noqa: E731
    return {"with_critique": strip(shown), "without_critique": strip(hidden), "difference": effect}


def summary(rows: list[dict], items: list[LabelItem], verdicts: dict[str, str] | None = None, seed: int = 0) -> dict:
    """Everything ``referee label stats`` prints."""
    by_id = {i.id: i for i in items}
    per_annotator = {}
    for name in sorted({r["annotator"] for r in rows}):
        mine = [r for r in rows if r["annotator"] == name]
        per_annotator[name] = {"labelled": len(mine), "of": len(items),
                               "gold_agreement": mean_ci([gold_score(r, by_id[r["item"]]) for r in mine],
                                                         seed=seed).to_dict()}
    out = {"items": len(items), "judgements": len(rows), "annotators": per_annotator,
           "between_annotators": between_annotators(rows, by_id, seed),
           "assistance": assistance(rows, by_id, seed)}
    if items and items[0].mode == "pairs":
        out["labels"] = {v: sum(r["label"] == v for r in rows) for v in ("A", "B", "tie")}
        out["picked_side"] = {side: sum(_side(r) == side for r in rows) for side in ("left", "right")}
        if verdicts is not None:
            out["judge"] = with_judge(rows, verdicts, seed)
    return out


def _side(row: dict) -> str | None:
    """Where the answer the person picked stood on their page (people have position biases too)."""
    if row["label"] not in ("A", "B"):
        return None
    return "left" if row["label"] == row["shown_order"][0] else "right"


def estimate(d: dict) -> Estimate:
    return Estimate(d["value"], d["low"], d["high"], d["n"])
