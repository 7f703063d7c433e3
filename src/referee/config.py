"""Configs: pydantic models, validated with errors that name the file and the setting."""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from referee.errors import RefereeError
from referee.models.base import MAX_NEW_TOKENS, Sampling


class StrictModel(BaseModel):
    """Unknown settings are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


# Upper bounds on counts: far beyond any real experiment, yet low enough that a slip of a few zeros is
# refused at once, naming the limit, instead of filling the memory or the disk hours later.
MAX_SAMPLES = 10_000  # samples or rollouts per prompt, step prefix or judgment
MAX_PROMPTS = 100_000  # prompts or problems a protocol makes or evaluates
MAX_EXAMPLES = 10_000_000  # examples in one data split
MAX_RESAMPLES = 1_000_000  # bootstrap resamples and random subsets
MAX_ROUNDS = 100  # iterations of a loop, folds


class SamplingConfig(StrictModel):
    temperature: float = Field(0.7, ge=0, allow_inf_nan=False)  # inf or nan would sample noise
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1, le=MAX_NEW_TOKENS)
    stop: list[str] = []

    def to_sampling(self, seed: int) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                        stop=tuple(self.stop), seed=seed)


class ProtocolConfig(StrictModel):
    protocol: str
    out: str | None = Field(None, min_length=1)  # the run folder; defaults to runs/<config file stem>
    seed: int = 0


def validate(cls: type[BaseModel], data: dict[str, Any], where: str,
             options: Mapping[str, str] | None = None) -> BaseModel:
    """Validate settings, turning pydantic's report into one line per problem naming the setting, or the
    command-line option it came from when ``options`` maps the setting's dotted path to one."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            name = f"option {options[loc]}" if options and loc in options else f"setting '{loc}'"
            msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{where}: {name}: {msg}")
        raise RefereeError("; ".join(problems)) from None
