"""Configs: pydantic models, validated with errors that name the file and the setting."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from referee.errors import RefereeError
from referee.models.base import Sampling


class StrictModel(BaseModel):
    """Unknown settings are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


class SamplingConfig(StrictModel):
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    stop: list[str] = []

    def to_sampling(self, seed: int) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                        stop=tuple(self.stop), seed=seed)


class ProtocolConfig(StrictModel):
    protocol: str
    out: str | None = None  # the run folder; defaults to runs/<config file stem>
    seed: int = 0


def validate(cls: type[BaseModel], data: dict[str, Any], where: str) -> BaseModel:
    """Validate settings, turning pydantic's report into one line per problem naming the setting."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{where}: setting '{loc}': {msg}")
        raise RefereeError("; ".join(problems)) from None
