"""``referee debate export``: a debate or consultancy run's best-of-N turns as training data (TRL formats)."""

from __future__ import annotations

from pathlib import Path

import typer

from referee import progress
from referee.cli import app
from referee.cli.options import output_file

debate_app = typer.Typer(no_args_is_help=True, help="Debate and consultancy runs: export their turns.")
app.add_typer(debate_app, name="debate")


@debate_app.command("export")
def export(run_dir: Path = typer.Argument(..., help="A debate or consultancy run folder (run with best_of >= 2)."),
           out: Path = typer.Option(..., "--out", "-o", help="JSONL to write.", callback=output_file),
           kind: str = typer.Option("preference", help="preference (best over worst candidate per turn: "
                                                       "referee train dpo) | reward (every candidate with the "
                                                       "judge's logit of its own answer minus the other's)."),
           stage: str = typer.Option("transcripts", help="transcripts (the evaluated split) | transcripts-train "
                                                         "(the judges' training items).")):
    """Every best-of-N turn's candidates with the judge's scores, as TRL rows."""
    from referee import protocols
    from referee.config import validate
    from referee.errors import RefereeError
    from referee.io import read_jsonl, write_jsonl
    from referee.protocols.debate import exported_turns
    from referee.config import load_config_file

    if kind not in ("preference", "reward"):
        raise RefereeError(f"--kind should be preference or reward, got {kind!r}")
    config_path = run_dir / "config.yaml"
    data = load_config_file(config_path)
    name = str(data.get("protocol"))
    if name not in ("debate", "consultancy"):
        raise RefereeError(f"{config_path}: a debate or consultancy run is needed, this is {name!r}")
    cfg = validate(protocols.get(name).config, data, str(config_path))
    records_path = run_dir / "records" / f"{stage}.jsonl"
    records = [obj for _, obj in read_jsonl(records_path)]
    rows, skipped = exported_turns(name, cfg, records, kind, str(records_path))
    note = (f" ({skipped['tied']} turns with equal scores and {skipped['unscored']} unscored left out)"
            if skipped else "")
    write_jsonl(out, rows)
    progress.say(f"{len(rows)} {kind} rows from {len(records)} transcripts{note}: {out}")
