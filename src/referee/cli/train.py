"""`referee train sft|dpo|grpo|judge`: the trainers from the command line. Each writes a checkpoint folder
(LoRA adapter + base spec) that every other command accepts as ``hf:FOLDER``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.cli.options import at_least_one, output_folder

train_app = typer.Typer(no_args_is_help=True, help="Fine-tune a policy (SFT, DPO, GRPO) or a judge; LoRA by default.")
app.add_typer(train_app, name="train")


def _settings(lr: float, epochs: float, max_steps: int, batch_size: int, max_length: int, lora_r: int,
              full: bool, seed: int, trl: Optional[str]):
    from referee.config import validate
    from referee.io import parse_json
    from referee.trainers import TrainSettings

    passthrough = parse_json(trl, "--trl") if trl else {}
    return validate(TrainSettings, {"learning_rate": lr, "epochs": epochs, "max_steps": max_steps,
                                    "batch_size": batch_size, "max_length": max_length, "seed": seed,
                                    "lora": None if full else {"r": lora_r, "alpha": 2 * lora_r},
                                    "trl": passthrough}, "train")


def _rows(path: Path) -> list[dict]:
    from referee.io import read_records

    return [obj for _, obj in read_records(path)]


def _loss_line(history: list[dict]) -> str:
    losses = [h["loss"] for h in history if "loss" in h]
    return f"loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "trained"


def _report(spec: str, summary: str) -> None:
    """The summary on stderr and the checkpoint's spec on stdout, once however many processes trained."""
    from referee.distributed import is_main_process

    progress.say(summary)
    if is_main_process():
        typer.echo(spec)


COMMON = dict(
    base=typer.Option("embedded", "--base", "-b", help="Model spec to start from (embedded, hf:..., a checkpoint)."),
    out=typer.Option(..., "--out", "-o", help="Checkpoint folder to write.", callback=output_folder),
    lr=typer.Option(1e-4, "--lr"), epochs=typer.Option(1.0), max_steps=typer.Option(-1),
    batch_size=typer.Option(4), max_length=typer.Option(512), lora_r=typer.Option(16),
    full=typer.Option(False, "--full", help="Full fine-tuning instead of LoRA."), seed=typer.Option(0),
    trl=typer.Option(None, "--trl", help='Extra TRL config options as JSON, e.g. \'{"bf16": true}\'.'),
)


@train_app.command("sft")
def sft(data: Path = typer.Option(..., "--data", "-d", help="JSONL: 'messages' ending with the assistant turn, or 'prompt' + 'completion'."),
        base: str = COMMON["base"], out: Path = COMMON["out"], lr: float = COMMON["lr"], epochs: float = COMMON["epochs"],
        max_steps: int = COMMON["max_steps"], batch_size: int = COMMON["batch_size"], max_length: int = COMMON["max_length"],
        lora_r: int = COMMON["lora_r"], full: bool = COMMON["full"], seed: int = COMMON["seed"], trl: Optional[str] = COMMON["trl"]):
    """Supervised fine-tuning on demonstrations (loss on the assistant's reply only)."""
    from referee.trainers import train_sft

    spec, history = train_sft(base, _rows(data), out, _settings(lr, epochs, max_steps, batch_size, max_length, lora_r, full, seed, trl))
    _report(spec, _loss_line(history))


@train_app.command("dpo")
def dpo(data: Path = typer.Option(..., "--data", "-d", help="JSONL in TRL preference format: prompt, chosen, rejected."),
        beta: float = typer.Option(0.1), base: str = COMMON["base"], out: Path = COMMON["out"], lr: float = 5e-5,
        epochs: float = COMMON["epochs"], max_steps: int = COMMON["max_steps"], batch_size: int = COMMON["batch_size"],
        max_length: int = COMMON["max_length"], lora_r: int = COMMON["lora_r"], seed: int = COMMON["seed"],
        trl: Optional[str] = COMMON["trl"]):
    """Direct preference optimisation against the starting model (LoRA; the reference is the base)."""
    from referee.trainers import train_dpo

    spec, history = train_dpo(base, _rows(data), out, _settings(lr, epochs, max_steps, batch_size, max_length, lora_r,
                                                                False, seed, trl), beta=beta)
    _report(spec, _loss_line(history))


