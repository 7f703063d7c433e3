"""One factory from a spec string to a supervisor, so a spec means the same in every command and protocol.

Judges of pairs (``build_judge``: ``judge_pairs`` records; an LLM judge grades answers in mode single):

    MODEL_SPEC                          an LLM judge on that model, set up by a ``JudgeConfig``
    baseline:longer | baseline:random   a baseline pairwise judge (reads no model)
    rm:FOLDER                           a trained Bradley-Terry reward model: each answer scored, the higher wins
    several specs                       a panel of those judges, combined by majority or mean

Scorers of one answer (``build_verifier``: ``score_many``):

    judge:MODEL_SPEC | judge-additive:MODEL_SPEC   an LLM grading judge (1-10 | additive 0-5 rubric)
    rm:FOLDER | orm:FOLDER | prm:FOLDER            a trained reward model, outcome RM or process RM
    exact                                          the programmatic final-answer check (gold answers given)
    python:MODULE:FUNCTION[@ARGUMENT]              a user's function returning any verifier object

It sits under every layer that asks for a supervisor (feedback, audit, debate, protocols, the CLI) and
over the packages that make them (judges, rewards, verifiers), which may not import one another: this
is the one place a judge and a reward model meet.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from referee.errors import RefereeError
from referee.io import file_sha256
from referee.io.tables import source_sha256
from referee.judges.build import JudgeConfig, trained_settings

BASELINE_SPECS = ("baseline:longer", "baseline:random")
GRADER_TEMPLATES = {"judge": "single_1to10", "judge-additive": "additive_0to5"}  # judge:M, judge-additive:M
REWARD_MODEL = "rm:"
VERIFIER_FORMS = ("judge:MODEL_SPEC, judge-additive:MODEL_SPEC, rm:PATH, orm:PATH, prm:PATH, exact, "
                  "python:MODULE:FUNCTION[@ARGUMENT]")


# ---- judges of pairs -------------------------------------------------------------------------------
def build_judge(specs: str | Sequence[str], cfg: JudgeConfig, load_model: Callable):
    """The judge the spec(s) name, set up by ``cfg``; ``load_model(spec)`` gives models (a run's, so
    they are cached and named in its manifest)."""
    specs = _listed(specs)
    if cfg.reference == "auto":
        raise RefereeError("judge: reference 'auto' depends on the items; resolve it first (resolve_reference)")
    judges = [_one(spec, cfg, load_model) for spec in specs]
    if len(judges) == 1:
        return judges[0]
    from referee.judges.panel import Panel

    return Panel(judges, combine=cfg.combine)


def llm_judge(model, cfg: JudgeConfig):
    """An LLM judge on a loaded model: a grading judge in mode single, else a pairwise one. The one place
    a ``JudgeConfig`` becomes a judge's arguments."""
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

        return GradingJudge(model, **common)
    from referee.judges.pairwise import PairwiseJudge

    return PairwiseJudge(model, swap=cfg.swap, calibration=cfg.calibration, **common)


def baseline_judge(spec: str, cfg: JudgeConfig = JudgeConfig(swap="conservative")):
    """``baseline:longer`` or ``baseline:random``. Baselines know swap none and conservative only: average
    maps to conservative, random to none."""
    if spec not in BASELINE_SPECS:
        raise RefereeError(f"--judge {spec}: unknown baseline; known: {', '.join(BASELINE_SPECS)}")
    if cfg.mode == "single":
        raise RefereeError(f"--judge {spec}: a baseline compares two answers; it cannot grade one (mode single)")
    if cfg.calibration != "none":
        raise RefereeError(f"--judge {spec}: a baseline has no verdict probabilities to calibrate")
    from referee.judges.baselines import LongerJudge, RandomJudge

    swap = {"average": "conservative", "random": "none"}.get(cfg.swap, cfg.swap)
    return LongerJudge(swap=swap) if spec == "baseline:longer" else RandomJudge(seed=cfg.seed, swap=swap)


def rm_judge(folder: str | Path, name: str | None = None):
    """A trained Bradley-Terry reward model as a judge of pairs: each answer scored, the higher wins."""
    from referee.judges.scored import ScoredPairJudge

    return ScoredPairJudge(build_verifier(f"{REWARD_MODEL}{folder}"), name or f"reward model {folder}")


def _one(spec: str, cfg: JudgeConfig, load_model: Callable):
    if spec.startswith("baseline:"):
        return baseline_judge(spec, cfg)
    if spec.startswith(REWARD_MODEL):
        folder = _rm_folder(spec)
        if cfg.mode == "single":
            raise RefereeError(f"--judge {spec}: a reward model judges pairs here; for grades use mode pairwise "
                               f"(or --verifier {spec} where a command scores answers)")
        if cfg.calibration != "none":
            raise RefereeError(f"judge {spec}: a reward model has no position prior to calibrate")
        return rm_judge(folder)
    return llm_judge(load_model(spec), trained_settings(spec, cfg))


