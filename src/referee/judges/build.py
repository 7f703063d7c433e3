"""How a judge judges: ``JudgeConfig``, checked when a protocol's config is read, and what a config
depends on (the items' references, a trained judge's own settings). Judges are built from a spec and a
config by the one factory, ``referee.supervisors``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pydantic import Field, field_validator

from referee.config import StrictModel
from referee.errors import RefereeError
from referee.judges.pairwise import CALIBRATIONS
from referee.judges.panel import COMBINE
from referee.judges.records import SWAPS
from referee.judges.settings import REFERENCE_MODES, VERDICT_MODES

JUDGE_FILE = "judge.json"  # in a checkpoint trained as a judge: its mode, template and prompt budget
DEFAULT_TEMPLATE = {"pairwise": "pairwise", "reference": "pairwise_reference", "single": "single_1to10"}
CHOICES = {"mode": tuple(DEFAULT_TEMPLATE), "verdict": VERDICT_MODES, "swap": SWAPS, "calibration": CALIBRATIONS,
           "reference": REFERENCE_MODES + ("auto",), "combine": COMBINE}


class JudgeConfig(StrictModel):
    """How a judge judges, whatever model it runs on: the judge's slice of a protocol config."""

    mode: str = "pairwise"  # pairwise | single (grade each answer) | reference
    template: str | None = None  # a built-in template name or a .txt path; default per mode
    verdict: str = "probability"  # probability | generative
    swap: str = "none"  # none | conservative | average | random
    calibration: str = "none"  # none | batch | content-free
    cot: bool = False
    few_shot: str | None = None
    reference: str = "none"  # none | given | self | auto (given when every item has one, else self)
    combine: str = "majority"  # a panel of several judges: majority | mean
    max_retries: int = Field(2, ge=0)
    max_new_tokens: int | None = Field(None, ge=1)  # generative / cot: tokens the judge may write
    max_prompt_tokens: int | None = Field(None, ge=16)  # cut answers (from the middle) to fit this prompt size
    seed: int = 0

    @field_validator(*CHOICES)
    @classmethod
    def _one_of(cls, value: str, info) -> str:
        allowed = CHOICES[info.field_name]
        if value not in allowed:
            raise ValueError(f"{info.field_name} should be one of {', '.join(allowed)}, got {value!r}")
        return value

    def template_name(self) -> str:
        return self.template or DEFAULT_TEMPLATE[self.mode]


def resolve_reference(cfg: JudgeConfig, items: Sequence) -> JudgeConfig:
    """``reference: auto`` made concrete for these items: in mode reference, the items' own references
    when every item has one, else the judge's own answer; in other modes, none."""
    if cfg.reference != "auto":
        return cfg
    refs = [it.get("reference") if isinstance(it, dict) else getattr(it, "reference", None) for it in items]
    chosen = ("given" if items and all(refs) else "self") if cfg.mode == "reference" else "none"
    return cfg.model_copy(update={"reference": chosen})


def trained_settings(spec: str, cfg: JudgeConfig) -> JudgeConfig:
    """A checkpoint trained as a judge (``referee train judge``) is judged with the template and prompt
    budget it was trained with, unless the config names its own."""
    path = Path(spec[3:]) / JUDGE_FILE if spec.startswith("hf:") else None
    if path is None or not path.is_file():
        return cfg
    import json

    from referee.io import read_text

    try:
        trained = json.loads(read_text(path, "trained judge settings"))
    except json.JSONDecodeError as e:
        raise RefereeError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    same_mode = (trained.get("mode") == "single") == (cfg.mode == "single")
    update = {}
    if cfg.template is None and same_mode and trained.get("template"):
        update["template"] = trained["template"]
    if cfg.max_prompt_tokens is None and trained.get("max_prompt_tokens"):
        update["max_prompt_tokens"] = trained["max_prompt_tokens"]
    return cfg.model_copy(update=update)
