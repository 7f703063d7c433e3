"""`referee quickstart`: does feedback improve a model? One self-rewarding iteration on arithmetic, in three
arms (self-judge, exact checker, trained verifier), every model scored by the exact checker."""

from __future__ import annotations

from pathlib import Path

import typer

from referee import progress
from referee.cli import app
from referee.cli.options import output_folder

# Sized for about 10 minutes on 2 CPU cores (docs/results/feedback.md, "The quick start"); the same experiment at
# a size that can show an effect is configs/verifiable_feedback_arithmetic.yaml.
QUICK = dict(sft_problems=80, eft_problems=16, pair_problems=32, eval_problems=64, candidates=4,
             pairs_per_prompt=1)
LARGER = "configs/verifiable_feedback_arithmetic.yaml"
REPLICATED = "configs/verifiable_feedback_checker.yaml"


@app.command()
def quickstart(
    model: str = typer.Option("embedded", "--model", "-m", help="M0: the model that is trained and judges itself."),
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Run folder (run again to resume).",
                                 callback=output_folder),
    seed: int = typer.Option(0),
):
    """Feedback against ground truth in miniature: M0 -> M1 (SFT) -> M2 by DPO on pairs chosen by the model
    itself, by the exact checker and by a trained verifier; held-out accuracy by exact check, with a report."""
    from referee.cli.core import execute, headline_table
    from referee.config import validate
    from referee.protocols.verifiable_feedback import VerifiableFeedbackConfig

    config = validate(VerifiableFeedbackConfig, {**QUICK, "model": model, "out": str(out), "seed": seed}, "quickstart")
    result, run, _ = execute(config, out)
    typer.echo(headline_table(result.headline))
    progress.say(f"report: {run.folder / 'report.html'}")
    # No figure is written here: a number in code would outlive the runs that measured it.
    progress.say(f"this is the small version; {LARGER} runs the same experiment at a size that can show an "
                 f"effect, and {REPLICATED} the checker arm over seeds (results, with the commands that wrote "
                 "them: docs/results/feedback.md)")


@app.command()
def pool(
    folders: list[Path] = typer.Argument(..., help="verifiable_feedback run folders (one per seed)."),
    model: str = typer.Option("M2-checker", "--model", "-m", help="The model whose change against M1 is pooled "
                                                                  "(M2-checker, M2-verifier, M2-self, M0)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
):
    """Pool a model's held-out change against M1 over several verifiable_feedback runs (seeds), with a
    bootstrap interval that resamples problems within each run."""
    import json

    from referee.feedback.pooled import pooled_change
    from referee.stats import Estimate

    result = pooled_change(folders, model, seed=seed)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    points = lambda d: Estimate(**{k: None if v is None else 100 * v if k != "n" else v  # noqa: E731
                                   for k, v in d.items()}).fmt(1)
    for r in result["runs"]:
        typer.echo(f"{r['folder']} (seed {r['seed']}): M1 {100 * r['m1_accuracy']:.1f}% -> {model} "
                   f"{100 * r['accuracy']:.1f}%, change {points(r['change'])} points over {r['problems']} problems "
                   f"({r['flipped_right']} turned right, {r['flipped_wrong']} wrong)")
    typer.echo(f"pooled over {len(result['runs'])} runs: {points(result['pooled'])} points over "
               f"{result['pooled']['n']} problems ({result['flipped_right']} turned right, "
               f"{result['flipped_wrong']} wrong)")
