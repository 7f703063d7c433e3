"""The figure of a judge's agreement with human labels, drawn from the run folder."""

from __future__ import annotations

import json
from pathlib import Path

from referee.reports.audit import plot_agreement


def draw(run) -> list[Path]:
    metrics = json.loads((run.folder / "metrics.json").read_text(encoding="utf-8")).get("agreement", {})
    plot = plot_agreement(metrics, run.plot_path("agreement.png"))
    return [plot] if plot else []
