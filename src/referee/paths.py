"""Where referee keeps its files on the user's machine."""

from __future__ import annotations

import os
from pathlib import Path


def referee_home() -> Path:
    """REFEREE_HOME, else $XDG_CACHE_HOME/referee, else ~/.cache/referee."""
    if os.environ.get("REFEREE_HOME"):
        return Path(os.environ["REFEREE_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "referee"
