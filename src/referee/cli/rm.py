"""``referee rm train|score|eval``: trained verifiers (Bradley-Terry RM, outcome RM, process RM)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.cli.options import at_least_one, output_file, output_folder
from referee.errors import RefereeError

rm_app = typer.Typer(no_args_is_help=True, help="Train, score with and evaluate reward models (rm, orm, prm).")
app.add_typer(rm_app, name="rm")

KIND_HELP = "rm (Bradley-Terry, preference pairs), orm (whole-solution correctness) or prm (per-step)."


def _check_kind(kind: str) -> str:
    if kind not in ("rm", "orm", "prm"):
        raise RefereeError(f"--kind {kind!r}: expected rm, orm or prm")
    return kind


@rm_app.command("train")
def train(
    kind: str = typer.Option(..., "--kind", "-k", help=KIND_HELP),
    data: Path = typer.Option(..., "--data", "-d", help="Training data (JSONL or JSON array, .gz allowed)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to save the verifier in (also its run folder: "
                                                      "config.yaml, manifest, ledger).", callback=output_folder),
    base: str = typer.Option("embedded", "--base", "-b", help="Backbone: embedded or hf:PATH."),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters too (default: frozen backbone, head only)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default 30 frozen, 2 with LoRA)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default 1e-2 frozen, 2e-4 with LoRA)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Examples per step and per forward batch."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N records.", callback=at_least_one),
    val_frac: float = typer.Option(0.1, help="Share held out to keep the epoch with the lowest held-out loss "
                                             "(0: keep the last epoch)."),
    center: float = typer.Option(0.0, help="rm: centering coefficient c in c*(r_chosen + r_rejected)^2."),
    neutral: str = typer.Option("positive", help="prm: a neutral step (label 0 of 1/0/-1) counts as positive, "
                                                 "negative, or skip."),
    labels: str = typer.Option("auto", help="prm: integer label scheme: auto, binary (1/0) or ternary (1/0/-1)."),
    max_length: int = typer.Option(1024, help="Tokens per input; longer ones lose tokens from the left."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    seed: int = typer.Option(0),
):
    """Train a verifier on a data file and save it to a folder (with the config.yaml that trained it)."""
    from referee.cli.core import execute, print_result
    from referee.config import validate
    from referee.protocols.reward_model import RewardModelConfig

    config = validate(RewardModelConfig, {
        "kind": _check_kind(kind), "data": str(data), "out": str(out), "base": base, "limit": limit,
        "training": {"epochs": epochs, "lr": lr, "batch_size": batch_size, "lora": lora, "val_frac": val_frac},
        "center": center, "neutral": neutral, "labels": labels, "max_length": max_length, "device": device,
        "seed": seed}, "rm train")
    print_result(*execute(config, out))


def _load(model: Path, kind: Optional[str], device: Optional[str], batch_size: int):
    from referee import rewards
    from referee.supervisors import build_verifier

    found = rewards.saved_kind(model)
    if kind is not None and _check_kind(kind) != found:
        raise RefereeError(f"{model}: this verifier was trained as {found!r}, not {kind!r}")
    return found, build_verifier(f"{found}:{model}", device=device, batch_size=batch_size)


@rm_app.command("score")
def score(
    model: Path = typer.Option(..., "--model", "-m", help="A folder saved by 'referee rm train'."),
    data: Path = typer.Option(..., "--data", "-d", help="prompt + completion records (prm: or completions: steps)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write scored records here (JSONL).",
                                         callback=output_file),
    kind: Optional[str] = typer.Option(None, "--kind", "-k", help="Check the folder holds this kind."),
    batch_size: int = typer.Option(16, "--batch-size"),
    limit: Optional[int] = typer.Option(None, callback=at_least_one),
    device: Optional[str] = typer.Option(None),
):
    """Score solutions with a saved verifier; prints one JSON line per record unless --out is given."""
    from referee import rewards
    from referee.io import write_jsonl

    kind, verifier = _load(model, kind, device, batch_size)
    records = []
    if kind == "prm":
        items, _ = rewards.load_steps(data, limit=limit, labelled=False)
        probs = verifier.score_steps([s.prompt for s in items], [s.steps for s in items])
        for s, ps in zip(items, probs):
            rec = {"id": s.id, "steps": s.steps}
            if ps:
                rec.update(score=verifier.summary(ps)["product"], valid=True, **verifier.summary(ps))
            else:
                rec.update(score=None, valid=False, error="no steps")
            records.append(rec)
    else:
        items = rewards.load_solutions(data, limit=limit, labelled=False)
        scores = verifier.score_many([s.prompt for s in items], [s.response for s in items])
        for s, sc in zip(items, scores):
            records.append({"id": s.id, "score": sc.value, "valid": sc.valid, **sc.detail})
    if out is not None:
        write_jsonl(out, records)
        progress.say(f"{len(records)} scored records written to {out}")
    else:
        for r in records:
            typer.echo(json.dumps(r))


@rm_app.command("eval")
def evaluate(
    model: Path = typer.Option(..., "--model", "-m", help="A folder saved by 'referee rm train'."),
    data: Path = typer.Option(..., "--data", "-d", help="Held-out data in the training format of the kind."),
    kind: Optional[str] = typer.Option(None, "--kind", "-k", help="Check the folder holds this kind."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the metrics here (JSON).",
                                         callback=output_file),
    batch_size: int = typer.Option(16, "--batch-size"),
    limit: Optional[int] = typer.Option(None, callback=at_least_one),
    device: Optional[str] = typer.Option(None),
    seed: int = typer.Option(0, help="Seed of the bootstrap resampling."),
):
    """Accuracy with a 95% bootstrap interval, beside a trivial baseline measured on the same data."""
    from referee import rewards
    from referee.io import write_json
    from referee.rewards import evaluate as ev
    from referee.stats import jsonable

    kind, verifier = _load(model, kind, device, batch_size)
    if kind == "rm":
        m = ev.eval_pairs(verifier, rewards.load_preferences(data, limit=limit), seed=seed)
        m.pop("hits")
        typer.echo(f"pairs: {m['pairs']}")
        typer.echo(f"pairwise accuracy:       {ev.fmt(m['accuracy'])}")
        typer.echo(f"always-longer baseline:  {ev.fmt(m['always_longer'])}")
        typer.echo(f"minus the baseline:      {ev.fmt(m['minus_always_longer'])} (paired, same pairs)")
    elif kind == "orm":
        m = ev.eval_outcomes(verifier, rewards.load_solutions(data, limit=limit), seed=seed)
        typer.echo(f"solutions: {m['solutions']} ({m['unlabelled_skipped']} unlabelled skipped)")
        typer.echo(f"accuracy:                {ev.fmt(m['accuracy'])}")
        typer.echo(f"majority-class baseline: {ev.fmt(m['majority_class'])}")
        typer.echo(f"AUC:                     {ev.fmt(m['auc'])}")
    else:
        neutral = verifier.config.get("neutral", "positive")  # score the labels as training read them
        items, stats = rewards.load_steps(data, limit=limit, neutral=neutral)
        m = ev.eval_steps(verifier, items, seed=seed)
        m["labels"] = stats.as_dict()
        typer.echo(f"solutions: {m['solutions']}, labelled steps: {m['labelled_steps']} "
                   f"({stats.unlabelled} without a label skipped)")
        typer.echo(f"step accuracy:           {ev.fmt(m['step_accuracy'])}")
        typer.echo(f"majority-class baseline: {ev.fmt(m['majority_class'])}")
        typer.echo(f"first wrong step found:  {ev.fmt(m['first_wrong_step_match'])}")
    if out is not None:
        write_json(out, jsonable(m))
