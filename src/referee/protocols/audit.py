"""``protocol: audit``: a bias audit of a judge (position, verbosity, injection, assertiveness,
self-enhancement) on labelled pairs, each check a stage; see ``referee.audit.runner`` for the method."""

from __future__ import annotations

from pydantic import Field

from referee import stats
from referee.audit.report import rows
from referee.audit.runner import parse_checks, run_audit
from referee.config import MAX_RESAMPLES, ProtocolConfig
from referee.errors import RefereeError
from referee.judges.build import JudgeConfig, resolve_reference
from referee.protocols import Result, register
from referee.runs import Run
from referee.supervisors import build_judge, judge_identity, judge_model


class AuditConfig(ProtocolConfig):
    protocol: str = "audit"
    judge_spec: str = "embedded"  # a model spec, or baseline:longer / baseline:random
    pairs: str
    checks: list[str] = ["position", "verbosity", "injection", "assertiveness"]
    judge: JudgeConfig = JudgeConfig()
    self_model: list[str] = []  # model names in the pairs that are the judge's own (self check)
    limit: int | None = Field(None, ge=1)
    n_boot: int = Field(1000, ge=1, le=MAX_RESAMPLES)


class AgreementConfig(ProtocolConfig):
    protocol: str = "agreement"
    judge_spec: str = "embedded"
    pairs: str
    judge: JudgeConfig = JudgeConfig()  # mode pairwise compares; mode single grades both answers
    margin: float = Field(0.0, ge=0)  # mode single: grades closer than this are a tie
    limit: int | None = Field(None, ge=1)
    n_boot: int = Field(1000, ge=1, le=MAX_RESAMPLES)


@register("audit", AuditConfig, "bias audit of a judge: position, verbosity, injection, assertiveness, self")
def run_audit_protocol(cfg: AuditConfig, run: Run) -> Result:
    checks = parse_checks(",".join(cfg.checks))
    pairs = load_labelled_pairs(cfg.pairs, cfg.limit)
    settings = resolve_reference(cfg.judge, pairs)

    def make(swap: str):
        return build_judge(cfg.judge_spec, settings.model_copy(update={"swap": swap}), run.model)

    own_model = judge_model(cfg.judge_spec, run.model)
    judge_key = judge_identity(cfg.judge_spec, settings, run.model)
    metrics = stats.jsonable(run_audit(make(settings.swap), pairs, checks, make_judge=make,
                                       self_names=list(cfg.self_model), own_model=own_model, run=run, seed=cfg.seed,
                                       n_boot=cfg.n_boot, judge_key=judge_key))
    return Result(metrics, _estimate_rows(metrics), f"bias audit of {cfg.judge_spec} on {cfg.pairs}")


@register("agreement", AgreementConfig, "agreement of a judge with human labels: S2, S1, accuracy, kappa")
def run_agreement(cfg: AgreementConfig, run: Run) -> Result:
    from referee.audit.agreement import margin_correlation, pairwise_agreement
    from referee.judges.grades import judge_pairs_by_grades

    pairs = load_labelled_pairs(cfg.pairs, cfg.limit)
    if not any(p.label for p in pairs):
        raise RefereeError(f"{cfg.pairs}: no pair has a human label to agree with")
    settings = resolve_reference(cfg.judge, pairs)
    judge = build_judge(cfg.judge_spec, settings, run.model)

    def judge_all() -> list[dict]:
        if cfg.judge.mode == "single":
            return judge_pairs_by_grades(judge, pairs, margin=cfg.margin)[0]
        return judge.judge_pairs(pairs)

    inputs = {"judge": judge_identity(cfg.judge_spec, settings, run.model), "margin": cfg.margin, "pairs": pairs}
    records = run.run_stage("judgments", inputs, judge_all)
    metrics = pairwise_agreement(records, n_boot=cfg.n_boot, seed=cfg.seed)
    if cfg.judge.mode == "single":
        metrics["grades"] = margin_correlation(records, n_boot=cfg.n_boot, seed=cfg.seed)
    metrics = stats.jsonable(metrics)
    run.save_metrics({"agreement": metrics})
    return Result(metrics, _estimate_rows(metrics), f"agreement of {cfg.judge_spec} with the labels of {cfg.pairs}")


def load_labelled_pairs(path: str, limit: int | None) -> list:
    from referee.tasks.pairs import load_pairs

    loaded = load_pairs(path)
    return loaded[:limit] if limit else loaded


def _estimate_rows(metrics: dict) -> list[dict]:
    return [{"group": g, "metric": m, "value [95% CI]": v, "n": n} for g, m, v, n in rows(metrics)]
