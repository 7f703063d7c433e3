"""Summary numbers for a set of pairwise judgments: win, tie and invalid rates, how often the first
shown answer won, and position consistency where both orders were judged. Agreement with labels here
is the plain match rate; the statistics with intervals live in the audit and agreement tools."""

from __future__ import annotations

from referee.judges.records import underlying


def summarize(records: list[dict]) -> dict:
    n = len(records)
    if n == 0:
        return {"pairs": 0}
    count = {w: sum(r["winner"] == w for r in records) for w in ("A", "B", "tie", "invalid")}
    out = {"pairs": n, "win_rate_a": count["A"] / n, "win_rate_b": count["B"] / n, "tie_rate": count["tie"] / n,
           "invalid_rate": count["invalid"] / n, "invalid": count["invalid"],
           "truncated": sum(bool(r.get("truncated")) for r in records)}
    orders = [o for r in records for o in r.get("orders", [])]
    decided = [o for o in orders if o["winner_shown"] in ("first", "second")]
    if decided:
        out["first_position_rate"] = sum(o["winner_shown"] == "first" for o in decided) / len(decided)
    if orders:
        out["order_invalid_rate"] = sum(o["winner_shown"] == "invalid" for o in orders) / len(orders)
        out["mean_attempts"] = sum(o.get("attempts", 1) for o in orders) / len(orders)
        masses = [o["mass"] for o in orders if o.get("mass") is not None]
        if masses:
            out["mean_mass"] = sum(masses) / len(masses)
    both = [r for r in records if len(r.get("orders", [])) == 2]
    if both:
        valid = [r for r in both if all(o["winner_shown"] != "invalid" for o in r["orders"])]
        same = [r for r in valid if len({underlying(o["order"], o["winner_shown"]) for o in r["orders"]}) == 1]
        out["position_consistency"] = len(same) / len(valid) if valid else None
        out["position_consistency_pairs"] = len(valid)
    labelled = [r for r in records if r.get("label") in ("A", "B", "tie")]
    if labelled:
        out["labelled"] = len(labelled)
        out["label_agreement"] = sum(r["winner"] == r["label"] for r in labelled) / len(labelled)
    return out


def summarize_grades(records: list[dict]) -> dict:
    n = len(records)
    if n == 0:
        return {"answers": 0}
    scores = [r["score"] for r in records if r["valid"]]
    out = {"answers": n, "invalid": n - len(scores), "invalid_rate": (n - len(scores)) / n,
           "truncated": sum(bool(r.get("truncated")) for r in records),
           "mean_score": sum(scores) / len(scores) if scores else None}
    expected = [r["expected_score"] for r in records if r.get("expected_score") is not None]
    if expected:
        out["mean_expected_score"] = sum(expected) / len(expected)
    return out
