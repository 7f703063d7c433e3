"""Grades: a grading judge's record for one answer, and pairs decided by grading both answers.

A grade record keeps the parsed ``score`` (the judge's most likely grade) and, for probability verdicts,
the ``expected_score`` (sum of s * P(s)). Its one ``value`` is the expected score where there is one
(smoother for rankings, rewards and best-of-N), else the parsed score; an unreadable grade has none.
"""

from __future__ import annotations

from typing import Sequence

from referee.errors import RefereeError
from referee.judges.records import combine, with_correct


class Grade(dict):
    """A grade record. A dict, so it goes to JSONL as it is; ``Grade(record)`` reads one back."""

    @property
    def value(self) -> float | None:
        if self.get("valid") is False:
            return None
        return self["expected_score"] if self.get("expected_score") is not None else self.get("score")


def grades_to_records(pairs: Sequence, grades_a: Sequence[dict], grades_b: Sequence[dict],
                      margin: float = 0.0) -> list[dict]:
    """Pairwise records from single-answer grades, as MT-Bench compares grades: the higher value wins, a
    difference of at most ``margin`` is a tie, an unreadable grade on either side is invalid."""
    if not (len(pairs) == len(grades_a) == len(grades_b)):
        raise RefereeError("grades_to_records: give one grade per answer of every pair")
    records = []
    for pair, ga, gb in zip(pairs, grades_a, grades_b):
        sa, sb = Grade(ga).value, Grade(gb).value
        if sa is None or sb is None:
            winner = "invalid"
        elif abs(sa - sb) <= margin:
            winner = "tie"
        else:
            winner = "A" if sa > sb else "B"
        records.append(with_correct({
            "id": pair.id, "winner": combine({"AB": winner}, "none"), "p_a": None, "label": pair.label,
            "category": pair.category, "score_a": sa, "score_b": sb, "grade_a": ga, "grade_b": gb,
            "verdict_mode": "grades", "truncated": bool(ga.get("truncated") or gb.get("truncated")), "orders": []}))
    return records


def judge_pairs_by_grades(grader, pairs: Sequence, margin: float = 0.0) -> tuple[list[dict], list[Grade]]:
    """Grade both answers of every pair (in one batch) and let the higher grade win.

    Each answer is graded in its own conversation (a multi-turn pair's earlier turns included); the
    pairs' references are given to the grader when every pair has one. Returns (records, all grades).
    """
    pairs = list(pairs)
    prompts = [p.turns_a[:-1] if p.turns_a else p.question for p in pairs] + \
              [p.turns_b[:-1] if p.turns_b else p.question for p in pairs]
    answers = [p.answer_a for p in pairs] + [p.answer_b for p in pairs]
    refs = [p.reference for p in pairs] * 2
    grades = [Grade(g) for g in grader.grade(prompts, answers, refs if all(refs) else None)]
    n = len(pairs)
    return grades_to_records(pairs, grades[:n], grades[n:], margin), grades
