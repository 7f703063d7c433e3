"""The public data sets that referee's configs, benchmarks and tests read: where each comes from, its
licence, what its files hash to, and how to fetch it and turn it into the files referee's loaders read.

The list is ``data/public_sets.yaml`` inside the package. Each file of a set names one or more places to
get it from (``from``), tried in order: a URL whose bytes are the file, or a URL plus a named conversion
(``convert``, below) that turns the download into the file. A folder (QuixBugs) is checked by a hash over
its files' names and hashes. ``get`` writes into the data root
(``referee.paths.data_root``): every file goes through a temporary file and is renamed into place only
after its size and SHA-256 match the list, so a failed, cut or altered download leaves nothing behind and
never replaces a good copy. ``mirror`` (or ``$REFEREE_DATA_MIRROR``) fetches ``https://HOST/PATH`` from
``MIRROR/HOST/PATH`` instead: for machines behind a proxy cache, and for the tests, which serve the files
on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import yaml

from referee.errors import RefereeError
from referee.io import file_sha256, read_text

MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024  # far above any set here; a runaway response stops there
TIMEOUT_S = 60


@dataclass(frozen=True)
class Source:
    url: str
    convert: str | None = None  # None: the download is the file


@dataclass(frozen=True)
class DataFile:
    path: str  # inside the set's folder; for a folder, the folder
    sha256: str  # of the file's bytes; for a folder, of its listing (``tree_digest``)
    size: int  # bytes; for a folder, the number of files
    sources: tuple[Source, ...]  # tried in order until one gives the listed file
    is_folder: bool = False


@dataclass(frozen=True)
class DataSet:
    name: str
    title: str
    homepage: str
    licence: str
    read_by: str  # which loader and which configs or benchmarks use it
    files: tuple[DataFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files if not f.is_folder)

    def where(self, f: DataFile) -> str:
        """``SET/FILE`` (``SET/`` for a set that is one folder): what a config writes after ``data:``."""
        return f"{self.name}/" if f.path in (".", "") else f"{self.name}/{f.path}"


def catalogue(path: str | os.PathLike | None = None) -> dict[str, DataSet]:
    """The sets, by name: the shipped list, or the YAML file at ``path`` (the same shape); a list of another
    shape raises naming the file and the set."""
    where = str(path) if path else "referee/data/public_sets.yaml"
    text = read_text(path, "list of data sets") if path else \
        (resources.files("referee") / "data" / "public_sets.yaml").read_text(encoding="utf-8")
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RefereeError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(entries, list):
        raise RefereeError(f"{where}: expected a list of data sets")
    sets = {}
    for i, entry in enumerate(entries, start=1):
        try:
            files = tuple(DataFile(**{k: v for k, v in f.items() if k != "from"},
                                   sources=tuple(Source(**x) for x in f["from"])) for f in entry["files"])
            sets[entry["name"]] = DataSet(**{k: v for k, v in entry.items() if k != "files"}, files=files)
        except (TypeError, KeyError, AttributeError) as e:
            raise RefereeError(f"{where}: set {i}: not in the shape of a data set ({type(e).__name__}: {e})") from None
    return sets


def choose(names: list[str], sets: dict[str, DataSet]) -> list[DataSet]:
    """The named sets (all when none is named); an unknown name raises listing the known ones."""
    unknown = [n for n in names if n not in sets]
    if unknown:
        raise RefereeError(f"unknown data set {', '.join(unknown)}; known: {', '.join(sets)}")
    return [sets[n] for n in names] if names else list(sets.values())


# ---- checking what is there -------------------------------------------------------------------------------
def tree_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def tree_digest(folder: Path) -> str:
    """A folder's hash: SHA-256 over one 'relative/path<TAB>sha256' line per file, sorted by path."""
    lines = [f"{p.relative_to(folder).as_posix()}\t{file_sha256(p)}\n" for p in tree_files(folder)]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def check(dataset: DataSet, root: Path) -> list[tuple[DataFile, str]]:
    """Each file of the set with its state under ``root``: 'ok', 'missing', or what differs."""
    states = []
    for f in dataset.files:
        target = root / dataset.name / f.path
        if not target.exists():
            states.append((f, "missing"))
        elif f.is_folder:
            count = len(tree_files(target))
            ok = count == f.size and tree_digest(target) == f.sha256
            states.append((f, "ok" if ok else f"differs ({count} files; expected {f.size} with the listed hash)"))
        else:
            size = target.stat().st_size
            ok = size == f.size and file_sha256(target) == f.sha256
            states.append((f, "ok" if ok else f"differs ({size} bytes; expected {f.size} with the listed hash)"))
    return states


