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
            table: bool = typer.Option(True, help="Print the PGR table as Markdown when done.")):
    """Run a weak-to-strong config (same as `referee run CONFIG`); run it again to resume."""
    from referee import progress
    from referee.config import validate
    from referee.runs import Run, load_config_file
    from referee.w2s.protocol import W2SConfig, markdown_table, run_weak_to_strong

    data = load_config_file(config_path)
    if data.get("protocol", "weak_to_strong") != "weak_to_strong":
        raise RefereeError(f"{config_path}: setting 'protocol' is {data['protocol']!r}; use `referee run` for it")
    data.setdefault("protocol", "weak_to_strong")
    config = validate(W2SConfig, data, str(config_path))
    folder = config.out or str(Path("runs") / config_path.stem)
    with Run(folder, config, seed=config.seed) as run:
        run_weak_to_strong(config, run)
    if table:
        typer.echo(markdown_table(_metrics(run.folder)))
    progress.say(f"run folder: {run.folder}")


@w2s_app.command("table")
def w2s_table(run_dir: Path = typer.Argument(..., help="The run folder of a weak_to_strong run."),
              as_json: bool = typer.Option(False, "--json", help="Rows as JSON instead of Markdown.")):
    """Print the PGR table of a finished weak-to-strong run."""
    from referee.w2s.protocol import markdown_table, table_rows

    metrics = _metrics(run_dir)
    if as_json:
        typer.echo(json.dumps({"rows": table_rows(metrics), "summary": metrics["summary"]}, indent=2))
    else:
        typer.echo(markdown_table(metrics))


def _metrics(run_dir: Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise RefereeError(f"{run_dir}: no metrics.json (is it a finished run folder?)")
    data = json.loads(path.read_text())
    if "weak_to_strong" not in data:
        raise RefereeError(f"{path}: no weak_to_strong results in it")
    return data["weak_to_strong"]
