"""The figure of a judge's agreement with human labels, drawn from the run folder."""

from __future__ import annotations

from pathlib import Path

from referee.reports.audit import plot_agreement


def draw(run) -> list[Path]:
    metrics = run.metrics().get("agreement", {})
    plot = plot_agreement(metrics, run.plot_path("agreement.png"))
    return [plot] if plot else []