# ---- fetching ---------------------------------------------------------------------------------------------
def mirrored(url: str, mirror: str | None) -> str:
    """``url``, or its mirror copy: https://HOST/PATH -> MIRROR/HOST/PATH."""
    mirror = mirror or os.environ.get("REFEREE_DATA_MIRROR")
    if not mirror:
        return url
    return f"{mirror.rstrip('/')}/{url.split('://', 1)[1]}"


def download(url: str, mirror: str | None = None) -> bytes:
    """The bytes at ``url`` (or its mirror copy), at most MAX_DOWNLOAD_BYTES; failures raise in one line."""
    where = mirrored(url, mirror)
    try:
        with urllib.request.urlopen(where, timeout=TIMEOUT_S) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise RefereeError(f"{where}: the server answered {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise RefereeError(f"{where}: could not download ({reason}); is this machine online?") from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise RefereeError(f"{where}: larger than {MAX_DOWNLOAD_BYTES} bytes; refused")
    return data


def get(dataset: DataSet, root: Path, mirror: str | None = None, force: bool = False) -> list[str]:
    """Fetch and convert every file of the set that is missing or differs (all with ``force``) into
    ``root/NAME``; returns what was written. Each file is checked before it is moved into place."""
    written = []
    for f, state in check(dataset, root):
        if state == "ok" and not force:
            continue
        target = root / dataset.name / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        failures = []
        for source in f.sources:  # the first source that gives the listed file wins
            problem = _fetch_one(source, f, target, mirror)
            if problem is None:
                break
            failures.append(problem)
        else:
            raise RefereeError(f"{dataset.where(f)}: nothing was written; " + "; ".join(failures))
        written.append(dataset.where(f))
    return written


def _fetch_one(source: Source, f: DataFile, target: Path, mirror: str | None) -> str | None:
    """Make ``target`` from one source through a staging folder beside it; None when done, else why not."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        made = staging / target.name
        data = download(source.url, mirror)
        if source.convert is None:
            made.write_bytes(data)
        elif source.convert in CONVERSIONS:
            CONVERSIONS[source.convert](data, made)
        else:
            raise RefereeError(f"{source.url}: unknown conversion {source.convert!r}")
        size, digest = (len(tree_files(made)), tree_digest(made)) if f.is_folder else \
            (made.stat().st_size, file_sha256(made))
        if (size, digest) != (f.size, f.sha256):
            return (f"{mirrored(source.url, mirror)} gave size {size}, sha256 {digest[:12]}... where the list says "
                    f"{f.size}, {f.sha256[:12]}... (the source changed, or the download was altered)")
        _replace(made, target)
        return None
    except RefereeError as e:
        return str(e)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:  # a conversion met bytes of another shape
        return f"{mirrored(source.url, mirror)}: could not convert ({e})"
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace(made: Path, target: Path) -> None:
    if made.is_dir():
        if target.exists():
            shutil.rmtree(target)
        made.rename(target)
    else:
        os.replace(made, target)


# ---- conversions: upstream files -> the files referee reads ------------------------------------------------
def _extract_folders(archive: bytes, out: Path, keep: tuple[str, ...]) -> None:
    """Unpack the members of a GitHub archive (one top folder) whose path starts with one of ``keep``,
    refusing any member that would land outside ``out``."""
    out.mkdir()
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        for member in z.infolist():
            inner = member.filename.split("/", 1)[1] if "/" in member.filename else ""
            if member.is_dir() or not inner.startswith(keep):
                continue
            target = (out / inner).resolve()
            if not target.is_relative_to(out.resolve()):
                raise RefereeError(f"archive member {member.filename!r} points outside the folder; refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(member))


def quixbugs_folder(archive: bytes, out: Path) -> None:
    """QuixBugs' Python programs, their fixed versions and test cases, from the repository's archive."""
    _extract_folders(archive, out, ("python_programs/", "correct_python_programs/", "json_testcases/",
                                    "python_testcases/", "README.md", "LICENSE"))


def gunzip(data: bytes, out: Path) -> None:
    out.write_bytes(gzip.decompress(data))


def in_cosmosqa_half(item_id: str) -> bool:
    """The half of CosmosQA's validation split that referee uses (the rest is kept aside): the items whose
    id has an even SHA-256."""
    return int(hashlib.sha256(item_id.encode("utf-8")).hexdigest(), 16) % 2 == 0


def cosmosqa_half(data: bytes, out: Path) -> None:
    """CosmosQA validation lines (one JSON object each, the label a string) -> the kept half, label an int."""
    kept = []
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            if in_cosmosqa_half(item["id"]):
                kept.append({**item, "label": int(item["label"])})
    out.write_bytes("".join(json.dumps(item) + "\n" for item in kept).encode("utf-8"))


CONVERSIONS: dict[str, Callable[[bytes, Path], None]] = {
    "quixbugs_folder": quixbugs_folder,
    "gunzip": gunzip,
    "cosmosqa_half": cosmosqa_half,
}
