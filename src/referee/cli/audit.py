"""Commands ``referee audit`` (bias audits of a judge) and ``referee agreement`` (agreement with people)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.cli.options import at_least_one, output_folder
from referee.errors import RefereeError
from referee.io.tables import source_name

def _default_out(kind: str, pairs: Path, judge: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in judge)[:40]
    return Path("runs") / f"{kind}-{source_name(pairs)}-{safe}"


JUDGE_OPT = typer.Option("embedded", "--judge", "-j", help="Judge model spec, or baseline:longer / baseline:random.")
CALIBRATION_OPT = typer.Option("none", help="none, batch or content-free: divide probability verdicts by the "
                                              "judge's position prior (docs/methods/judges.md).")
PAIRS_OPT = typer.Option(..., "--pairs", "-p", help="Pairs: LLMBar JSON, MT-Bench human judgments, TRL or generic JSONL.")


@app.command()
def audit(
    judge: str = JUDGE_OPT,
    pairs: Path = PAIRS_OPT,
    checks: str = typer.Option("position,verbosity,injection,assertiveness",
                               help="Comma-separated: position, verbosity, injection, assertiveness, self (or all)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/audit-<pairs>-<judge>).",
                                         callback=output_folder),
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
    limit: Optional[int] = typer.Option(None, help="Use the first N pairs.", callback=at_least_one),
    seed: int = typer.Option(0),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples for the intervals."),
):
    """Bias audit of a judge: position, verbosity, injection, assertiveness, self-enhancement."""
    from referee.audit.report import table
    from referee.audit.runner import parse_checks
    from referee.cli.core import execute, validated
    from referee.protocols.audit import AuditConfig

    config = validated(AuditConfig, {
        "judge_spec": judge, "pairs": str(pairs), "checks": parse_checks(checks), "self_model": list(self_model),
        "limit": limit, "seed": seed, "n_boot": n_boot, "out": str(out) if out else None,
        "judge": dict(template=template, verdict=verdict, swap=swap, calibration=calibration, cot=cot,
                      reference=reference, few_shot=str(few_shot) if few_shot else None, max_retries=max_retries,
                      seed=seed)})
    result, run, figures = execute(config, _default_out("audit", pairs, judge))
    typer.echo(table(result.metrics))
    progress.say(f"run folder: {run.folder}" + (f"; plot: {figures[0]}" if figures else ""))


@app.command()
def agreement(
    judge: str = JUDGE_OPT,
    pairs: Path = PAIRS_OPT,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/agreement-<pairs>-<judge>).",
                                         callback=output_folder),
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
    limit: Optional[int] = typer.Option(None, help="Use the first N pairs.", callback=at_least_one),
    seed: int = typer.Option(0),
    n_boot: int = typer.Option(1000),
):
    """Agreement of a judge with the human labels of the pairs: S2, S1, accuracy, kappa, per category."""
    from referee.audit.report import fmt, table
    from referee.cli.core import execute, validated
    from referee.protocols.audit import AgreementConfig

    if mode not in ("pairwise", "single"):
        raise RefereeError(f"--mode should be pairwise or single, got {mode!r}")
    if mode == "single" and judge.startswith("baseline:"):
        raise RefereeError("--mode single needs a model judge, not a baseline")
    config = validated(AgreementConfig, {
        "judge_spec": judge, "pairs": str(pairs), "margin": margin, "limit": limit, "seed": seed, "n_boot": n_boot,
        "out": str(out) if out else None,
        "judge": dict(mode=mode, template=template, verdict=verdict, swap=swap, calibration=calibration, cot=cot,
                      reference=reference, few_shot=str(few_shot) if few_shot else None, max_retries=max_retries,
                      seed=seed)})
    result, run, figures = execute(config, _default_out("agreement", pairs, judge))
    metrics = result.metrics
    typer.echo(table(metrics))
    for cat, body in (metrics.get("per_category") or {}).items():
        typer.echo(f"  {cat:20s} S2 {fmt(body['s2'])}  S1 {fmt(body['s1'])}  n={body['n']}")
    progress.say(f"run folder: {run.folder}" + (f"; plot: {figures[0]}" if figures else ""))
