"""`referee quickstart`: one full self-rewarding iteration on the embedded model, small settings."""

from __future__ import annotations

from pathlib import Path

import typer

from referee import progress
from referee.cli import app

# Sized for about 10 minutes on 2 CPU cores: one SFT epoch (two took 306 s of an 11.4-minute run).
QUICK = dict(iterations=1, new_prompts=24, candidates=4, eval_limit=16,
             sampling=dict(temperature=0.7, top_p=0.95, max_new_tokens=64),
             sft=dict(learning_rate=3e-4, epochs=1, batch_size=4, max_length=512, lora=dict(r=16, alpha=32)))


@app.command()
def quickstart(
    model: str = typer.Option("embedded", "--model", "-m", help="M0, the model that will judge itself."),
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Run folder (run again to resume)."),
    iterations: int = typer.Option(1, help="Self-rewarding iterations after M1."),
    seed: int = typer.Option(0),
):
    """Self-rewarding in miniature: M0 -> M1 (IFT+EFT) -> M2 (DPO on self-judged pairs), with a report."""
    from referee.cli.core import execute, headline_table
    from referee.config import validate
    from referee.protocols.self_rewarding import SelfRewardingConfig

    config = validate(SelfRewardingConfig, {**QUICK, "model": model, "out": str(out), "seed": seed,
                                            "iterations": iterations}, "quickstart")
    result, run, _ = execute(config, out)
    typer.echo(headline_table(result.headline))
    progress.say(f"report: {run.folder / 'report.html'}")
