"""Preference pairs from scored candidates: the best against the worst answer to each prompt."""

from __future__ import annotations


def best_vs_worst(prompt: str, candidates: list[str], scores: list[float | None], min_margin: float = 1e-6) -> dict | None:
    """A DPO pair (TRL format plus the judge margin), or None when fewer than two answers have a
    valid score or the best and worst are tied (the paper skips those)."""
    valid = [(s, i) for i, s in enumerate(scores) if s is not None]
    if len(valid) < 2:
        return None
    best_score, best = max(valid, key=lambda t: (t[0], -t[1]))
    worst_score, worst = min(valid, key=lambda t: (t[0], t[1]))
    if best_score - worst_score < min_margin:
        return None
    return {"prompt": prompt, "chosen": candidates[best], "rejected": candidates[worst],
            "chosen_score": best_score, "rejected_score": worst_score, "margin": best_score - worst_score}
