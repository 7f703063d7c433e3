"""``referee w2s``: run a weak-to-strong config and print its PGR table."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from referee.cli import app
from referee.errors import RefereeError

w2s_app = typer.Typer(no_args_is_help=True, help="Weak-to-strong generalisation: PGR tables and runs.")
app.add_typer(w2s_app, name="w2s")


@w2s_app.command("run")
def w2s_run(config_path: Path = typer.Argument(..., help="A weak_to_strong config (YAML)."),
            table: bool = typer.Option(True, help="Print the PGR table when done.")):
    """Run a weak-to-strong config (same as `referee run CONFIG`); run it again to resume."""
    from referee import progress
    from referee.cli.core import execute, print_result
    from referee.config import validate
    from referee.protocols.weak_to_strong import W2SConfig
    from referee.config import load_config_file

    data = load_config_file(config_path)
    if data.setdefault("protocol", "weak_to_strong") != "weak_to_strong":
        raise RefereeError(f"{config_path}: setting 'protocol' is {data['protocol']!r}; use `referee run` for it")
    result, run, figures = execute(validate(W2SConfig, data, str(config_path)), Path("runs") / config_path.stem)
    if table:
        print_result(result, run, figures)
    else:
        progress.say(f"run folder: {run.folder}")


@w2s_app.command("table")
def w2s_table(run_dir: Path = typer.Argument(..., help="The run folder of a weak_to_strong run."),
              as_json: bool = typer.Option(False, "--json", help="Rows as JSON instead of Markdown.")):
    """Print the PGR table of a finished weak-to-strong run (Markdown, for the results page)."""
    from referee.protocols.weak_to_strong import headline_rows
    from referee.reports.weak_to_strong import markdown_table, read_metrics

    metrics = read_metrics(run_dir)
    if as_json:
        typer.echo(json.dumps({"rows": headline_rows(metrics), "summary": metrics["summary"]}, indent=2))
    else:
        typer.echo(markdown_table(metrics))
