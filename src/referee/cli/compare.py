"""``referee compare``: paired differences between runs, item by item (``referee.reports.paired``)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import List, Optional

import typer

from referee.cli import app


@app.command("compare")
def compare(
    base: str = typer.Argument(..., help="The base side: a run folder (with --stage) or a records JSONL file."),
    others: List[str] = typer.Argument(..., help="Sides to compare with the base, each the same way."),
    metric: str = typer.Option(..., "--metric", "-m", help="The per-record number or flag to compare "
                               "(e.g. correct, caught)."),
    stage: Optional[str] = typer.Option(None, "--stage", help="The stage whose records a run folder gives."),
    other_stage: Optional[str] = typer.Option(None, "--other-stage", help="The stage of the other sides, "
                                              "when it differs (two arms of one run)."),
    key: str = typer.Option("id", "--key", help="Fields that match records across sides, comma-separated."),
    cluster: Optional[str] = typer.Option(None, "--cluster", help="Resample groups of records that share this "
                                          "field (a problem's samples) instead of single records."),
    where: List[str] = typer.Option([], "--where", help="Keep only records with FIELD=VALUE (repeat for several; "
                                    "e.g. role=helpful)."),
    missing: str = typer.Option("drop", "--missing", help="A record without the metric (an unreadable output): "
                                "drop the item from both sides, or count it as zero ('of all')."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the result here as JSON."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Also write the table here."),
):
    """Paired differences of a metric between runs (or stages), matched by item; refuses different items or
    splits. Prints a markdown table with the command that wrote it."""
    from referee.io import check_writable, write_json
    from referee.reports.paired import compare as paired, markdown

    for out in (json_out, markdown_out):
        if out is not None:
            check_writable(out)
    keys = tuple(k.strip() for k in key.split(",") if k.strip())
    bad = [w for w in where if "=" not in w or not w.split("=", 1)[0]]
    if bad:
        raise typer.BadParameter(f"{bad[0]!r}: write FIELD=VALUE", param_hint="--where")
    filters = dict(w.split("=", 1) for w in where)
    result = paired(base, list(others), metric, stage, other_stage, keys or ("id",), cluster, seed, filters, missing)
    options = [("--stage", stage), ("--other-stage", other_stage), ("--key", key if keys != ("id",) else None),
               ("--cluster", cluster), *(("--where", w) for w in where),
               ("--missing", missing if missing != "drop" else None), ("--seed", str(seed) if seed else None)]
    words = ["referee", "compare", base, *others, "--metric", metric, *(w for o, v in options if v for w in (o, v))]
    table = markdown(result, " ".join(shlex.quote(w) for w in words))
    if json_out:
        write_json(json_out, result)
    if markdown_out:
        markdown_out.write_text(table, encoding="utf-8")
    print(table, end="")
