"""Saving a matplotlib figure the same way everywhere (tight layout, a set resolution, memory released), and
the bar with its interval that most reports draw."""

from __future__ import annotations

import os
from pathlib import Path


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def bar_with_interval(ax, x: float, estimate: dict | None, width: float, capsize: float = 3, **style) -> None:
    """One bar for a stored estimate ({"value", "low", "high"}) with its interval as an error bar; nothing
    for an estimate that is missing or undefined."""
    value = (estimate or {}).get("value")
    if value is None:
        return
    low, high = estimate.get("low"), estimate.get("high")
    err = [[value - low], [high - value]] if low is not None and high is not None else None
    ax.bar(x, value, width, yerr=err, capsize=capsize, **style)
