"""Where referee keeps its files on the user's machine, and where it finds the public data sets.

Configs and benchmarks name public data as ``data:SET/FILE`` (``data:cosmosqa/valid_half.jsonl``), so the
same config runs on any machine: the prefix stands for the data root, found in one place (``data_root``).
``referee data get SET`` puts a set there; ``referee data list`` names them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from referee.errors import RefereeError

DATA_PREFIX = "data:"
# The project's own machines keep the public sets beside the checkout (../shared/data from the repository).
_BESIDE_CHECKOUT = Path(__file__).resolve().parents[3] / "shared" / "data"


def referee_home() -> Path:
    """REFEREE_HOME, else $XDG_CACHE_HOME/referee, else ~/.cache/referee."""
    if os.environ.get("REFEREE_HOME"):
        return Path(os.environ["REFEREE_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "referee"


def data_root() -> tuple[Path, str]:
    """The folder that holds the public data sets, and why it was chosen: $REFEREE_DATA if set, else
    ../shared/data beside this checkout when it exists, else REFEREE_HOME/data (where ``referee data get``
    writes)."""
    if os.environ.get("REFEREE_DATA"):
        return Path(os.environ["REFEREE_DATA"]).expanduser(), "REFEREE_DATA"
    if _BESIDE_CHECKOUT.is_dir():
        return _BESIDE_CHECKOUT, "beside the checkout"
    return referee_home() / "data", "referee's home folder"


def is_data_path(path: str | os.PathLike) -> bool:
    return os.fspath(path).startswith(DATA_PREFIX)


def data_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path; ``data:SET/FILE`` becomes that file under the data root, and a missing one raises
    in one line saying how to get it."""
    if not is_data_path(path):
        return Path(path)
    path = os.fspath(path)
    relative = path[len(DATA_PREFIX):].lstrip("/")
    parts = Path(relative).parts
    if not parts or ".." in parts:
        raise RefereeError(f"{path}: expected data:SET/FILE, a path inside the data root")
    root, why = data_root()
    resolved = root / relative
    if not resolved.exists():
        raise RefereeError(f"{path}: not found at {resolved} (data root from {why}); get it with "
                           f"`referee data get {parts[0]}`, or set REFEREE_DATA to a folder that has it")
    return resolved
