"""Checks of a self-rewarding run: is the model a usable judge of itself, and does it beat M0?"""

from __future__ import annotations

import statistics

from referee import stats
from referee.judges import GradingJudge, PairwiseJudge
from referee.judges.metrics import summarize
from referee.models.base import Model
from referee.tasks.pairs import Pair


def self_judge_quality(model: Model, heldout: list[dict], verdict: str, seed: int = 0) -> tuple[dict, list[dict]]:
    """Grade held-out EFT answers with the model as judge and compare with the gold grades.

    Reports the invalid rate, exact agreement (the judge's most likely score equals the gold score),
    and Pearson / Spearman correlations of the judge's score (expected score in probability mode) with
    the gold grades, each with a bootstrap interval.
    """
    grader = GradingJudge(model, template="additive_0to5", verdict=verdict, seed=seed)
    records = grader.grade([e["prompt"] for e in heldout], [e["response"] for e in heldout])
    gold = [e["score"] for e in heldout]
    judged = [(r["expected_score"] if r.get("expected_score") is not None else r["score"]) if r["valid"] else None
              for r in records]
    exact = [None if r["score"] is None else float(round(r["score"]) == g) for r, g in zip(records, gold)]
    invalid = [float(not r["valid"]) for r in records]
    quality = {"answers": len(heldout), "invalid_rate": stats.mean_ci(invalid).to_dict(),
               "exact_agreement": stats.mean_ci(exact).to_dict(),
               "pearson": stats.pearson(judged, gold).to_dict(), "spearman": stats.spearman(judged, gold).to_dict()}
    for rec, g in zip(records, gold):
        rec["gold"] = g
    return quality, records


def win_rate(judge_model: Model, ids: list[str], prompts: list[str], new: list[str], base: list[str],
             seed: int = 0) -> tuple[dict, list[dict]]:
    """Pairwise judgments of new answers (A) against the base model's (B), both orders, probabilities
    averaged. The win rate comes with its interval, and beside it the tie rate and the judge's position
    consistency: a judge that always picks one position turns comparisons into ties, and that shows."""
    pairs = [Pair(i, [{"role": "user", "content": p}], a, b) for i, p, a, b in zip(ids, prompts, new, base)]
    judge = PairwiseJudge(judge_model, template="pairwise", verdict="probability", swap="average", seed=seed)
    records = judge.judge_pairs(pairs)
    summary = summarize(records)
    result = {
        "pairs": len(records), "judge": judge_model.spec,
        "win_rate": stats.rate([r["winner"] == "A" for r in records]).to_dict(),
        "loss_rate": stats.rate([r["winner"] == "B" for r in records]).to_dict(),
        "tie_rate": summary["tie_rate"], "invalid_rate": summary["invalid_rate"],
        "position_consistency": summary.get("position_consistency"),
        "first_position_rate": summary.get("first_position_rate"),
        "mean_p_new": statistics.fmean(r["p_a"] for r in records if r.get("p_a") is not None)
        if any(r.get("p_a") is not None for r in records) else None,
    }
    return result, records


def length_stats(texts: list[str], tokens: list[int] | None = None) -> dict:
    chars = [len(t) for t in texts]
    out = {"answers": len(texts), "mean_chars": statistics.fmean(chars) if chars else None,
           "median_chars": statistics.median(chars) if chars else None}
    if tokens:
        out["mean_tokens"] = statistics.fmean(tokens)
    return out