def judge_identity(specs: str | Sequence[str], cfg: JudgeConfig, load_model: Callable) -> dict:
    """What a judge's verdicts depend on, for a stage fingerprint: its settings and its models' weights;
    a reward model's (``rm:FOLDER`` alone): every file of its folder."""
    specs = _listed(specs)
    if len(specs) == 1 and specs[0].startswith(REWARD_MODEL):
        return _rm_identity(specs[0])
    files = {"template": file_sha256(cfg.template)} if cfg.template and Path(cfg.template).is_file() else {}
    if cfg.few_shot:  # a file, a data: file or a data set (hf-disk:, Parquet), mapped or not
        files["few_shot"] = source_sha256(cfg.few_shot)
    return {"settings": cfg, "files": files, "models": [_model_identity(spec, load_model) for spec in specs]}


def judge_model(spec: str, load_model: Callable):
    """The model behind a judge spec (the one whose own answers a self-enhancement check generates), or
    None for a judge that runs on no chat model (a baseline, a reward model)."""
    return None if spec.startswith(("baseline:", REWARD_MODEL)) else load_model(spec)


def _model_identity(spec: str, load_model: Callable):
    if spec.startswith("baseline:"):
        return spec
    if spec.startswith(REWARD_MODEL):
        return _rm_identity(spec)
    return load_model(spec)


def _rm_identity(spec: str) -> dict:
    folder = _rm_folder(spec)
    if not folder.is_dir():
        raise RefereeError(f"judge {spec}: no reward model folder at {folder}")
    return {"rm": {str(f.relative_to(folder)): file_sha256(f)
                   for f in sorted(folder.rglob("*")) if f.is_file()}}


def _rm_folder(spec: str) -> Path:
    target = spec[len(REWARD_MODEL):]
    if not target:
        raise RefereeError(f"judge {spec!r}: give the reward model's folder, e.g. rm:runs/rm")
    return Path(target)


def _listed(specs: str | Sequence[str]) -> list[str]:
    specs = [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise RefereeError("judge: name at least one judge")
    return specs


# ---- scorers of one answer -------------------------------------------------------------------------
def build_verifier(spec: str, answers: Mapping[str, str] | None = None, load_model: Callable | None = None, *,
                   device: str | None = None, batch_size: int | None = None, golds_per_call: bool = False):
    """The verifier a spec names; ``answers`` (prompt -> gold) feed ``exact``, unless the caller gives
    each call its gold answers (``golds_per_call``: ``score_many(..., golds=)``, as an Inspect scorer
    does with a sample's target); ``device`` and ``batch_size`` place a trained reward model (the
    loader's defaults where not given)."""
    kind, _, target = spec.partition(":")
    if kind in ("judge", "judge-additive"):
        if not target:
            raise RefereeError(f"verifier {spec!r}: name the judge model, e.g. judge:embedded")
        if load_model is None:
            from referee.models import load_model
        template = GRADER_TEMPLATES[kind]
        return build_judge(target, JudgeConfig(mode="single", template=template), load_model)
    if kind in ("rm", "orm", "prm"):
        if not target:
            raise RefereeError(f"verifier {spec!r}: give the saved verifier's folder, e.g. {kind}:runs/rm")
        from referee.rewards import load_verifier

        placement = {k: v for k, v in (("device", device), ("batch_size", batch_size)) if v is not None}
        return load_verifier(kind, target, **placement)
    if kind == "exact":
        from referee.verifiers.programmatic import ExactAnswerVerifier

        if not answers and not golds_per_call:
            raise RefereeError("verifier 'exact' needs gold answers: give the data an 'answer' field")
        return ExactAnswerVerifier(answers)
    if kind == "python":
        return _user_verifier(spec, target)
    raise RefereeError(f"unknown verifier {spec!r}; accepted forms: {VERIFIER_FORMS}")


def _user_verifier(spec: str, target: str):
    """``python:MODULE:FUNCTION[@ARGUMENT]``: FUNCTION(ARGUMENT), or FUNCTION() without one."""
    function, at, argument = target.partition("@")
    module, _, name = function.partition(":")
    if not module or not name:
        raise RefereeError(f"verifier {spec!r}: name the function as python:MODULE:FUNCTION")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise RefereeError(f"verifier {spec!r}: cannot import {function} ({e})") from None
    return factory(argument) if at else factory()


def model_loader(cache: str | os.PathLike | None) -> Callable:
    """``load_model`` keeping every answer in the SQLite file ``cache`` (None: the loader's default)."""
    from referee.models import load_model

    if cache is None:
        return load_model
    from referee.cache import Cache

    shared = Cache(Path(cache))
    return lambda spec, **kw: load_model(spec, cache=shared, **kw)
