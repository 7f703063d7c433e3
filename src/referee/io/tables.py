"""Data sets as records: a folder written by Hugging Face ``datasets``' ``save_to_disk``
(``hf-disk:FOLDER`` or ``hf-disk:FOLDER:SPLIT``), a Parquet or Arrow file, and a column mapping on any source
(``SOURCE?field=column&field=column``). Rows come out as plain JSON-like dicts, so every loader checks them
exactly as it checks a JSONL line. pyarrow and datasets are imported only when such a source is read or
written: a command's start-up never pays for them, and referee never downloads (``load_dataset`` is the
user's, then ``save_to_disk``)."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import unquote

from referee.errors import RefereeError
from referee.paths import data_path, is_data_path

HF_DISK = "hf-disk:"
TABLE_SUFFIXES = (".parquet", ".arrow")
BATCH = 1024
SPLIT_NAME = re.compile(r"[\w.-]+")  # what datasets allows in a split's name


class Row(int):
    """A 1-based row number. Loaders name a record as ``f"{path}:{pos}"``; a row formats there as `` row N``,
    so an error reads ``PATH: row 5: missing field 'prompt'``, while ``str``, ids and JSON see the number."""

    def __format__(self, spec: str) -> str:
        return f" row {int(self)}" if not spec else format(int(self), spec)


@dataclass(frozen=True)
class Source:
    """A records source as written (``text``, which errors name) and what it stands for."""

    text: str
    location: str  # the file, or the saved dataset's folder
    split: str | None = None
    mapping: tuple[tuple[str, str], ...] = ()  # (the loader's field, the column it is read from)
    hf_disk: bool = False

    @property
    def is_table(self) -> bool:
        return self.hf_disk or Path(self.location).suffix.lower() in TABLE_SUFFIXES


def parse_source(spec: str | os.PathLike) -> Source:
    """Read a source spec. A name that exists as given is a plain path even with a ``?`` in it; otherwise the
    first ``?`` after an existing path starts the mapping (with nothing there, the first ``?`` followed by a
    ``=``, so that the missing path is what the error names)."""
    text = os.fspath(spec)
    base, query = _split_query(text)
    mapping = _mapping(query, text) if query is not None else ()
    if base.startswith(HF_DISK):
        folder, split = _hf_location(base[len(HF_DISK):], text)
        return Source(text, folder, split, mapping, hf_disk=True)
    return Source(text, base, None, mapping)


def source_name(spec: str | os.PathLike) -> str:
    """A short name for a default run folder or a stage: the file's stem, or the dataset folder's name and
    split (no ``:`` or ``?``, which some file systems refuse)."""
    try:
        source = parse_source(spec)
    except RefereeError:  # a folder not there yet: its error comes when it is read
        return re.sub(r"[:?]", "-", Path(os.fspath(spec)).stem)
    if source.hf_disk:
        name = Path(source.location).name or "dataset"
        return f"{name}-{source.split}" if source.split else name
    return Path(source.location).stem


def _split_query(text: str) -> tuple[str, str | None]:
    if "?" not in text or _exists(text):
        return text, None
    marks = [i for i, c in enumerate(text) if c == "?"]
    cut = next((i for i in marks if _exists(text[:i])), None)
    if cut is None:  # nothing there: a mapping if it looks like one, else a missing name with a '?'
        cut = marks[0]
        if "=" not in text[cut + 1:]:
            return text, None
    return text[:cut], text[cut + 1:]


def _exists(base: str) -> bool:
    try:
        if base.startswith(HF_DISK):
            return _hf_folder_split(base[len(HF_DISK):]) is not None
        if is_data_path(base):
            return data_path(base).exists()
        return Path(base).exists()
    except (RefereeError, OSError, ValueError):  # a data: path not there, a name too long or with a NUL
        return False


def _mapping(query: str, text: str) -> tuple[tuple[str, str], ...]:
    """``field=column&field=column``; ``%XX`` escapes a character of a column name (``%26`` for ``&``)."""
    pairs, fields = [], set()
    for part in query.split("&"):
        field, eq, column = part.partition("=")
        field, column = unquote(field), unquote(column)
        if not eq or not field or not column:
            raise RefereeError(f"{text}: column mapping {part!r} should be FIELD=COLUMN "
                               f"(e.g. data.parquet?prompt=question&chosen=good)")
        if field in fields:
            raise RefereeError(f"{text}: field '{field}' is mapped twice")
        fields.add(field)
        pairs.append((field, column))
    return tuple(pairs)


def _hf_location(rest: str, text: str) -> tuple[str, str | None]:
    """``FOLDER`` or ``FOLDER:SPLIT``: the whole is a folder when one exists by that name (a Windows drive's
    ``C:`` or a folder with a colon stays whole); else the last ``:`` names the split."""
    if not rest:
        raise RefereeError(f"{text}: expected hf-disk:FOLDER or hf-disk:FOLDER:SPLIT")
    found = _hf_folder_split(rest)
    if found is None:
        raise RefereeError(f"{text}: no folder at {rest}; expected a folder written by datasets' save_to_disk")
    return found


def _hf_folder_split(rest: str) -> tuple[str, str | None] | None:
    """The existing folder and the split ``rest`` names, or None when no folder is there."""
    if Path(rest).is_dir():
        return rest, None
    head, _, tail = rest.rpartition(":")
    if head and SPLIT_NAME.fullmatch(tail) and Path(head).is_dir():
        return head, tail
    return None


def read_table(source: Source) -> Iterator[tuple[Row, dict]]:
    """(row, record) for each row of a saved dataset, Parquet or Arrow file, mapped and made plain."""
    columns, batches = _open(source)
    missing = [c for _, c in source.mapping if c not in columns]
    if missing:
        raise RefereeError(f"{source.text}: no column '{missing[0]}' in {source.location} "
                           f"(columns: {', '.join(columns)})")
    n = 0
    for batch in batches:
        for values in batch.to_pylist():
            n += 1
            yield Row(n), remap(plain_row(values, f"{source.text}:{Row(n)}"), source.mapping)


def _open(source: Source) -> tuple[list[str], Iterable]:
    """The column names and the record batches of a table source; unreadable files raise naming them."""
    import pyarrow as pa

    if source.hf_disk:
        return _open_saved(source)
    path = data_path(source.location)
    from referee.io import check_file

    check_file(path)
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            f = pq.ParquetFile(path)
            return f.schema_arrow.names, f.iter_batches(batch_size=BATCH)
        table = _read_arrow(path)
        return table.column_names, table.to_batches(max_chunksize=BATCH)
    except (pa.ArrowException, OSError) as e:
        kind = "Parquet" if path.suffix.lower() == ".parquet" else "Arrow"
        raise RefereeError(f"{source.text}: not a readable {kind} file ({e})") from None


def _read_arrow(path: Path):
    """An Arrow IPC file (Feather v2) or stream (what ``datasets`` writes), memory-mapped."""
    import pyarrow as pa

    try:
        return pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    except pa.ArrowInvalid:
        return pa.ipc.open_stream(pa.memory_map(str(path))).read_all()


def _open_saved(source: Source) -> tuple[list[str], Iterable]:
    """A folder of ``save_to_disk``: a Dataset, or a DatasetDict whose split the spec must name."""
    import datasets

    try:
        ds = datasets.load_from_disk(source.location)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise RefereeError(f"{source.text}: not a dataset saved with save_to_disk ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        splits = ", ".join(ds)
        if source.split is None:
            raise RefereeError(f"{source.text}: the dataset has splits ({splits}); name one, e.g. "
                               f"hf-disk:{source.location}:{next(iter(ds))}")
        if source.split not in ds:
            raise RefereeError(f"{source.text}: no split '{source.split}' (splits: {splits})")
        ds = ds[source.split]
    elif source.split is not None:
        raise RefereeError(f"{source.text}: the dataset at {source.location} has no splits; "
                           f"drop ':{source.split}'")
    return ds.column_names, ds.with_format("arrow").iter(batch_size=BATCH)


def plain_row(values: dict, where: str) -> dict:
    """A row as JSON would give it: plain lists, dicts, str, int, float, bool and None. A null cell is a
    JSON null, as ``Dataset.to_json`` writes it, so a table reads exactly as its rows in JSONL."""
    out = {}
    for column, value in values.items():
        try:
            out[column] = _plain(value)
        except TypeError as e:
            raise RefereeError(f"{where}: column '{column}' holds {e}, which has no JSON form; "
                               f"drop or convert the column") from None
    return out


def _plain(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def remap(obj: dict, mapping: tuple[tuple[str, str], ...]) -> dict:
    """Each field read from its column (the column's own name no longer shows); a field whose column a
    JSON record lacks is absent too."""
    if not mapping:
        return obj
    columns = {c for _, c in mapping}
    out = {k: v for k, v in obj.items() if k not in columns}
    for field, column in mapping:
        out.pop(field, None)
        if column in obj:
            out[field] = obj[column]
    return out


def map_records(source: Source, records: list[tuple[int, dict]]) -> Iterator[tuple[int, dict]]:
    """The mapping over a JSON or JSONL file's records: a column that no record has is refused."""
    for _, column in source.mapping:
        if not any(column in obj for _, obj in records):
            raise RefereeError(f"{source.text}: no record of {source.location} has a field '{column}'")
    for pos, obj in records:
        yield pos, remap(obj, source.mapping)


def source_sha256(spec: str | os.PathLike) -> str:
    """What a stage key needs of a records source: a file's SHA-256 (as ``io.file_sha256``); with a mapping,
    or for a saved dataset (each file of its folder), a digest of all of it."""
    from referee.io import check_file, file_sha256

    source = parse_source(spec)
    root = Path(source.location) if source.hf_disk else data_path(source.location)
    if not source.hf_disk:
        check_file(root)
        if not source.mapping:
            return file_sha256(root)
    h = hashlib.sha256(repr((source.split, source.mapping)).encode())
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for p in files:
        h.update(f"{p.relative_to(root).as_posix() if root.is_dir() else p.name}\t{file_sha256(p)}\n".encode())
    return h.hexdigest()


def write_records(records: list[dict], out: str, force: bool = False, what: str = "records") -> str:
    """Write records as a Parquet file (``OUT.parquet``), a saved dataset (``hf-disk:FOLDER``) or JSONL,
    atomically; an existing output is replaced only with ``force`` (a folder only if it holds a saved
    dataset, so a mistyped ``--to`` cannot empty an unrelated folder). Returns the path written."""
    from referee.io import check_writable, write_jsonl

    if not records:
        raise RefereeError(f"{what}: no records to export")
    hf_disk = out.startswith(HF_DISK)
    target = Path(out[len(HF_DISK):] if hf_disk else out)
    suffix = target.suffix.lower()
    if not hf_disk and suffix not in (".parquet", ".jsonl"):
        raise RefereeError(f"--to {out}: expected OUT.parquet, OUT.jsonl or hf-disk:FOLDER")
    check_writable(target, "output folder" if hf_disk else "output file")
    _may_replace(target, out, force)
    if suffix == ".jsonl":
        write_jsonl(target, records)
        return str(target)
    table = _arrow_table(records, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        made = tmp / "out"
        if hf_disk:
            _save_dataset(table, made)
        else:
            _save_parquet(table, made, what)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(made, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _may_replace(target: Path, out: str, force: bool) -> None:
    if not target.exists():
        return
    if not force:
        raise RefereeError(f"{out}: already exists; give --force to replace it")
    saved = (target / "dataset_dict.json").is_file() or all((target / f).is_file()  # (a run has a state.json)
                                                          for f in ("state.json", "dataset_info.json"))
    if target.is_dir() and not saved and any(target.iterdir()):
        raise RefereeError(f"{out}: a folder that holds no saved dataset; not replacing it, even with --force")


def _arrow_table(records: list[dict], what: str):
    """One Arrow table of the records; a field whose values no one Arrow type holds is named."""
    import pyarrow as pa

    try:
        return pa.Table.from_pylist(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        fields = dict.fromkeys(k for r in records for k in r)
        for name in fields:
            try:
                pa.array([r.get(name) for r in records])
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                kinds = sorted({type(r[name]).__name__ for r in records if r.get(name) is not None})
                raise RefereeError(f"{what}: field '{name}' holds values of different kinds ({', '.join(kinds)}), "
                                   f"which no one table column can hold") from None
        raise RefereeError(f"{what}: cannot be a table ({e})") from None


def _save_parquet(table, path: Path, what: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.write_table(table, path)
    except pa.ArrowNotImplementedError as e:  # e.g. a field that is always an empty object
        raise RefereeError(f"{what}: Parquet cannot hold these records ({e}); export to hf-disk:FOLDER "
                           f"instead") from None


def _save_dataset(table, folder: Path) -> None:
    import datasets
    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    shown = is_progress_bar_enabled()
    disable_progress_bar()
    try:
        datasets.Dataset(table).save_to_disk(str(folder))
    finally:
        if shown:
            enable_progress_bar()
