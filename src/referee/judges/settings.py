"""What every LLM judge sets up the same way: verdict and reference modes, retries, sampling, and the
context fitter that keeps room for the judge's reply."""

from __future__ import annotations

from typing import Sequence

from referee.errors import RefereeError
from referee.models.base import Model, Sampling

VERDICT_MODES = ("probability", "generative")
REFERENCE_MODES = ("none", "given", "self")


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise RefereeError(f"judge: {name} should be one of {', '.join(allowed)}, got {value!r}")
    return value


class JudgeSettings:
    """What every LLM judge sets up the same way: model, template, verdict and reference modes,
    retries, sampling, and the context fitter (which keeps room for the reply when the judge writes)."""

    def _setup(self, model: Model, template: str, verdict: str, reference: str, cot: bool, max_retries: int,
               seed: int, sampling: Sampling | None, reference_max_tokens: int, max_prompt_chars: int | None,
               max_prompt_tokens: int | None = None) -> None:
        from referee.judges.templates import load_template
        from referee.judges.truncate import Fitter

        self.model = model
        self.template = load_template(template)
        self.verdict = check_choice("verdict", verdict, VERDICT_MODES)
        self.reference = check_choice("reference", reference, REFERENCE_MODES)
        if max_retries < 0:
            raise RefereeError(f"judge: max_retries should be >= 0, got {max_retries}")
        self.cot, self.max_retries, self.seed = bool(cot), max_retries, seed
        if self.reference != "none":
            self.template.require_reference()
        self.sampling = sampling or Sampling(temperature=0.0, max_new_tokens=384 if cot else 48, seed=seed)
        self.reference_max_tokens = reference_max_tokens
        writes = self.verdict == "generative" or self.cot
        self.fitter = Fitter(model, self.sampling.max_new_tokens + 16 if writes else 8, max_prompt_chars,
                             max_prompt_tokens)
