"""Reading and writing JSONL, with errors that name the file, the line and the field (bad JSON, bytes that
are not UTF-8, a folder where a file belongs). Every reader takes ``data:SET/FILE`` for a file of the public
data sets (``referee.paths``); ``read_records`` takes data sets too (``referee.io.tables``)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from referee.errors import RefereeError
from referee.paths import data_path


def check_file(path: Path, kind: str = "file") -> None:
    """A path the user gave must name a file that exists; say plainly when it does not, or is a folder."""
    if not path.exists():
        raise RefereeError(f"{path}: no such {kind}")
    if path.is_dir():
        raise RefereeError(f"{path}: is a folder; expected a {kind}")


def check_writable(path: Path, kind: str = "output file") -> None:
    """Before the work, not after it: a file (or, with a ``kind`` naming a folder, a folder) that a command
    will write must not be the other kind of thing, and the nearest existing folder above it must take new
    files (tried, not guessed from permission bits, which root ignores and read-only mounts defeat)."""
    path = Path(path)
    folder_wanted = "folder" in kind
    if path.is_dir() and not folder_wanted:
        raise RefereeError(f"{path}: is a folder; expected a {kind} to write")
    if path.exists() and not path.is_dir() and folder_wanted:
        raise RefereeError(f"{path}: is a file; expected a {kind} to write")
    above = path if path.is_dir() else path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise RefereeError(f"{path}: cannot write the {kind} here: {above} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=above):
            pass
    except OSError as e:
        raise RefereeError(f"{path}: cannot write the {kind} here ({e.strerror or e} in {above})") from None


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in blocks (GGUF weights are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_text(path: str | os.PathLike, kind: str = "file") -> str:
    """A whole UTF-8 text file; a missing file, a folder or other bytes raise naming the file."""
    path = data_path(path)
    check_file(path, kind)
    with _decoding(path):
        return path.read_text(encoding="utf-8")


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


@contextmanager
def _decoding(path: Path):
    """Turn a file's undecodable bytes (not UTF-8, or a .gz that is not gzip) into an error naming it."""
    try:
        yield
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise RefereeError(f"{path}: not a readable gzip file ({e})") from None


def _not_utf8(path: Path) -> RefereeError:
    """The error for a file that is not UTF-8, at its first bad line: a multi-byte character never spans a
    newline, so decoding line by line finds the exact place."""
    with _open_bytes(path) as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                utf16 = "; it looks like UTF-16" if lineno == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
                return RefereeError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                                    f"{e.start + 1}{utf16}); save the file as UTF-8")
    return RefereeError(f"{path}: not UTF-8 text; save the file as UTF-8")


# A \uD800-\uDFFF escape: JSON allows it alone, but such a string cannot be written as UTF-8 again.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def parse_json(text: str, where: str, whole_file: bool = False) -> Any:
    """One JSON text (a JSONL line, or with ``whole_file`` a file, whose bad line is named); what Python's
    parser rejects or cannot hold (bad syntax, nesting deeper than its recursion limit, an integer of
    thousands of digits, a lone surrogate) raises naming ``where``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        line = f":{e.lineno}" if whole_file else ""
        msg = e.msg.removesuffix(" at")  # "Invalid control character at": the column follows
        raise RefereeError(f"{where}{line}: not valid JSON ({msg} at column {e.colno})") from None
    except RecursionError:
        raise RefereeError(f"{where}: JSON nested too deeply to read") from None
    except ValueError as e:  # an integer longer than Python converts (4300 digits by default)
        raise RefereeError(f"{where}: unreadable JSON value ({e})") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise RefereeError(f"{where}: a \\u escape names half a UTF-16 surrogate pair (a lone surrogate), "
                           f"which is not text")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether any string (key or value) holds a character UTF-8 cannot encode; iterative, as nesting
    may be deep."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def read_json_lines(path: str | os.PathLike) -> Iterator[tuple[int, object]]:
    """Yield (line number, value) for each non-blank line, whatever JSON value it holds; a bad line raises
    naming file and line."""
    path = data_path(path)
    check_file(path)
    with _decoding(path), _open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            yield lineno, parse_json(line, f"{path}:{lineno}")


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line raises naming file and line."""
    for lineno, obj in read_json_lines(path):
        if not isinstance(obj, dict):
            raise RefereeError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def read_records(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Read records, yielding (position, object), from a JSON array file, a JSONL file (one object per
    line), a Parquet or Arrow file, or a saved Hugging Face dataset (``hf-disk:FOLDER[:SPLIT]``); any of them
    with a column mapping (``SOURCE?field=column&...``, see ``referee.io.tables``).

    Positions are line numbers for JSONL, 1-based item indices for a JSON array and 1-based rows for a table
    (a ``Row``, which reads ``PATH: row 5`` in a loader's message), so error messages can point at the
    record either way.
    """
    from referee.io import tables

    source = tables.parse_source(path)
    if source.is_table:
        yield from tables.read_table(source)
    elif source.mapping:
        yield from tables.map_records(source, list(_read_json_records(source.location)))
    else:
        yield from _read_json_records(source.location)


def _read_json_records(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    path = data_path(path)
    check_file(path)
    with _decoding(path), _open_text(path) as f:
        head = f.read(4096).lstrip()[:1]
    if head == "[":
        with _decoding(path), _open_text(path) as f:
            data = parse_json(f.read(), str(path), whole_file=True)
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


def optional(obj: dict, field: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``obj[field]`` when given (None when absent or null), else as ``require``: of the right type or an
    error naming ``where`` and the field."""
    return None if obj.get(field) is None else require(obj, field, kind, where)


@contextmanager
def atomic_text(path: str | os.PathLike):
    """Write a text file atomically: a temp file of a unique name beside it, flushed to disk, then renamed
    over it. A killed run leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would make run folders unreadable to other users
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    n = 0
    with atomic_text(path) as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_text(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
