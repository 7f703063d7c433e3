"""A verifier's scores of many samples, one float each: a pointwise verifier's score, or a PRM's step
probabilities summarised as their product and their minimum. Unreadable scores are nan, never guessed."""

from __future__ import annotations

import math
from dataclasses import dataclass

from referee.errors import RefereeError
from referee.tasks.math import split_steps
from referee.verifiers.base import is_step_verifier


def score_samples(name: str, verifier, prompts: list, texts: list[str]) -> tuple[dict[str, list[float]], list | None]:
    """({score name: one float per sample (nan where invalid)}, per-step scores or None): ``name`` for
    pointwise verifiers, ``name_product`` / ``name_min`` (and the step scores) for PRMs. A PRM answer
    with the wrong number of step scores is invalid for that sample."""
    nan = float("nan")
    if is_step_verifier(verifier):
        steps = [split_steps(t) for t in texts]
        todo = [i for i, s in enumerate(steps) if s]
        per_step = verifier.score_steps([prompts[i] for i in todo], [steps[i] for i in todo]) if todo else []
        if len(per_step) != len(todo):
            raise RefereeError(f"best_of_n: verifier '{name}' returned step scores for {len(per_step)} of "
                               f"{len(todo)} solutions")
        product, minimum = [nan] * len(texts), [nan] * len(texts)
        for i, probs in zip(todo, per_step):
            vals = [float(x) for x in probs]
            if len(vals) == len(steps[i]) and vals and all(math.isfinite(x) for x in vals):
                product[i], minimum[i] = math.prod(vals), min(vals)
        step_scores: list = [None] * len(texts)
        for i, probs in zip(todo, per_step):
            step_scores[i] = [float(x) for x in probs]
        return {f"{name}_product": product, f"{name}_min": minimum}, step_scores
    scores = verifier.score_many(prompts, texts)
    if len(scores) != len(texts):
        raise RefereeError(f"best_of_n: verifier '{name}' returned {len(scores)} scores for {len(texts)} samples")
    return {name: [float(s.value) if s.valid and s.value is not None and math.isfinite(s.value) else nan
                   for s in scores]}, None


SCORE_RECORD_FIELDS = ("id", "sample", "text_sha", "verifier", "steps")  # the rest of a record are scores


@dataclass
class VerifierScores:
    """One verifier's scores of every sample, rebuilt from its ``scores-NAME`` records."""

    arrays: dict[str, list[float]]  # score name -> one float per sample, nan where invalid
    steps: list | None  # a PRM's step scores per sample (None for a sample without steps); else None

    @property
    def stepwise(self) -> bool:
        return self.steps is not None

    @property
    def ranking(self) -> str:
        """The score that ranks samples and weighs votes: a PRM's product, or the one score."""
        return next(iter(self.arrays))

    @classmethod
    def from_records(cls, rows: list[dict]) -> "VerifierScores":
        keys = [k for k in rows[0] if k not in SCORE_RECORD_FIELDS]
        arrays = {k: [float("nan") if r[k] is None else float(r[k]) for r in rows] for k in keys}
        return cls(arrays, [r["steps"] for r in rows] if "steps" in rows[0] else None)
