"""A panel of judges: several judges' verdicts combined, pairwise by majority or mean, grades by mean.

``majority``: the most common valid verdict among the members (A, B or tie); a draw between the top
verdicts is a tie; a pair no member could read is invalid. ``mean``: the mean of the members' P(A)
(a generative member counts 1 for A, 0 for B, 0.5 for a tie); above 0.5 is A, below is B, exactly 0.5
a tie. Grades are always combined by the mean of the valid members' scores.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from referee.errors import RefereeError
from referee.tasks.pairs import Pair
from referee.judges.grades import Grade
from referee.judges.records import PairJudge, with_correct
from referee.verifiers.base import PointwiseVerifier, Score

COMBINE = ("majority", "mean")
VOTE_P = {"A": 1.0, "B": 0.0, "tie": 0.5}


class Panel(PairJudge, PointwiseVerifier):
    def __init__(self, judges: Sequence, combine: str = "majority"):
        if not judges:
            raise RefereeError("panel: give at least one judge")
        if combine not in COMBINE:
            raise RefereeError(f"panel: combine should be one of {', '.join(COMBINE)}, got {combine!r}")
        self.judges, self.combine = list(judges), combine
        self.name = f"panel[{', '.join(getattr(j, 'name', type(j).__name__) for j in self.judges)}]"

    # ---- pairwise -------------------------------------------------------------------------------------
    def judge_pairs(self, pairs: Sequence[Pair]) -> list[dict]:
        pairs = list(pairs)
        member_records = [j.judge_pairs(pairs) for j in self.judges]
        out = []
        for i, pair in enumerate(pairs):
            members = [recs[i] for recs in member_records]
            winner, p_a = self.combine_votes([(m["winner"], m.get("p_a")) for m in members])
            out.append(with_correct({"id": pair.id, "winner": winner, "p_a": p_a, "label": pair.label,
                                     "category": pair.category, "combine": self.combine,
                                     "votes": [m["winner"] for m in members],
                                     "judges": [m.get("judge") for m in members],
                                     "truncated": any(m.get("truncated") for m in members), "members": members}))
        return out

    def combine_votes(self, votes: list[tuple[str, float | None]]) -> tuple[str, float | None]:
        valid = [(w, p) for w, p in votes if w != "invalid"]
        if not valid:
            return "invalid", None
        ps = [p if p is not None else VOTE_P[w] for w, p in valid]
        mean = sum(ps) / len(ps)
        if self.combine == "mean":
            return ("A" if mean > 0.5 else "B" if mean < 0.5 else "tie"), mean
        counts = Counter(w for w, _ in valid).most_common()
        if len(counts) > 1 and counts[0][1] == counts[1][1]:
            return "tie", mean
        return counts[0][0], mean


    # ---- grading --------------------------------------------------------------------------------------
    def grade(self, prompts, responses, references=None) -> list[Grade]:
        member_records = [j.grade(prompts, responses, references) for j in self.judges]
        out = []
        for i in range(len(prompts)):
            members = [recs[i] for recs in member_records]
            values = [v for v in (Grade(m).value for m in members) if v is not None]
            score = sum(values) / len(values) if values else None
            out.append(Grade({"score": score, "expected_score": None, "valid": score is not None, "combine": "mean",
                        "votes": [m["score"] for m in members], "truncated": any(m.get("truncated") for m in members),
                        "members": members}))
        return out

    def score_many(self, prompts, responses) -> list[Score]:
        return [Score(r["score"], valid=r["valid"], detail=r) for r in self.grade(prompts, responses)]
