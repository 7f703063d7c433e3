"""The verifier interface: ``score(prompt, response)`` and ``compare(prompt, a, b)``, batched.

A verdict that could not be read from a model's output is ``invalid``: counted and reported, never
turned into a tie or a default score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from referee.chat import Chat  # a prompt as messages; a plain string is one user turn


@dataclass
class Score:
    """A pointwise verdict. ``value`` is None when the verifier's output could not be read."""

    value: float | None
    valid: bool = True
    detail: dict = field(default_factory=dict)  # raw outputs, probabilities, per-step scores, ...


@dataclass
class Comparison:
    """A pairwise verdict: winner "A", "B", "tie" or "invalid"; ``p_a`` = P(A is better) where known."""

    winner: str
    p_a: float | None = None
    detail: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.winner != "invalid"


class PointwiseVerifier:
    """Scores single responses. Subclasses implement ``score_many``."""

    name: str = "verifier"

    def score_many(self, prompts: Sequence[str | Chat], responses: Sequence[str]) -> list[Score]:
        raise NotImplementedError

    def score(self, prompt: str | Chat, response: str) -> Score:
        return self.score_many([prompt], [response])[0]


class StepVerifier(PointwiseVerifier):
    """Scores each step of a solution (a process reward model): ``score_steps`` gives, per solution, one
    probability per step that the step is right; ``score_many`` summarises a whole solution."""

    def score_steps(self, prompts: Sequence[str | Chat], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        raise NotImplementedError


def is_step_verifier(verifier) -> bool:
    """A ``StepVerifier``, or any object with a callable ``score_steps`` (a user's own PRM class)."""
    return isinstance(verifier, StepVerifier) or callable(getattr(verifier, "score_steps", None))


class PairwiseVerifier:
    """Compares two responses to one prompt. Subclasses implement ``compare_many``."""

    name: str = "verifier"

    def compare_many(self, prompts: Sequence[str | Chat], a: Sequence[str], b: Sequence[str]) -> list[Comparison]:
        raise NotImplementedError

    def compare(self, prompt: str | Chat, a: str, b: str) -> Comparison:
        return self.compare_many([prompt], [a], [b])[0]
