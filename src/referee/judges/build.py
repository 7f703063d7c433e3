"""One judge builder: a spec string plus a ``JudgeConfig`` gives the judge every command and protocol uses.

    baseline:longer | baseline:random   a baseline pairwise verifier (reads no model)
    MODEL_SPEC                          an LLM judge on that model (pairwise, or grading in mode single)
    several specs                       a panel of those judges, combined by majority or mean
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

from pydantic import Field, field_validator

from referee.config import StrictModel
from referee.errors import RefereeError
from referee.judges.pairwise import CALIBRATIONS, SWAPS
from referee.judges.panel import COMBINE
from referee.judges.settings import REFERENCE_MODES, VERDICT_MODES

BASELINE_SPECS = ("baseline:longer", "baseline:random")
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


def build_judge(specs: str | Sequence[str], cfg: JudgeConfig, load_model: Callable):
    """The judge the spec(s) name, set up by ``cfg``; ``load_model(spec)`` gives models (a run's, so
    they are cached and named in its manifest)."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise RefereeError("judge: name at least one judge")
    if cfg.reference == "auto":
        raise RefereeError("judge: reference 'auto' depends on the items; resolve it first (resolve_reference)")
    judges = [_one(spec, cfg, load_model) for spec in specs]
    if len(judges) == 1:
        return judges[0]
    from referee.judges.panel import Panel

    return Panel(judges, combine=cfg.combine)


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


def _one(spec: str, cfg: JudgeConfig, load_model: Callable):
    if spec.startswith("baseline:"):
        return _baseline(spec, cfg)
    cfg = trained_settings(spec, cfg)
    from referee.models.base import Sampling

    sampling = None
    if cfg.max_new_tokens is not None:
        sampling = Sampling(temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    common = dict(template=cfg.template_name(), verdict=cfg.verdict, cot=cfg.cot, few_shot=cfg.few_shot,
                  reference=cfg.reference, max_retries=cfg.max_retries, seed=cfg.seed, sampling=sampling,
                  max_prompt_tokens=cfg.max_prompt_tokens)
    if cfg.mode == "single":
        if cfg.swap != "none" or cfg.calibration != "none":
            raise RefereeError("--swap and --calibration are for pairwise judging; single-answer grading shows one "
                               "answer at a time")
        from referee.judges.grading import GradingJudge

        return GradingJudge(load_model(spec), **common)
    from referee.judges.pairwise import PairwiseJudge

    return PairwiseJudge(load_model(spec), swap=cfg.swap, calibration=cfg.calibration, **common)


def _baseline(spec: str, cfg: JudgeConfig):
    """Baselines know swap none and conservative only: average maps to conservative, random to none."""
    if spec not in BASELINE_SPECS:
        raise RefereeError(f"--judge {spec}: unknown baseline; known: {', '.join(BASELINE_SPECS)}")
    if cfg.mode == "single":
        raise RefereeError(f"--judge {spec}: a baseline compares two answers; it cannot grade one (mode single)")
    if cfg.calibration != "none":
        raise RefereeError(f"--judge {spec}: a baseline has no verdict probabilities to calibrate")
    from referee.judges.baselines import LongerJudge, RandomJudge

    swap = {"average": "conservative", "random": "none"}.get(cfg.swap, cfg.swap)
    return LongerJudge(swap=swap) if spec == "baseline:longer" else RandomJudge(seed=cfg.seed, swap=swap)


def judge_identity(specs: str | Sequence[str], cfg: JudgeConfig, load_model: Callable) -> dict:
    """What a judge's verdicts depend on, for a stage fingerprint: its settings and its models' weights."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    files = {name: _file_hash(path) for name, path in (("template", cfg.template), ("few_shot", cfg.few_shot))
             if path and Path(path).is_file()}
    return {"settings": cfg, "files": files,
            "models": [spec if spec.startswith("baseline:") else load_model(spec) for spec in specs]}


def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
