"""``referee judge``: run an LLM judge (or a panel) over pairs or answers, write records and metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from referee import progress
from referee.cli import app
from referee.errors import RefereeError

MODES = ("pairwise", "single", "reference")
DEFAULT_TEMPLATE = {"pairwise": "pairwise", "reference": "pairwise_reference", "single": "single_1to10"}


@app.command()
def judge(
    judge_specs: list[str] = typer.Option(["embedded"], "--judge", "-j",
                                          help="Judge model spec; repeat it for a panel of judges."),
    mode: str = typer.Option("pairwise", "--mode", help="pairwise | single (grade each answer) | reference "
                                                        "(pairwise, checked against a reference answer)."),
    pairs_path: Optional[Path] = typer.Option(None, "--pairs", help="Pairs: LLMBar, MT-Bench human, TRL "
                                                                  "preference or prompt/answer_a/answer_b (JSON or JSONL)."),
    answers_path: Optional[Path] = typer.Option(None, "--answers", help="single mode: JSONL with 'prompt', "
                                                                      "'response' (optional 'reference', 'id')."),
    swap: str = typer.Option("none", help="none | conservative | average | random."),
    calibration: str = typer.Option("none", help="none | batch | content-free: divide probability verdicts by the "
                                                 "judge's position prior (pairwise)."),
    verdict: str = typer.Option("probability", help="probability (read P(A), P(B), P(tie)) | generative (parse [[A]])."),
    template: Optional[str] = typer.Option(None, help="Template name (" + ", ".join(DEFAULT_TEMPLATE.values())
                                                     + ", additive_0to5) or the path of your own .txt."),
    cot: bool = typer.Option(False, "--cot", help="The judge reasons before its verdict."),
    few_shot: Optional[Path] = typer.Option(None, "--few-shot", help="Worked examples (JSON or JSONL)."),
    reference: str = typer.Option("auto", help="none | given | self | auto (reference mode: given when every "
                                                "item has a 'reference', else self)."),
    combine: str = typer.Option("majority", help="Panel of several --judge: majority | mean."),
    max_retries: int = typer.Option(2, help="Generative verdicts: new samples for unreadable replies."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Generative / cot: tokens the judge may write."),
    seed: int = typer.Option(0),
    limit: Optional[int] = typer.Option(None, help="Judge only the first N items."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the records here as JSONL."),
    run_dir: Optional[Path] = typer.Option(None, "--run", help="Run folder (default: runs/judge-<input stem>)."),
):
    """Judge pairs (A better, B better, tie) or grade answers, and print a summary."""
    from referee.io import write_jsonl
    from referee.runs import Run

    if mode not in MODES:
        raise RefereeError(f"--mode should be one of {', '.join(MODES)}, got {mode!r}")
    source = answers_path if mode == "single" and answers_path else pairs_path
    if source is None:
        raise RefereeError("give --pairs FILE" + (" or --answers FILE" if mode == "single" else ""))
    if answers_path and mode != "single":
        raise RefereeError("--answers is for --mode single; give pairs with --pairs")
    items = _load_items(source, grading_answers=answers_path is not None and mode == "single")
    if limit is not None:
        if limit < 1:
            raise RefereeError(f"--limit should be >= 1, got {limit}")
        items = items[:limit]
    ref_mode = _reference_mode(reference, mode, items)
    settings = dict(mode=mode, judges=judge_specs, input=str(source), swap=swap, calibration=calibration,
                    verdict=verdict,
                    template=template or DEFAULT_TEMPLATE[mode], cot=cot, few_shot=str(few_shot) if few_shot else None,
                    reference=ref_mode, combine=combine, max_retries=max_retries, max_new_tokens=max_new_tokens,
                    seed=seed, limit=limit)
    folder = run_dir or Path("runs") / f"judge-{source.stem}"
    with Run(folder, settings, seed=seed) as run:
        judges = [_make_judge(run.model(spec), settings) for spec in judge_specs]
        if len(judges) > 1:
            from referee.judges import Panel

            judge_obj = Panel(judges, combine=combine)
        else:
            judge_obj = judges[0]
        with run.stage("judge"):
            records, metrics = _judge_items(judge_obj, items, mode, answers_path is not None)
        run.write_records("judgments", records)
        run.save_metrics({"judge": metrics})
    if out is not None:
        write_jsonl(out, records)
    typer.echo(json.dumps(metrics, indent=2))
    progress.say(f"{len(records)} judgments; run folder: {run.folder}" + (f"; records: {out}" if out else ""))


def _load_items(path: Path, grading_answers: bool) -> list:
    if not grading_answers:
        from referee.tasks.pairs import load_pairs

        return load_pairs(path)
    from referee.chat import as_chat
    from referee.io import read_records, require

    items = []
    for pos, obj in read_records(path):
        where = f"{path}:{pos}"
        prompt = require(obj, "prompt", (str, list), where)
        response = require(obj, "response", str, where)
        ref = obj.get("reference")
        if ref is not None and not isinstance(ref, str):
            raise RefereeError(f"{where}: field 'reference' should be a string")
        items.append({"id": str(obj.get("id", pos)), "prompt": as_chat(prompt, f"{where}: field 'prompt'"),
                      "response": response, "reference": ref})
    if not items:
        raise RefereeError(f"{path}: no answers in the file")
    return items


def _reference_mode(reference: str, mode: str, items: list) -> str:
    if reference not in ("auto", "none", "given", "self"):
        raise RefereeError(f"--reference should be auto, none, given or self, got {reference!r}")
    if reference != "auto":
        return reference
    if mode != "reference":
        return "none"
    refs = [getattr(it, "reference", None) if not isinstance(it, dict) else it.get("reference") for it in items]
    return "given" if all(refs) else "self"


def _make_judge(model, s: dict):
    from referee.judges import GradingJudge, PairwiseJudge
    from referee.models.base import Sampling

    sampling = None
    if s["max_new_tokens"] is not None:
        sampling = Sampling(temperature=0.0, max_new_tokens=s["max_new_tokens"], seed=s["seed"])
    common = dict(template=s["template"], verdict=s["verdict"], cot=s["cot"], few_shot=s["few_shot"],
                  reference=s["reference"], max_retries=s["max_retries"], seed=s["seed"], sampling=sampling)
    if s["mode"] == "single":
        if s["swap"] != "none" or s["calibration"] != "none":
            raise RefereeError("--swap and --calibration are for pairwise judging; single-answer grading shows one "
                               "answer at a time")
        return GradingJudge(model, **common)
    return PairwiseJudge(model, swap=s["swap"], calibration=s["calibration"], **common)


def _judge_items(judge_obj, items: list, mode: str, answers: bool) -> tuple[list[dict], dict]:
    from referee.judges import summarize, summarize_grades

    if mode != "single":
        records = judge_obj.judge_pairs(items)
        return records, summarize(records)
    if answers:
        refs = [it["reference"] for it in items]
        grades = judge_obj.grade([it["prompt"] for it in items], [it["response"] for it in items],
                                 refs if any(refs) else None)
        records = [{"id": it["id"], **g} for it, g in zip(items, grades)]
        return records, summarize_grades(records)
    # grade both answers of every pair; the higher score wins (equal: tie; unreadable: invalid)
    prompts = [p.turns_a[:-1] if p.turns_a else p.question for p in items] + \
              [p.turns_b[:-1] if p.turns_b else p.question for p in items]
    answers_ = [p.answer_a for p in items] + [p.answer_b for p in items]
    refs = [p.reference for p in items] * 2
    grades = judge_obj.grade(prompts, answers_, refs if all(refs) else None)
    n = len(items)
    records = []
    for i, p in enumerate(items):
        ga, gb = grades[i], grades[n + i]
        sa, sb = _value(ga), _value(gb)
        winner = "invalid" if sa is None or sb is None else "A" if sa > sb else "B" if sb > sa else "tie"
        records.append({"id": p.id, "winner": winner, "p_a": None, "score_a": sa, "score_b": sb, "label": p.label,
                        "category": p.category, "truncated": bool(ga.get("truncated") or gb.get("truncated")),
                        "grades": [ga, gb], "orders": []})
    return records, {**summarize(records), "grades": summarize_grades(grades)}


def _value(grade: dict) -> float | None:
    if not grade["valid"]:
        return None
    return grade["expected_score"] if grade.get("expected_score") is not None else grade["score"]