@train_app.command("grpo")
def grpo(data: Path = typer.Option(..., "--data", "-d", help="JSONL with 'prompt' (and 'answer' for --reward exact)."),
         reward: str = typer.Option(..., "--reward", "-r", help="Verifier spec: judge:SPEC, judge-additive:SPEC, rm:PATH, orm:PATH, prm:PATH, exact."),
         generations: int = typer.Option(4, help="Completions per prompt (the GRPO group)."),
         max_completion_length: int = typer.Option(128), base: str = COMMON["base"], out: Path = COMMON["out"],
         lr: float = 1e-5, epochs: float = COMMON["epochs"], max_steps: int = COMMON["max_steps"],
         batch_size: int = COMMON["batch_size"], lora_r: int = COMMON["lora_r"], full: bool = COMMON["full"],
         seed: int = COMMON["seed"], trl: Optional[str] = COMMON["trl"]):
    """Online RL (GRPO) with rewards from any referee verifier."""
    from referee.chat import load_prompts
    from referee.trainers import train_grpo
    from referee.verifiers.programmatic import prompt_key
    from referee.supervisors import build_verifier

    prompts = load_prompts(data)
    answers = {prompt_key(p.chat): str(p.extra["answer"]) for p in prompts if "answer" in p.extra}
    verifier = build_verifier(reward, answers)
    spec, info = train_grpo(base, [p.chat for p in prompts], verifier, out,
                            _settings(lr, epochs, max_steps, batch_size, 512, lora_r, full, seed, trl),
                            num_generations=generations, max_completion_length=max_completion_length)
    _report(spec, f"{info['rewards_scored']} rewards, {info['rewards_invalid']} unreadable")


def _graded_items(path: Path) -> list[dict]:
    """Graded answers for a grading judge: prompt, response, score (optional reason, reference, id)."""
    from referee.io import read_records, require
    from referee.io.tables import source_name

    items = []
    for pos, obj in read_records(path):
        where = f"{path}:{pos}"
        require(obj, "prompt", (str, list), where)
        require(obj, "response", str, where)
        items.append({**obj, "id": str(obj.get("id", f"{source_name(path)}:{int(pos)}"))})
    return items


@train_app.command("judge")
def judge(data: list[Path] = typer.Option(..., "--data", "-d", help="Labelled pairs (LLMBar, MT-Bench human, TRL "
                                          "preference, HH-RLHF; repeatable), or with --mode single graded answers "
                                          "(prompt, response, score)."),
          mode: str = typer.Option("pairwise", help="pairwise (A/B/tie targets) | single (a score on the template's "
                                                    "scale)."),
          template: Optional[str] = typer.Option(None, help="Judge template (default pairwise / single_1to10)."),
          cot: bool = typer.Option(False, "--cot", help="Train the data's reasons ('reason' or 'explanation') "
                                                        "before the verdict."),
          ties: str = typer.Option("train", help="A tie label: train (a [[C]] target) | drop (counted) | error."),
          augment: float = typer.Option(0.0, help="Share of attacked copies (padded, assertive, injected) with "
                                                  "the right verdict, e.g. 0.2."),
          augment_kinds: str = typer.Option("verbosity,assertiveness,injection", help="Attacks to train against."),
          eval_data: list[Path] = typer.Option([], "--eval", help="Pairs you will evaluate on: a training pair "
                                               "found among them is refused (repeatable)."),
          limit: Optional[int] = typer.Option(None, help="At most this many items from each --data file.",
                                                callback=at_least_one),
          base: str = COMMON["base"], out: Path = COMMON["out"], lr: float = 2e-4, epochs: float = COMMON["epochs"],
          max_steps: int = COMMON["max_steps"], batch_size: int = 8, max_length: int = 640,
          lora_r: int = COMMON["lora_r"], full: bool = COMMON["full"], seed: int = COMMON["seed"],
          trl: Optional[str] = COMMON["trl"]):
    """Fine-tune a chat model into a judge: the judge's own prompt in, its verdict marker out, every pair in
    both orders. Use it with `referee judge --judge hf:OUT` (the template and prompt budget come along)."""
    from referee.config import validate
    from referee.models import load_model
    from referee.protocols.judge_training import JudgeTrainSettings, tagged, train_judge
    from referee.tasks.pairs import load_pairs

    kinds = [k.strip() for k in augment_kinds.split(",") if k.strip()]
    settings = validate(JudgeTrainSettings, {
        "mode": mode, "template": template, "cot": cot, "ties": ties, "augment": {"share": augment, "kinds": kinds},
        "sft": _settings(lr, epochs, max_steps, batch_size, max_length, lora_r, full, seed, trl)}, "train judge")
    if mode == "single":
        items = [it for path in data for it in _graded_items(path)[:limit]]
        evaluate = None
    else:
        items = [p for path in data for p in tagged(load_pairs(path)[:limit], path.name)]
        evaluate = [p for path in eval_data for p in load_pairs(path)]
    spec, report = train_judge(base, items, out, settings, load_model, evaluate)
    loss = report.get("loss") or {}
    _report(spec, f"{report['examples']['examples']} examples; loss {loss.get('first', float('nan')):.3f} -> "
                  f"{loss.get('last', float('nan')):.3f}; judge with: referee judge --judge {spec} --pairs FILE")

