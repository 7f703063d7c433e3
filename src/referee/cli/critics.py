"""``referee critics tamper``: programs with inserted bugs (and QuixBugs' real ones) for training and measuring
critics: each record is a whole program, the changed lines and a one-sentence description of the bug."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.cli.options import at_least_one, output_file
from referee.errors import RefereeError

critics_app = typer.Typer(no_args_is_help=True, help="Data for critics: programs with known, tested bugs.")
app.add_typer(critics_app, name="critics")


@critics_app.command("tamper")
def tamper_command(
    humaneval: Optional[Path] = typer.Option(None, "--humaneval", help="HumanEval.jsonl(.gz): task_id, prompt, "
                                             "canonical_solution, test, entry_point."),
    quixbugs: Optional[Path] = typer.Option(None, "--quixbugs", help="A QuixBugs folder (correct_python_programs/, "
                                            "python_programs/, json_testcases/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Write the records here (JSONL).", callback=output_file),
    per_program: int = typer.Option(3, "--per-program", help="Kept mutations per program (at most)."),
    seed: int = typer.Option(0, help="Same programs and seed, same mutations."),
    limit: Optional[int] = typer.Option(None, help="Only the first N programs of each data set.",
                                         callback=at_least_one),
    natural: bool = typer.Option(False, "--natural", help="Also write QuixBugs' real bugs (operator 'natural')."),
    operators: str = typer.Option("all", help="Comma-separated mutation operators, or all."),
    max_tries: int = typer.Option(30, "--max-tries", help="Sandbox runs per program (at most)."),
    model: Optional[str] = typer.Option(None, "--model", help="Also ask this model for one subtle bug per program "
                                                              "(operator 'model'), checked the same way."),
    max_new_tokens: int = typer.Option(512, help="--model: tokens it may write (the whole program)."),
):
    """Insert bugs into correct programs, keeping only those their tests catch, and print what was tried."""
    from referee.io import write_jsonl
    from referee.programs.datasets import load_humaneval, load_quixbugs
    from referee.programs.tamper import OPERATORS, natural_bugs, tamper

    if humaneval is None and quixbugs is None:
        raise RefereeError("give --humaneval FILE, --quixbugs DIR or both")
    if natural and quixbugs is None:
        raise RefereeError("--natural needs --quixbugs DIR")
    chosen = OPERATORS if operators == "all" else tuple(o.strip() for o in operators.split(",") if o.strip())
    programs, without_cases = [], []
    if humaneval is not None:
        programs += load_humaneval(humaneval, limit)
    if quixbugs is not None:
        found, without_cases = load_quixbugs(quixbugs, "correct", limit)
        programs += found
    with progress.bar(total=2 * len(programs), desc="tamper", unit="program") as bar:
        records, report = tamper(programs, seed=seed, per_program=per_program, operators=chosen,
                                 max_tries=max_tries, on_program=lambda _: bar.update())
    natural_report = None
    if natural:
        found, natural_report = natural_bugs(quixbugs, limit=limit)
        records += found
    model_report = None
    if model:
        from referee.critics.model_tamper import model_tamper
        from referee.models import load_model
        from referee.models.base import Sampling

        found, model_report = model_tamper(load_model(model), programs, Sampling(temperature=0.0,
                                                                                 max_new_tokens=max_new_tokens))
        records += found
    count = write_jsonl(out, records)
    typer.echo(_summary(report, natural_report, without_cases))
    if model_report:
        typer.echo(f"{model}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in model_report.items()))
    progress.say(f"{count} records -> {out}")


def _summary(report: dict, natural: Optional[dict], without_cases: list[str]) -> str:
    """The report as a table: per operator, candidates, runs, kept and why the rest were rejected."""
    lines = [f"{'operator':16s} {'candidates':>10s} {'tried':>6s} {'kept':>5s} {'tests_pass':>10s} "
             f"{'timed_out':>9s} {'duplicate':>9s} {'unparsed':>8s}"]
    for op, c in report["operators"].items():
        lines.append(f"{op:16s} {c['candidates']:10d} {c['tried']:6d} {c['kept']:5d} "
                     f"{c['rejected_tests_passed']:10d} {c['timed_out']:9d} {c['duplicates']:9d} {c['unparseable']:8d}")
    share = report["rejected_share_tests_passed"]
    lines.append(f"{report['records']} tampered records from {report['tampered']} of {report['programs']} programs "
                 f"in {report['seconds']}s; rejected because the tests still passed: {report['rejected_tests_passed']} "
                 f"of {report['tried']} tried ({'-' if share is None else f'{share:.1%}'})")
    skipped = report["skipped_failing_own_tests"]
    if skipped:
        lines.append(f"skipped, the correct program fails its own tests ({len(skipped)}): "
                     + "; ".join(f"{s['id']} ({s['error']})" for s in skipped))
    if report["without_mutation"]:
        lines.append(f"no mutation the tests catch: {', '.join(report['without_mutation'])}")
    if without_cases:
        lines.append(f"QuixBugs programs without JSON test cases, skipped ({len(without_cases)}): "
                     f"{', '.join(without_cases)}")
    if natural is not None:
        lines.append(f"natural QuixBugs bugs: {natural['records']} of {natural['programs']} caught by the tests "
                     f"in {natural['seconds']}s" + (f"; not caught: {', '.join(natural['tests_pass_anyway'])}"
                                                    if natural["tests_pass_anyway"] else ""))
    return "\n".join(lines)
