"""Checks of a self-rewarding run: is the model a usable judge of itself, and does it beat M0?

Each check is two steps: the model calls that make records (stages of the run), and a summary computed
from those records alone, so a resumed run that reads the records back reports the same numbers.
"""

from __future__ import annotations

import statistics

from referee import stats
from referee.judges.build import JudgeConfig
from referee.judges.grades import Grade
from referee.judges.metrics import summarize
from referee.models.base import Model
from referee.supervisors import llm_judge
from referee.tasks.pairs import Pair


def grade_heldout(model: Model, heldout: list[dict], verdict: str, seed: int = 0) -> list[dict]:
    """The model's 0-5 grades of held-out EFT answers, each record carrying the gold grade."""
    grader = llm_judge(model, JudgeConfig(mode="single", template="additive_0to5", verdict=verdict, seed=seed))
    records = grader.grade([e["prompt"] for e in heldout], [e["response"] for e in heldout])
    for rec, e in zip(records, heldout):
        rec["gold"] = e["score"]
    return records


def self_judge_quality(records: list[dict]) -> dict:
    """Invalid rate, exact agreement (the judge's most likely score equals the gold score) and Pearson /
    Spearman of the judge's score (expected score in probability mode) with the gold grades, each with a
    bootstrap interval."""
    gold = [r["gold"] for r in records]
    judged = [Grade(r).value for r in records]
    exact = [None if r["score"] is None else float(round(r["score"]) == g) for r, g in zip(records, gold)]
    invalid = [float(not r["valid"]) for r in records]
    return {"answers": len(records), "invalid_rate": stats.mean_ci(invalid).to_dict(),
            "exact_agreement": stats.mean_ci(exact).to_dict(),
            "pearson": stats.pearson(judged, gold).to_dict(), "spearman": stats.spearman(judged, gold).to_dict()}


def judge_against_base(judge_model: Model, ids: list[str], prompts: list[str], new: list[str], base: list[str],
                       seed: int = 0) -> list[dict]:
    """Pairwise judgments of new answers (A) against the base model's (B), both orders, probabilities
    averaged."""
    pairs = [Pair(i, [{"role": "user", "content": p}], a, b) for i, p, a, b in zip(ids, prompts, new, base)]
    judge = llm_judge(judge_model, JudgeConfig(template="pairwise", verdict="probability", swap="average", seed=seed))
    return judge.judge_pairs(pairs)


def win_rate(records: list[dict], judge: str) -> dict:
    """The win rate with its interval, and beside it the tie rate and the judge's position consistency:
    a judge that always picks one position turns comparisons into ties, and that shows."""
    summary = summarize(records)
    p_new = [r["p_a"] for r in records if r.get("p_a") is not None]
    return {
        "pairs": len(records), "judge": judge,
        "win_rate": stats.rate([r["winner"] == "A" for r in records]).to_dict(),
        "loss_rate": stats.rate([r["winner"] == "B" for r in records]).to_dict(),
        "tie_rate": summary["tie_rate"], "invalid_rate": summary["invalid_rate"],
        "position_consistency": summary.get("position_consistency"),
        "first_position_rate": summary.get("first_position_rate"),
        "mean_p_new": statistics.fmean(p_new) if p_new else None,
    }


def length_stats(texts: list[str], tokens: list[int] | None = None) -> dict:
    chars = [len(t) for t in texts]
    out = {"answers": len(texts), "mean_chars": statistics.fmean(chars) if chars else None,
           "median_chars": statistics.median(chars) if chars else None}
    if tokens:
        out["mean_tokens"] = statistics.fmean(tokens)
    return out
