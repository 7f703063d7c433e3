"""``referee tasks ...``: write math task data, check samples against gold answers, Monte-Carlo step labels.

Best-of-N runs from a config: ``referee run bon.yaml`` with ``protocol: best_of_n``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.cli.options import at_least_one, output_file, output_folder
from referee.errors import RefereeError
from referee.io.tables import source_name

tasks_app = typer.Typer(no_args_is_help=True, help="Math task data, answer checking and step labels.")
app.add_typer(tasks_app, name="tasks")


@tasks_app.command("arithmetic")
def arithmetic(
    out: Path = typer.Option(..., "--out", "-o", help="Write the JSONL here.", callback=output_file),
    n: int = typer.Option(200, "--n", help="Number of problems."),
    steps: int = typer.Option(2, help="Events (calculation steps) per problem."),
    max_number: int = typer.Option(20, help="Largest start value and largest amount added or taken."),
    max_factor: int = typer.Option(3, help="Largest multiplier / number of equal parts."),
    ops: str = typer.Option("add,sub,mul,div", help="Comma-separated events to draw from."),
    seed: int = typer.Option(0, help="Same settings and seed, same problems."),
    fmt: str = typer.Option("problems", "--format",
                            help="problems (prompt, answer, steps, meta), sft (TRL messages) or stepwise "
                                 "(TRL prompt/completions/labels: reference and corrupted solutions)."),
    negatives: int = typer.Option(1, help="stepwise: corrupted solutions per problem."),
):
    """Write synthetic multi-step arithmetic problems, SFT demonstrations or exact step-labelled data."""
    from referee.io import write_jsonl
    from referee.tasks.arithmetic import (Difficulty, generate_problems, problem_records, sft_records,
                                          stepwise_records)
    from referee.tasks.math import write_stepwise

    difficulty = Difficulty(steps, max_number, max_factor, tuple(o.strip() for o in ops.split(",") if o.strip()))
    problems = generate_problems(n, difficulty, seed)
    if fmt == "problems":
        count = write_jsonl(out, problem_records(problems))
    elif fmt == "sft":
        count = write_jsonl(out, sft_records(problems))
    elif fmt == "stepwise":
        count = write_stepwise(out, stepwise_records(problems, negatives, seed))
    else:
        raise RefereeError(f"--format: expected problems, sft or stepwise, got {fmt!r}")
    progress.say(f"{count} {fmt} records from {n} problems ({steps} steps, numbers up to {max_number}) -> {out}")


@tasks_app.command("gsm8k")
def gsm8k(
    file: Path = typer.Option(..., "--file", "-f", help="GSM8K JSONL (question, answer)."),
    out: Path = typer.Option(..., "--out", "-o", help="Write the JSONL here.", callback=output_file),
    limit: Optional[int] = typer.Option(None, help="Read at most this many problems.", callback=at_least_one),
    split: str = typer.Option("all", help="all, train or held_out."),
    fraction: float = typer.Option(0.1, help="Share of problems held out."),
    seed: int = typer.Option(0, help="Seed of the held-out split."),
    fmt: str = typer.Option("problems", "--format", help="problems (prompts with answers) or sft (TRL messages)."),
    annotations: str = typer.Option("strip", help="strip or keep the <<a*b=c>> calculator annotations."),
):
    """Turn GSM8K into referee prompt files (for generate / best-of-N) or SFT demonstrations."""
    from referee.io import write_jsonl
    from referee.tasks.arithmetic import problem_records, sft_records
    from referee.tasks.gsm8k import load_gsm8k, split_held_out

    data = load_gsm8k(file, limit, annotations)
    problems = data.problems
    if split not in ("all", "train", "held_out"):
        raise RefereeError(f"--split: expected all, train or held_out, got {split!r}")
    if split != "all":
        train, held = split_held_out(problems, fraction, seed)
        problems = held if split == "held_out" else train
    if fmt not in ("problems", "sft"):
        raise RefereeError(f"--format: expected problems or sft, got {fmt!r}")
    count = write_jsonl(out, problem_records(problems) if fmt == "problems" else sft_records(problems))
    progress.say(f"{count} {fmt} records ({split}) -> {out}; calculator annotations with a wrong result: "
                 f"{data.bad_annotations}")


def _gold(obj: dict, where: str) -> str:
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    gold = obj.get("answer", obj.get("gold", meta.get("answer")))
    if gold is None:
        raise RefereeError(f"{where}: missing field 'answer' (the gold answer; also read from 'gold' or 'meta.answer')")
    if isinstance(gold, (bool, dict, list)):
        raise RefereeError(f"{where}: field 'answer' (the gold answer) should be text or a number, got "
                           f"{type(gold).__name__}")
    return str(gold)


def _completion(obj: dict, where: str) -> str:
    for f in ("completion", "response", "output"):
        if f in obj:
            if not isinstance(obj[f], str):
                raise RefereeError(f"{where}: field '{f}' should be a string")
            return obj[f]
    if isinstance(obj.get("completions"), list):
        return "\n".join(str(s) for s in obj["completions"])
    raise RefereeError(f"{where}: missing field 'completion' (the sampled solution)")


STEP_LABEL_VALUES = {"correct": 1, "neutral": 0, "wrong": -1}


@tasks_app.command("check")
def check(
    file: Path = typer.Option(..., "--file", "-f", help="Samples JSONL: completion + answer (or meta.answer)."),
    task: str = typer.Option("gsm8k", help="gsm8k (final answers) or arithmetic (final answers and every step)."),
    problems: Optional[Path] = typer.Option(None, help="arithmetic: the problems file, to find each sample's "
                                                       "true step values by id."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write each sample with its verdict here.",
                                         callback=output_file),
    style: str = typer.Option("auto", help="Where to look for the answer: auto, gsm8k, boxed, announced, last_number."),
):
    """Score sampled solutions: correct / wrong / no extractable answer (and step labels for arithmetic)."""
    from referee.io import read_records, write_jsonl
    from referee.tasks.math import answers_match, extract_answer

    if task not in ("gsm8k", "arithmetic"):
        raise RefereeError(f"--task: expected gsm8k or arithmetic, got {task!r}")
    by_id = {}
    if problems is not None:
        from referee.tasks.arithmetic import load_arithmetic

        by_id = {p.id: p for p in load_arithmetic(problems)}
    counts, step_counts, rows = Counter(), Counter(), []
    for pos, obj in read_records(file):
        where = f"{file}:{pos}"
        gold, text = _gold(obj, where), _completion(obj, where)
        found = extract_answer(text, style)
        status = "no_answer" if not found.found else ("correct" if answers_match(found, gold) else "wrong")
        counts[status] += 1
        # ``correct`` makes the file ORM training data as it stands (``referee rm train --kind orm``).
        row = {**obj, "extracted": found.text, "status": status, "correct": status == "correct"}
        if task == "arithmetic":
            problem = _arithmetic_problem(obj, by_id, gold, where)
            from referee.tasks.arithmetic import check_solution

            verdicts = check_solution(problem, text).steps
            row["step_labels"] = [v.label for v in verdicts]
            row["step_reasons"] = [v.reason for v in verdicts]
            # TRL stepwise fields (1 / 0 neutral / -1), so the file is also PRM training data.
            row["completions"] = [v.text for v in verdicts]
            row["labels"] = [STEP_LABEL_VALUES[v.label] for v in verdicts]
            step_counts.update(v.label for v in verdicts)
        rows.append(row)
    if not rows:
        raise RefereeError(f"{file}: no samples in the file")
    n = len(rows)
    report = {"samples": n, "correct": counts["correct"], "wrong": counts["wrong"],
              "no_answer": counts["no_answer"], "accuracy": counts["correct"] / n}
    if task == "arithmetic":
        report["steps"] = {k: step_counts[k] for k in ("correct", "wrong", "neutral")}
    if out is not None:
        write_jsonl(out, rows)
    typer.echo(json.dumps(report, indent=2))


def _arithmetic_problem(obj: dict, by_id: dict, gold: str, where: str):
    from referee.tasks.math import MathProblem

    pid = str(obj.get("id", ""))
    if pid in by_id:
        return by_id[pid]
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    inner = meta.get("meta") if isinstance(meta.get("meta"), dict) else {}
    # a sample may carry the values itself, or under meta (from `referee generate` on a problems file)
    for values in (obj.get("values"), meta.get("values"), inner.get("values")):
        if isinstance(values, list):
            return MathProblem(pid, "", gold, [], {"values": values})
    raise RefereeError(f"{where}: no true step values for sample id {pid!r}: pass --problems with the problems "
                       "file, or keep 'meta.values' in the sample")


@tasks_app.command("mc-label")
def mc_label(
    file: Path = typer.Option(..., "--file", "-f", help="Solutions JSONL: prompt, completion (or completions), answer."),
    out: Path = typer.Option(..., "--out", "-o", help="Write TRL stepwise records here.", callback=output_file),
    policy: str = typer.Option("embedded", "--policy", "-m", help="Model spec of the policy that rolls out."),
    k: int = typer.Option(8, help="Rollouts per step prefix."),
    mode: str = typer.Option("soft", help="soft (fraction of rollouts that reach the answer) or hard (any)."),
    how: str = typer.Option("auto", help="auto, prefill (continue the assistant's reply) or prompt."),
    temperature: float = typer.Option(0.7),
    max_new_tokens: int = typer.Option(256),
    seed: int = typer.Option(0),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="Run folder for the cache and ledger "
                                                               "(default: runs/mc-label-<file stem>).",
                                             callback=output_folder),
):
    """Label each step of each solution by Monte-Carlo rollouts from a policy model."""
    from referee.cli.core import execute, print_result
    from referee.config import validate
    from referee.io import write_jsonl
    from referee.protocols.mc_label import MCLabelConfig

    config = validate(MCLabelConfig, {
        "solutions": str(file), "policy": policy, "k": k, "mode": mode, "how": how, "seed": seed,
        "sampling": {"temperature": temperature, "max_new_tokens": max_new_tokens},
        "out": None if run_dir is None else str(run_dir)}, "tasks mc-label")
    result, run, figures = execute(config, Path("runs") / f"mc-label-{source_name(file)}")
    write_jsonl(out, run.read_records("mc_labels"))
    print_result(result, run, figures)
    m = result.metrics["mc_labels"]
    progress.say(f"{m['solutions']} solutions, {m['steps']} steps labelled ({m['empty_skipped']} empty solutions "
                 f"skipped) -> {out}")
