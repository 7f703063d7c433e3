"""Verifier spec strings, so any command can be driven by any verifier:

    judge:MODEL_SPEC         an LLM grading judge (1-10 scale, probability verdict)
    judge-additive:MODEL_SPEC the same judge with the additive 0-5 rubric
    rm:PATH | orm:PATH | prm:PATH   a trained reward model, outcome RM or process RM
    exact                    the programmatic final-answer check (gold answers from the data)
"""

from __future__ import annotations

from typing import Mapping

from referee.errors import RefereeError
from referee.verifiers.base import PointwiseVerifier

FORMS = "judge:MODEL_SPEC, judge-additive:MODEL_SPEC, rm:PATH, orm:PATH, prm:PATH, exact"


def load_verifier_spec(spec: str, answers: Mapping[str, str] | None = None, load_model=None) -> PointwiseVerifier:
    """Build the verifier a spec names; ``answers`` (prompt -> gold) feed ``exact``."""
    kind, _, target = spec.partition(":")
    if kind in ("judge", "judge-additive"):
        if not target:
            raise RefereeError(f"verifier {spec!r}: name the judge model, e.g. judge:embedded")
        from referee.judges.build import JudgeConfig, build_judge

        if load_model is None:
            from referee.models import load_model
        template = "additive_0to5" if kind == "judge-additive" else "single_1to10"
        return build_judge(target, JudgeConfig(mode="single", template=template), load_model)
    if kind in ("rm", "orm", "prm"):
        if not target:
            raise RefereeError(f"verifier {spec!r}: give the saved verifier's folder, e.g. {kind}:runs/rm")
        from referee.rewards import load_verifier

        return load_verifier(kind, target)
    if kind == "exact":
        from referee.verifiers.programmatic import ExactAnswerVerifier

        if not answers:
            raise RefereeError("verifier 'exact' needs gold answers: give the data an 'answer' field")
        return ExactAnswerVerifier(answers)
    raise RefereeError(f"unknown verifier {spec!r}; accepted forms: {FORMS}")
