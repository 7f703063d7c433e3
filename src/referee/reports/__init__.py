"""Reports: PNG plots and a self-contained report.html, drawn from a finished run folder.

Protocols write records and metrics only; this layer, above them, reads the folder and draws. A
protocol ``NAME`` that has figures gets a module ``referee.reports.NAME`` with ``draw(run) -> list[Path]``
(``run`` a ``referee.runs.Run`` opened on the folder); ``draw_for`` finds it, so the CLI draws the same
figures whichever command started the run.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path


def draw_for(protocol: str, run) -> list[Path]:
    """Draw the figures and pages of a ``protocol`` run; an empty list for a protocol without any."""
    name = f"referee.reports.{protocol}"
    if importlib.util.find_spec(name) is None:
        return []
    return list(importlib.import_module(name).draw(run))
