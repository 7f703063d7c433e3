"""Progress bars for long loops, all switched off at once by ``--quiet`` (or REFEREE_QUIET=1)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

_quiet = os.environ.get("REFEREE_QUIET", "") not in ("", "0")


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def bar(total: int | None = None, desc: str = "", unit: str = "it", leave: bool = False):
    """A tqdm bar on stderr; hidden when quiet or when there is nothing to wait for."""
    return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
                disable=_quiet or total == 0, dynamic_ncols=True)


def say(message: str) -> None:
    """A one-line status message on stderr, silenced by --quiet."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)
