"""``referee data list|get|verify``: the public data sets the configs and benchmarks read, where they are
(``data:SET/FILE`` in a config stands for a file under the data root), and how to get them; ``referee data
export``: records (a file, a data set or a run's stage) written as a Parquet file or a saved dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from referee.cli import app
from referee.errors import RefereeError

data_app = typer.Typer(no_args_is_help=True, help="The public data sets referee reads (list, get, verify); "
                     "records as data sets (export).")
app.add_typer(data_app, name="data")

CATALOGUE_HELP = "Another list of sets (YAML, the shape of referee's own data/public_sets.yaml)."


def _sets(names: list[str], catalogue_file: Optional[Path]):
    from referee.public_data import catalogue, choose

    return choose(names, catalogue(catalogue_file))


def _root() -> tuple[Path, str]:
    from referee.paths import data_root

    return data_root()


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{n / 1e3:.0f} kB"


@data_app.command("list")
def list_sets(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per set, with every file."),
    catalogue_file: Optional[Path] = typer.Option(None, "--catalogue", help=CATALOGUE_HELP),
):
    """Every public set referee's configs, benchmarks and tests use: source, licence, size, what reads it."""
    from dataclasses import asdict

    from referee.public_data import check

    root, why = _root()
    sets = _sets([], catalogue_file)
    if as_json:
        for s in sets:
            states = {s.where(f): state for f, state in check(s, root)}
            print(json.dumps({**asdict(s), "present": states}))
        return
    print(f"data root: {root} ({why}); configs name these files as data:SET/FILE")
    for s in sets:
        states = [state for _, state in check(s, root)]
        here = "present" if all(x == "ok" for x in states) else \
            "missing" if all(x == "missing" for x in states) else "incomplete or changed"
        print(f"\n{s.name}: {s.title} [{here}]")
        print(f"  source   {s.homepage} ({s.licence})")
        print("  files    " + ", ".join(f"{s.where(f)} ({f.size} files)" if f.is_folder else
                                       f"{s.where(f)} ({_size(f.size)})" for f in s.files))
        print(f"  read by  {s.read_by}")


@data_app.command("get")
def get(
    names: List[str] = typer.Argument(None, help="Sets to get (default: all of them)."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Fetch https://HOST/PATH from MIRROR/HOST/PATH "
                                         "(default: $REFEREE_DATA_MIRROR, else the original source)."),
    force: bool = typer.Option(False, "--force", help="Fetch again even the files that are present and match."),
    catalogue_file: Optional[Path] = typer.Option(None, "--catalogue", help=CATALOGUE_HELP),
):
    """Download sets from their original public sources into the data root, converted to the files referee
    reads and checked against their listed SHA-256 (a mismatch writes nothing)."""
    from referee.public_data import get as fetch

    root, why = _root()
    for s in _sets(names or [], catalogue_file):
        written = fetch(s, root, mirror=mirror, force=force)
        print(f"{s.name}: " + (f"wrote {', '.join(written)}" if written else "already present") + f" ({root})")


@data_app.command("verify")
def verify(
    names: List[str] = typer.Argument(None, help="Sets to check (default: all of them)."),
    catalogue_file: Optional[Path] = typer.Option(None, "--catalogue", help=CATALOGUE_HELP),
):
    """Check the files present under the data root against their listed sizes and SHA-256."""
    from referee.public_data import check

    root, why = _root()
    bad = []
    for s in _sets(names or [], catalogue_file):
        for f, state in check(s, root):
            print(f"{state:>8}  {s.where(f)}" if state in ("ok", "missing") else f"   wrong  {s.where(f)}: {state}")
            if state != "ok":
                bad.append(s.where(f))
    if bad:
        raise RefereeError(f"{len(bad)} file(s) missing or changed under {root} ({why}); "
                           f"`referee data get` fetches them")


@data_app.command("export")
def export(
    records: str = typer.Argument(..., help="Records: JSON, JSONL, Parquet, Arrow, hf-disk:FOLDER[:SPLIT] (with "
                                            "?field=column mapping if wanted), or a run folder with --stage."),
    to: str = typer.Option(..., "--to", help="OUT.parquet, hf-disk:FOLDER (datasets' save_to_disk) or OUT.jsonl."),
    stage: Optional[str] = typer.Option(None, "--stage", help="The stage of the run folder RECORDS to export "
                                                               "(its records/STAGE.jsonl)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
):
    """Write records (verdicts, preference pairs, samples: any records) as a data set for the Hugging Face
    tools; `datasets.load_from_disk` or `load_dataset("parquet", ...)` reads them back."""
    from referee.io import read_records
    from referee.io.tables import write_records

    source = _stage_file(records, stage)
    rows = [obj for _, obj in read_records(source)]
    written = write_records(rows, to, force=force, what=source)
    print(f"{len(rows)} records from {source} -> {to if to.startswith('hf-disk:') else written}")


def _stage_file(records: str, stage: Optional[str]) -> str:
    """RECORDS itself, or with --stage the run folder's records/STAGE.jsonl (the stages there named when
    it is not one of them)."""
    folder = Path(records)
    is_run = not records.startswith("hf-disk:") and folder.is_dir()
    if stage is None:
        if is_run:
            raise RefereeError(f"{records}: a folder; name the stage to export with --stage "
                               f"({_stages(folder)})")
        return records
    if not is_run:
        raise RefereeError(f"--stage {stage}: RECORDS should then be a run folder; {records} is not a folder")
    path = folder / "records" / f"{stage}.jsonl"
    if not path.is_file():
        raise RefereeError(f"{records}: no stage '{stage}' with records ({_stages(folder)})")
    return str(path)


def _stages(folder: Path) -> str:
    names = sorted(p.name.removesuffix(".jsonl") for p in (folder / "records").glob("*.jsonl"))
    return "stages: " + ", ".join(names) if names else "it has no records/STAGE.jsonl"
