"""Reading and writing JSONL, with errors that name the file, the line and the field."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from referee.errors import RefereeError


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line raises naming file and line."""
    path = Path(path)
    if not path.exists():
        raise RefereeError(f"{path}: no such file")
    with _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise RefereeError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise RefereeError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_records(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Read a JSON array file or a JSONL file (one object per line), yielding (position, object).

    Positions are line numbers for JSONL and 1-based item indices for a JSON array, so error messages
    can point at the record either way.
    """
    path = Path(path)
    if not path.exists():
        raise RefereeError(f"{path}: no such file")
    with _open_text(path) as f:
        head = f.read(4096).lstrip()[:1]
    if head == "[":
        with _open_text(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise RefereeError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        for i, obj in enumerate(data, start=1):
            if not isinstance(obj, dict):
                raise RefereeError(f"{path}: item {i}: expected a JSON object, got {type(obj).__name__}")
            yield i, obj
    else:
        yield from read_jsonl(path)


def require(obj: dict, field: str, kind: type | tuple[type, ...], where: str) -> Any:
    """Return ``obj[field]`` if present and of the right type, else raise naming ``where`` and the field."""
    if field not in obj:
        raise RefereeError(f"{where}: missing field '{field}'")
    value = obj[field]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RefereeError(f"{where}: field '{field}' should be {names}, got {type(value).__name__}")
    return value


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records atomically (temp file then rename), so a killed run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def write_json(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
    os.replace(tmp, path)
