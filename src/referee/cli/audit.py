"""Commands ``referee audit`` (bias audits of a judge) and ``referee agreement`` (agreement with people)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.errors import RefereeError

BASELINE_SPECS = ("baseline:longer", "baseline:random")


def make_judge_factory(spec: str, run, *, template: str, verdict: str, cot: bool, reference: str,
                       few_shot: Optional[Path], max_retries: int, seed: int, calibration: str = "none"):
    """(make_judge(swap), model or None): builds the judge a spec names, with a chosen swap setting.

    ``baseline:longer`` and ``baseline:random`` need no model; any other spec is a model spec judged by
    ``PairwiseJudge``. Baselines know swap none and conservative only: average maps to conservative,
    random to none.
    """
    if spec in BASELINE_SPECS:
        if calibration != "none":
            raise RefereeError(f"--judge {spec}: a baseline has no verdict probabilities to calibrate")
        from referee.audit.baselines import LongerJudge, RandomJudge

        def make_baseline(swap: str):
            swap = {"average": "conservative", "random": "none"}.get(swap, swap)
            return LongerJudge(swap=swap) if spec == "baseline:longer" else RandomJudge(seed=seed, swap=swap)

        return make_baseline, None
    if spec.startswith("baseline:"):
        raise RefereeError(f"--judge {spec}: unknown baseline; known: {', '.join(BASELINE_SPECS)}")
    from referee.judges import PairwiseJudge

    model = run.model(spec)

    def make(swap: str):
        return PairwiseJudge(model, template=template, verdict=verdict, swap=swap, cot=cot,
                             few_shot=str(few_shot) if few_shot else None, reference=reference,
                             max_retries=max_retries, seed=seed, calibration=calibration)

    return make, model


def _load(pairs: Path, limit: Optional[int]):
    from referee.tasks.pairs import load_pairs

    if limit is not None and limit < 1:
        raise RefereeError(f"--limit must be >= 1, got {limit}")
    loaded = load_pairs(pairs)
    return loaded[:limit] if limit else loaded


def _default_out(kind: str, pairs: Path, judge: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in judge)[:40]
    return Path("runs") / f"{kind}-{pairs.stem}-{safe}"


JUDGE_OPT = typer.Option("embedded", "--judge", "-j", help="Judge model spec, or baseline:longer / baseline:random.")
CALIBRATION_OPT = typer.Option("none", help="none, batch or content-free: divide probability verdicts by the "
                                              "judge's position prior (see README, Judges).")
PAIRS_OPT = typer.Option(..., "--pairs", "-p", help="Pairs: LLMBar JSON, MT-Bench human judgments, TRL or generic JSONL.")


@app.command()
def audit(
    judge: str = JUDGE_OPT,
    pairs: Path = PAIRS_OPT,
    checks: str = typer.Option("position,verbosity,injection,assertiveness",
                               help="Comma-separated: position, verbosity, injection, assertiveness, self (or all)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/audit-<pairs>-<judge>)."),
    template: str = typer.Option("pairwise", help="Judge prompt template name."),
    verdict: str = typer.Option("probability", help="probability or generative."),
    swap: str = typer.Option("none", help="none, conservative, average or random."),
    calibration: str = CALIBRATION_OPT,
    cot: bool = typer.Option(False, "--cot/--no-cot", help="Reason before the verdict (generative)."),
    reference: str = typer.Option("none", help="none, given or self."),
    few_shot: Optional[Path] = typer.Option(None, "--few-shot", help="Worked examples file."),
    max_retries: int = typer.Option(2, help="Retries of an unreadable generative verdict."),
    self_model: list[str] = typer.Option([], "--self-model",
                                         help="Model name(s) in the pairs' model_a/model_b that are the judge's own "
                                              "(repeatable); without it the self check generates the judge's own answers."),
    limit: Optional[int] = typer.Option(None, help="Use the first N pairs."),
    seed: int = typer.Option(0),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples for the intervals."),
):
    """Bias audit of a judge: position, verbosity, injection, assertiveness, self-enhancement."""
    from referee import stats
    from referee.audit.report import plot_audit, table
    from referee.audit.runner import parse_checks, run_audit
    from referee.runs import Run

    wanted = parse_checks(checks)
    loaded = _load(pairs, limit)
    folder = out or _default_out("audit", pairs, judge)
    config = {"command": "audit", "judge": judge, "pairs": str(pairs), "checks": wanted, "template": template,
              "verdict": verdict, "swap": swap, "calibration": calibration, "cot": cot, "reference": reference,
              "few_shot": str(few_shot) if few_shot else None, "max_retries": max_retries,
              "self_model": list(self_model), "limit": limit, "seed": seed, "n_boot": n_boot}
    with Run(folder, config, seed=seed) as run:
        make, model = make_judge_factory(judge, run, template=template, verdict=verdict, cot=cot, reference=reference,
                                         few_shot=few_shot, max_retries=max_retries, seed=seed,
                                         calibration=calibration)
        metrics = stats.jsonable(run_audit(make(swap), loaded, wanted, make_judge=make, self_names=list(self_model),
                                           own_model=model, run=run, seed=seed, n_boot=n_boot))
        plot = plot_audit(metrics, run.plot_path("audit.png"))
    typer.echo(table(metrics))
    progress.say(f"run folder: {run.folder}" + (f"; plot: {plot}" if plot else ""))


@app.command()
def agreement(
    judge: str = JUDGE_OPT,
    pairs: Path = PAIRS_OPT,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/agreement-<pairs>-<judge>)."),
    mode: str = typer.Option("pairwise", help="pairwise (compare the two answers) or single (grade each, compare grades)."),
    template: Optional[str] = typer.Option(None, help="Template name (default pairwise, or single_1to10 for single)."),
    verdict: str = typer.Option("probability", help="probability or generative."),
    swap: str = typer.Option("none", help="none, conservative, average or random (pairwise mode)."),
    calibration: str = CALIBRATION_OPT,
    cot: bool = typer.Option(False, "--cot/--no-cot"),
    reference: str = typer.Option("none", help="none, given or self."),
    few_shot: Optional[Path] = typer.Option(None, "--few-shot"),
    max_retries: int = typer.Option(2),
    margin: float = typer.Option(0.0, help="single mode: grades closer than this are a tie."),
    limit: Optional[int] = typer.Option(None, help="Use the first N pairs."),
    seed: int = typer.Option(0),
    n_boot: int = typer.Option(1000),
):
    """Agreement of a judge with the human labels of the pairs: S2, S1, accuracy, kappa, per category."""
    from referee import stats
    from referee.audit.agreement import grades_to_records, margin_correlation, pairwise_agreement
    from referee.audit.report import plot_agreement, table
    from referee.runs import Run

    if mode not in ("pairwise", "single"):
        raise RefereeError(f"--mode should be pairwise or single, got {mode!r}")
    loaded = _load(pairs, limit)
    if not any(p.label for p in loaded):
        raise RefereeError(f"{pairs}: no pair has a human label to agree with")
    folder = out or _default_out("agreement", pairs, judge)
    template = template or ("pairwise" if mode == "pairwise" else "single_1to10")
    config = {"command": "agreement", "judge": judge, "pairs": str(pairs), "mode": mode, "template": template,
              "verdict": verdict, "swap": swap, "calibration": calibration, "cot": cot, "reference": reference,
              "margin": margin,
              "few_shot": str(few_shot) if few_shot else None, "limit": limit, "seed": seed, "n_boot": n_boot}
    with Run(folder, config, seed=seed) as run:
        with run.stage("judge"):
            if mode == "pairwise":
                make, _ = make_judge_factory(judge, run, template=template, verdict=verdict, cot=cot,
                                             reference=reference, few_shot=few_shot, max_retries=max_retries, seed=seed,
                                             calibration=calibration)
                records = make(swap).judge_pairs(loaded)
            else:
                if judge.startswith("baseline:"):
                    raise RefereeError("--mode single needs a model judge, not a baseline")
                from referee.judges import GradingJudge

                grader = GradingJudge(run.model(judge), template=template, verdict=verdict, reference=reference,
                                      cot=cot, max_retries=max_retries, seed=seed,
                                      few_shot=str(few_shot) if few_shot else None)
                prompts = [p.question for p in loaded]
                refs = [p.reference for p in loaded] if reference == "given" else None
                grades_a = grader.grade(prompts, [p.answer_a for p in loaded], references=refs)
                grades_b = grader.grade(prompts, [p.answer_b for p in loaded], references=refs)
                key = "expected_score" if verdict == "probability" else "score"
                records = grades_to_records(loaded, grades_a, grades_b, margin=margin, key=key)
        run.write_records("judgments", records)
        metrics = pairwise_agreement(records, n_boot=n_boot, seed=seed)
        if mode == "single":
            metrics["grades"] = margin_correlation(records, n_boot=n_boot, seed=seed)
        metrics = stats.jsonable(metrics)
        run.save_metrics({"agreement": metrics})
        plot = plot_agreement(metrics, run.plot_path("agreement.png"))
    typer.echo(table(metrics))
    for cat, body in (metrics.get("per_category") or {}).items():
        typer.echo(f"  {cat:20s} S2 {_short(body['s2'])}  S1 {_short(body['s1'])}  n={body['n']}")
    progress.say(f"run folder: {run.folder}" + (f"; plot: {plot}" if plot else ""))


def _short(est: dict) -> str:
    from referee.audit.report import fmt

    return fmt(est)
