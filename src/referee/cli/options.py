"""Checks shared by the options of many commands, run by typer as each option is read: a bad value is
refused before any work starts (a one-line error, exit status 2), however many commands take the option."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from referee.errors import RefereeError


def _name(param: typer.CallbackParam) -> str:
    return max(param.opts, key=len) if param.opts else str(param.name)


def at_least_one(param: typer.CallbackParam, value: Optional[int]) -> Optional[int]:
    """Counts such as --limit: 0 would mean nothing to do, and a negative one cuts from the end in Python."""
    if value is not None and value < 1:
        raise RefereeError(f"{_name(param)} should be at least 1, got {value}")
    return value


def output_file(param: typer.CallbackParam, value: Optional[Path]) -> Optional[Path]:
    """A file the command writes when done: refused now if it cannot be written, not after the work."""
    if value is not None:
        from referee.io import check_writable

        check_writable(value, f"{_name(param)} file")
    return value


def output_folder(param: typer.CallbackParam, value: Optional[Path]) -> Optional[Path]:
    """A folder the command writes into (a checkpoint, a run folder): refused now if it cannot be."""
    if value is not None:
        from referee.io import check_writable

        check_writable(value, f"{_name(param)} folder")
    return value
