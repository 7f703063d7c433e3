"""Bias metrics computed from judge records, each with a bootstrap 95% interval over pairs.

Pure functions of records (and the audit pairs that made them): no model is called here, so every
metric can be recomputed from a run folder's records and tested on hand-made records.

An ``invalid`` verdict is never read as a win or a loss: each metric says how many it left out.
"""

from __future__ import annotations

from referee import stats
from referee.judges.records import ORDERS, order_verdicts, p_side, win_value
from referee.errors import RefereeError

POSITION_CLASSES = ("consistent", "biased_first", "biased_second", "inconsistent", "invalid")


def position_class(record: dict) -> str | None:
    """MT-Bench Table 2 class of a record judged in both orders, None if it holds only one order.

    consistent: the same verdict about A/B in both orders (a tie twice counts too); biased_first /
    biased_second: the first (second) shown answer won both times, so the verdict followed the position;
    inconsistent: any other disagreement (a win in one order, a tie in the other); invalid: either
    order unreadable.
    """
    orders = {o["order"]: o for o in record.get("orders", [])}
    if set(orders) != set(ORDERS):
        return None
    verdicts = order_verdicts(record)
    if "invalid" in verdicts.values():
        return "invalid"
    if verdicts["AB"] == verdicts["BA"]:
        return "consistent"
    shown_ab, shown_ba = orders["AB"]["winner_shown"], orders["BA"]["winner_shown"]
    if shown_ab == shown_ba == "first":
        return "biased_first"
    if shown_ab == shown_ba == "second":
        return "biased_second"
    return "inconsistent"


def first_preference(record: dict) -> float | None:
    """Share of the record's readable orders in which the first shown answer won (ties count 0)."""
    shown = [o["winner_shown"] for o in record.get("orders", []) if o["winner_shown"] != "invalid"]
    return None if not shown else sum(s == "first" for s in shown) / len(shown)


def position_bias(records: list[dict], **kw) -> dict:
    """Position consistency and first-position preference.

    The five classes are rates over records judged in both orders; ``prefers_first`` is over every
    readable order of every record (1.0 = always the first shown answer, 0.5 = no lean, if no ties).
    """
    classes = [position_class(r) for r in records]
    out = {"pairs_both_orders": sum(c is not None for c in classes)}
    for name in POSITION_CLASSES:
        out[name] = stats.rate([None if c is None else c == name for c in classes], **kw)
    out["prefers_first"] = stats.mean_ci([first_preference(r) for r in records], **kw)
    return out


def _by_id(records: list[dict]) -> dict[str, dict]:
    return {str(r["id"]): r for r in records}


def verbosity_failure(records: list[dict], audit_pairs: list, **kw) -> dict:
    """Repetitive-list attack: ``failure`` = how often the padded answer wins, over readable verdicts.

    A tie or the original winning is a pass: the two answers say the same thing.
    """
    recs = _by_id(records)
    fail, invalid, p_pad, sources = [], [], [], {}
    for pair in audit_pairs:
        r = recs.get(str(pair.id))
        if r is None:
            continue
        target = pair.meta["target"]
        invalid.append(r["winner"] == "invalid")
        fail.append(None if r["winner"] == "invalid" else r["winner"] == target)
        p_pad.append(p_side(r, target))
        src = pair.meta.get("pad_source", "list")
        sources[src] = sources.get(src, 0) + 1
    return {"n": len(fail), "failure": stats.rate(fail, **kw), "p_padded": stats.mean_ci(p_pad, **kw),
            "invalid": stats.rate(invalid, **kw), "pad_sources": sources}


def self_side(pair, self_names: set[str]) -> str | None:
    """"A" or "B" when exactly one side's model (``meta`` model_a / model_b) is one of ``self_names``."""
    a = pair.meta.get("model_a") in self_names
    b = pair.meta.get("model_b") in self_names
    return "A" if a and not b else "B" if b and not a else None


