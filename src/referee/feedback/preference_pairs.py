"""Preference pairs from scored candidates: the best against the worst answer to each prompt, the ``k``
pairs with the widest score margins, or the best against a reference answer (``best_scored`` picks it)."""

from __future__ import annotations


def top_pairs(prompt: str, candidates: list[str], scores: list[float | None], k: int = 1,
              min_margin: float = 1e-6) -> list[dict]:
    """Up to ``k`` DPO pairs (TRL format plus the judge's scores, the margin and the candidates' indices),
    widest margin first; candidates without a valid score take no part, and pairs closer than
    ``min_margin`` are ties, which the self-rewarding paper skips. Equal margins go to the earlier
    candidates, so ``k=1`` is the best against the worst, the first of each when tied."""
    valid = [(i, s) for i, s in enumerate(scores) if s is not None]
    ranked = sorted(((s - t, i, j) for i, s in valid for j, t in valid if s - t >= min_margin),
                    key=lambda m: (-m[0], m[1], m[2]))
    return [{"prompt": prompt, "chosen": candidates[i], "rejected": candidates[j], "chosen_score": scores[i],
             "rejected_score": scores[j], "margin": margin, "chosen_index": i, "rejected_index": j}
            for margin, i, j in ranked[:k]]


def best_scored(candidates: list[str], scores: list[float | None]) -> tuple[float, str] | None:
    """(score, text) of the highest-scored candidate, the first when tied; None when nothing has a score."""
    valid = [(score, text) for text, score in zip(candidates, scores) if score is not None]
    return max(valid, key=lambda pair: pair[0]) if valid else None


def best_over_reference(prompt: str, candidates: list[str], scores: list[float | None], reference: str,
                        reference_score: float | None) -> dict | None:
    """A DPO pair of the best-scored candidate over a reference answer (what the policy says now, say), or
    None when the best does not score above the reference or either has no valid score."""
    top = best_scored(candidates, scores)
    if top is None or reference_score is None:
        return None
    best_score, best = top
    if best_score <= reference_score or best == reference:
        return None
    return {"prompt": prompt, "chosen": best, "rejected": reference, "margin": best_score - reference_score}


def best_vs_worst(prompt: str, candidates: list[str], scores: list[float | None],
                  min_margin: float = 1e-6) -> dict | None:
    """A DPO pair (TRL format plus the judge margin), or None when fewer than two answers have a
    valid score or the best and worst are tied (the paper skips those)."""
    pairs = top_pairs(prompt, candidates, scores, 1, min_margin)
    if not pairs:
        return None
    return {k: v for k, v in pairs[0].items() if k not in ("chosen_index", "rejected_index")}
