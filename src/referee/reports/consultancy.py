"""The consultancy run's figure: the same as debate's (``referee.reports.debate``)."""

from __future__ import annotations

from pathlib import Path

from referee.reports.debate import draw as draw_readers
from referee.runs import Run


def draw(run: Run) -> list[Path]:
    return draw_readers(run, "consultancy")
