"""The exact-answer verifier: 1 when a solution's final answer equals the gold answer, else 0.

It needs the gold answers: give them per call (``golds=``) or up front as a mapping from the prompt's
text (the last user message) to the answer. A solution with no extractable answer scores 0 like any
wrong one, but is marked ``detail["status"] == "no_answer"`` and counted apart in ``counts``, so a
model that never states an answer is not mistaken for one that states wrong ones.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from referee.errors import RefereeError
from referee.tasks.math import STYLES, answers_match, extract_answer, gold_answer
from referee.verifiers.base import Chat, PointwiseVerifier, Score

STATUSES = ("correct", "wrong", "no_answer")


def prompt_key(prompt: str | Chat) -> str:
    """The text a prompt is known by: itself, or its last user message."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    if not users:
        raise RefereeError("exact verifier: a prompt has no user message")
    return users[-1]


class ExactAnswerVerifier(PointwiseVerifier):
    """Scores 1.0 (right final answer) or 0.0 (wrong or none); statuses counted in ``counts``."""

    name = "exact"

    def __init__(self, answers: Mapping[str, str] | None = None, style: str = "auto"):
        if style not in STYLES:
            raise RefereeError(f"exact verifier: style {style!r}: expected one of {', '.join(STYLES)}")
        self.answers = dict(answers or {})
        self.style = style
        self.counts = {s: 0 for s in STATUSES}

    def score_many(self, prompts: Sequence[str | Chat], responses: Sequence[str],
                   golds: Sequence[str] | None = None) -> list[Score]:
        if len(prompts) != len(responses) or (golds is not None and len(golds) != len(responses)):
            raise RefereeError("exact verifier: give one prompt (and one gold answer) per response")
        out = []
        for i, (prompt, response) in enumerate(zip(prompts, responses)):
            gold = golds[i] if golds is not None else self._gold(prompt)
            found = extract_answer(response, self.style)
            if not found.found:
                status = "no_answer"
            else:
                status = "correct" if answers_match(found, gold_answer(gold)) else "wrong"
            self.counts[status] += 1
            out.append(Score(1.0 if status == "correct" else 0.0, True,
                             {"status": status, "answer": found.text, "method": found.method, "gold": gold}))
        return out

    def _gold(self, prompt: str | Chat) -> str:
        key = prompt_key(prompt)
        if key not in self.answers:
            raise RefereeError(f"exact verifier: no gold answer for the prompt {key[:60]!r}")
        return self.answers[key]


def summarize(scores: Sequence[Score]) -> dict:
    """Counts of correct / wrong / no_answer and the accuracy (no_answer counts as wrong)."""
    counts = {s: 0 for s in STATUSES}
    for s in scores:
        counts[s.detail.get("status", "correct" if s.value else "wrong")] += 1
    n = len(scores)
    return {"n": n, **counts, "accuracy": counts["correct"] / n if n else None}
