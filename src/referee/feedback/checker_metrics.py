"""A feedback loop measured by an exact checker: each model's accuracy and its change against M1, how far
a judge's scores follow the checker, and how often the chosen side of a pair is really the better one.
Records in, numbers out: a resumed run that reads its records back reports the same figures."""

from __future__ import annotations

from collections import Counter

from referee.stats import auc, bootstrap, mean_ci, paired_diff, rate


def counts(values) -> dict[str, int]:
    return dict(sorted(Counter(str(v) for v in values).items()))


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def model_summaries(evaluate: dict[str, list[dict]], seed: int) -> dict:
    """Accuracy per model, and every model's change against M1 on the same problems (paired bootstrap)."""
    base = [float(r["correct"]) for r in evaluate["M1"]]
    out = {}
    for name, records in evaluate.items():
        correct = [float(r["correct"]) for r in records]
        out[name] = {"accuracy": rate([r["correct"] for r in records], seed=seed).to_dict(),
                     "change_vs_m1": None if name == "M1" else paired_diff(correct, base, seed=seed).to_dict(),
                     "no_answer_rate": _mean(float(r["no_answer"]) for r in records),
                     "mean_chars": _mean(len(r["answer"]) for r in records),
                     "mean_steps": _mean(r["steps"] for r in records),
                     "mean_tokens": _mean(r["completion_tokens"] for r in records),
                     "problems": len(records)}
    return out


def judge_agreement(candidates: list[dict], scores: list[float | None], seed: int = 0) -> dict:
    """How far a judge's scores follow the checker on the candidates: AUC for right against wrong, and the
    unreadable share (counted, never replaced by a guess)."""
    kept = [(s, float(c["correct"])) for c, s in zip(candidates, scores) if s is not None]
    est = bootstrap(auc, [s for s, _ in kept], [y for _, y in kept], seed=seed) if kept else None
    return {"auc": est.to_dict() if est else None, "scored": len(kept), "invalid": len(candidates) - len(kept),
            "invalid_rate": (len(candidates) - len(kept)) / len(candidates) if candidates else None}


def pair_quality(pairs: list[dict], prompts: int, seed: int = 0) -> dict:
    """How often the chosen answer is really the better one (a higher checker grade), and right against wrong."""
    return {"pairs": len(pairs), "prompts_with_pairs": len({p["id"] for p in pairs}), "prompts": prompts,
            "chosen_really_better": rate([p["chosen_grade"] > p["rejected_grade"] for p in pairs], seed=seed).to_dict(),
            "chosen_really_worse": _mean(float(p["chosen_grade"] < p["rejected_grade"]) for p in pairs),
            "right_over_wrong": _mean(float(p["chosen_correct"] and not p["rejected_correct"]) for p in pairs),
            "chosen_mean_chars": _mean(len(p["chosen"]) for p in pairs),
            "rejected_mean_chars": _mean(len(p["rejected"]) for p in pairs)}


def candidate_summary(candidates: list[dict], seed: int) -> dict:
    """M1's candidates as the checker sees them: how many are right, and how many prompts have both kinds."""
    by_prompt: dict[str, list[bool]] = {}
    for c in candidates:
        by_prompt.setdefault(c["id"], []).append(c["correct"])
    return {"candidates": len(candidates), "accuracy": mean_ci([float(c["correct"]) for c in candidates],
                                                               seed=seed).to_dict(),
            "grades": counts(c["grade"] for c in candidates),
            "prompts_with_right_and_wrong": sum(any(v) and not all(v) for v in by_prompt.values()),
            "prompts": len(by_prompt)}