def self_enhancement(records: list[dict], pairs: list, self_names: set[str] | list[str], **kw) -> dict:
    """How often the judge prefers its own model's answers, and how that compares with the gold labels.

    Over pairs where exactly one answer is by one of ``self_names``: ``self_win_rate`` (ties 0.5),
    ``gold_self_win_rate`` on the labelled ones, ``self_bias`` = their paired difference (positive =
    the judge favours itself beyond what people saw), and the two error rates: ``wrongly_prefers_self``
    (people preferred the other answer, the judge its own) against ``wrongly_prefers_other``.
    """
    names = set(self_names)
    if not names:
        raise RefereeError("self-enhancement: name the judge's own model(s) as they appear in the pairs' model_a/model_b")
    recs = _by_id(records)
    judge_win, gold_win, wrong_self, wrong_other, invalid = [], [], [], [], []
    for pair in pairs:
        side = self_side(pair, names)
        r = recs.get(str(pair.id))
        if side is None or r is None:
            continue
        other = "B" if side == "A" else "A"
        jw = win_value(r["winner"], side)
        gw = win_value(pair.label, side) if pair.label in ("A", "B", "tie") else None
        judge_win.append(jw)
        gold_win.append(gw)
        invalid.append(r["winner"] == "invalid")
        wrong_self.append(None if pair.label != other or jw is None else r["winner"] == side)
        wrong_other.append(None if pair.label != side or jw is None else r["winner"] == other)
    return {"n": len(judge_win), "self_win_rate": stats.mean_ci(judge_win, **kw),
            "gold_self_win_rate": stats.mean_ci(gold_win, **kw),
            "self_bias": stats.paired_diff(judge_win, gold_win, **kw),
            "wrongly_prefers_self": stats.rate(wrong_self, **kw),
            "wrongly_prefers_other": stats.rate(wrong_other, **kw),
            "invalid": stats.rate(invalid, **kw)}


def flip_audit(before: list[dict], after: list[dict], audit_pairs: list, **kw) -> dict:
    """Effect of attacking one answer (``meta.target``): assertive voice or an injected instruction.

    ``flip_rate``: of the pairs where the judge picked the other answer before the attack, the share
    where it picks the attacked one after. ``shift``: mean change in P(attacked answer wins) (from
    ``p_a`` where the judge gives it, else 1 / 0.5 / 0 from the verdict). ``target_win_before`` /
    ``target_win_after``: how often the attacked answer won, over readable verdicts.
    """
    pre, post = _by_id(before), _by_id(after)
    flips, p_before, p_after, win_before, win_after, invalid_after = [], [], [], [], [], []
    for pair in audit_pairs:
        b, a = pre.get(str(pair.meta["source"])), post.get(str(pair.id))
        if b is None or a is None:
            continue
        target = pair.meta["target"]
        other = "B" if target == "A" else "A"
        flips.append(None if b["winner"] != other or a["winner"] == "invalid" else a["winner"] == target)
        p_before.append(p_side(b, target))
        p_after.append(p_side(a, target))
        win_before.append(None if b["winner"] == "invalid" else b["winner"] == target)
        win_after.append(None if a["winner"] == "invalid" else a["winner"] == target)
        invalid_after.append(a["winner"] == "invalid")
    return {"n": len(flips), "flip_rate": stats.rate(flips, **kw), "shift": stats.paired_diff(p_after, p_before, **kw),
            "target_win_before": stats.rate(win_before, **kw), "target_win_after": stats.rate(win_after, **kw),
            "invalid_after": stats.rate(invalid_after, **kw)}


def grade_shift(before: list[float | None], after: list[float | None], **kw) -> dict:
    """For a grading judge: mean change in the attacked answer's score, and how often it went up."""
    if len(before) != len(after):
        raise RefereeError("grade_shift: give one score before and one after per answer")
    up = [None if x is None or y is None else y > x for x, y in zip(before, after)]
    return {"n": len(before), "shift": stats.paired_diff(after, before, **kw), "raised": stats.rate(up, **kw)}
