"""``referee judge``: run an LLM judge (or a panel) over pairs or answers, write records and metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.cli.options import at_least_one, output_file, output_folder
from referee.io.tables import source_name

TEMPLATES = "pairwise, pairwise_reference, single_1to10"


@app.command()
def judge(
    judge_specs: list[str] = typer.Option(["embedded"], "--judge", "-j",
                                          help="Judge model spec; repeat it for a panel of judges."),
    mode: str = typer.Option("pairwise", "--mode", help="pairwise | single (grade each answer) | reference "
                                                        "(pairwise, checked against a reference answer)."),
    pairs_path: Optional[Path] = typer.Option(None, "--pairs", help="Pairs: LLMBar, MT-Bench human, TRL "
                                                                  "preference or prompt/answer_a/answer_b (JSON or JSONL)."),
    answers_path: Optional[Path] = typer.Option(None, "--answers", help="single mode: JSONL with 'prompt', "
                                                                      "'response' (optional 'reference', 'id'), or an "
                                                                      "Inspect AI log (.eval, .json; needs "
                                                                      "referee[inspect])."),
    swap: str = typer.Option("none", help="none | conservative | average | random."),
    calibration: str = typer.Option("none", help="none | batch | content-free: divide probability verdicts by the "
                                                 "judge's position prior (pairwise)."),
    verdict: str = typer.Option("probability", help="probability (read P(A), P(B), P(tie)) | generative (parse [[A]])."),
    template: Optional[str] = typer.Option(None, help=f"Template name ({TEMPLATES}, additive_0to5) or the path of "
                                                     "your own .txt."),
    cot: bool = typer.Option(False, "--cot", help="The judge reasons before its verdict."),
    few_shot: Optional[Path] = typer.Option(None, "--few-shot", help="Worked examples (JSON or JSONL)."),
    reference: str = typer.Option("auto", help="none | given | self | auto (reference mode: given when every "
                                                "item has a 'reference', else self)."),
    combine: str = typer.Option("majority", help="Panel of several --judge: majority | mean."),
    max_retries: int = typer.Option(2, help="Generative verdicts: new samples for unreadable replies."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Generative / cot: tokens the judge may write."),
    max_prompt_tokens: Optional[int] = typer.Option(None, help="Cut answers from the middle so that each prompt "
                                                             "fits this many tokens (e.g. what a trained judge saw)."),
    seed: int = typer.Option(0),
    limit: Optional[int] = typer.Option(None, help="Judge only the first N items.", callback=at_least_one),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the records here as JSONL.",
                                         callback=output_file),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="Run folder (default: runs/judge-<input stem>).",
                                             callback=output_folder),
):
    """Judge pairs (A better, B better, tie) or grade answers, and print a summary."""
    from referee.cli.core import execute, validated
    from referee.io import write_jsonl
    from referee.protocols.judge import JudgeRunConfig, items_source

    source = items_source(pairs_path, answers_path, mode)
    settings = dict(mode=mode, template=template, verdict=verdict, swap=swap, calibration=calibration, cot=cot,
                    few_shot=str(few_shot) if few_shot else None, reference=reference, combine=combine,
                    max_retries=max_retries, max_new_tokens=max_new_tokens, max_prompt_tokens=max_prompt_tokens,
                    seed=seed)
    config = validated(JudgeRunConfig, {
        "judges": judge_specs, "pairs": str(pairs_path) if pairs_path and not answers_path else None,
        "answers": str(answers_path) if answers_path else None, "limit": limit, "seed": seed,
        "out": str(run_dir) if run_dir else None, "judge": settings})
    result, run, _ = execute(config, Path("runs") / f"judge-{source_name(source)}")
    records = run.read_records("judgments")
    if out is not None:
        write_jsonl(out, records)
    typer.echo(json.dumps(result.metrics, indent=2))
    progress.say(f"{len(records)} judgments; run folder: {run.folder}" + (f"; records: {out}" if out else ""))
