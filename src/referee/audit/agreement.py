"""Agreement of a judge with human labels: S1, S2, accuracy, Cohen's kappa, per category; correlations
for graded answers. Definitions of S1 and S2 are in ``referee.stats``.

Inputs are judge records (``judge_pairs`` shape, each carrying the pair's human ``label``) or, for a
grading judge, its scores beside human scores.
"""

from __future__ import annotations

from referee import stats
from referee.errors import RefereeError


def _labelled(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("label") in ("A", "B", "tie")]


def pairwise_agreement(records: list[dict], per_category: bool = True, **kw) -> dict:
    """Agreement of the records' verdicts with their human labels.

    ``s1``, ``s2`` (MT-Bench setups), ``accuracy`` (non-tie human labels, judge ties and unreadable verdicts
    count as misses: of all), ``accuracy_answered`` (the same over readable verdicts only), ``kappa``
    (Cohen's, over readable verdicts, classes A/B/tie), ``invalid`` and ``judge_tie`` rates, and the same
    per category when records have one.
    """
    recs = _labelled(records)
    if not recs:
        raise RefereeError("agreement: no record has a human label (A, B or tie) to compare with")
    out = _block(recs, **kw)
    out["unlabelled"] = len(records) - len(recs)
    if per_category:
        cats = sorted({str(r["category"]) for r in recs if r.get("category")})
        if cats:
            out["per_category"] = {c: _block([r for r in recs if str(r.get("category")) == c], **kw) for c in cats}
    return out


def _block(recs: list[dict], **kw) -> dict:
    judge = [r["winner"] for r in recs]
    human = [r["label"] for r in recs]
    readable = [None if j == "invalid" else j for j in judge]
    return {"n": len(recs),
            "s1": stats.agreement_s1(judge, human, **kw),
            "s2": stats.agreement_s2(judge, human, **kw),
            "accuracy": stats.accuracy_no_tie(judge, human, **kw),
            "accuracy_answered": stats.accuracy_no_tie(readable, human, **kw),
            "kappa": stats.cohen_kappa(readable, human, **kw),
            "invalid": stats.rate([j == "invalid" for j in judge], **kw),
            "judge_tie": stats.rate([j == "tie" for j in judge], **kw),
            "human_tie": stats.rate([h == "tie" for h in human], **kw)}


def graded_agreement(judge_scores: list[float | None], human_scores: list[float | None], **kw) -> dict:
    """Pearson and Spearman between a grading judge's scores and human scores of the same answers.

    A None judge score (unreadable grade) is left out of the correlations and counted in ``invalid``.
    """
    if len(judge_scores) != len(human_scores):
        raise RefereeError("graded agreement: give one judge score per human score")
    return {"n": len(judge_scores),
            "pearson": stats.pearson(judge_scores, human_scores, **kw),
            "spearman": stats.spearman(judge_scores, human_scores, **kw),
            "invalid": stats.rate([None if h is None else j is None for j, h in zip(judge_scores, human_scores)], **kw)}


HUMAN_SIGN = {"A": 1.0, "B": -1.0, "tie": 0.0}


def margin_correlation(records: list[dict], **kw) -> dict:
    """For grade-derived records: Pearson and Spearman between the judge's score margin (A minus B)
    and the human preference (+1 A, 0 tie, -1 B). Pairs with an unreadable grade are left out."""
    margins, human = [], []
    for r in _labelled(records):
        sa, sb = r.get("score_a"), r.get("score_b")
        margins.append(None if sa is None or sb is None else float(sa) - float(sb))
        human.append(HUMAN_SIGN[r["label"]])
    return {"pearson": stats.pearson(margins, human, **kw), "spearman": stats.spearman(margins, human, **kw)}
