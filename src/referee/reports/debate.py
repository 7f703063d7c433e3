"""The debate run's figure: judge accuracy per reader (blind, expert, the protocol) with 95% intervals,
overall and by which answer was shown first, beside chance. A judge that always names the first answer
shows as a full bar and an empty one in the by-order groups."""

from __future__ import annotations

from pathlib import Path

from referee.figures import save_figure
from referee.runs import Run

GROUPS = (("all items", None), ("right answer shown first", "correct_first"),
          ("right answer shown second", "correct_second"))


def draw(run: Run, protocol: str = "debate") -> list[Path]:
    """``plots/<protocol>.png`` from metrics.json."""
    metrics = run.metrics()[protocol]
    title = (f"{protocol}: judge {metrics['judge']} on {metrics['items']} {metrics['split']} items, "
             f"{metrics['rounds']} round(s)")
    return [plot_readers(metrics["readers"], run.plot_path(f"{protocol}.png"), title)]


def plot_readers(readers: dict[str, dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def estimate(summary: dict, key: str | None) -> dict:
        return summary["accuracy"] if key is None else summary["by_order"][key]

    # a judge that read both orders of every item has no by-order groups
    groups = [(name, key) for name, key in GROUPS if any(estimate(s, key)["n"] for s in readers.values())]
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    width = 0.8 / max(len(readers), 1)
    for k, (reader, summary) in enumerate(readers.items()):
        estimates = [estimate(summary, key) for _, key in groups]
        xs = [g + (k - (len(readers) - 1) / 2) * width for g in range(len(groups))]
        values = [_number(e["value"]) for e in estimates]
        errors = [[_gap(e, "low"), _gap(e, "high")] for e in estimates]
        ax.bar(xs, values, width * 0.95, label=reader,
               yerr=[[lo for lo, _ in errors], [hi for _, hi in errors]], capsize=3)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([name for name, _ in groups])
    ax.set_ylabel("judge accuracy (ties and unreadable verdicts wrong)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path, dpi=120)


def _number(x: float | None) -> float:
    return float("nan") if x is None else x


def _gap(estimate: dict, side: str) -> float:
    """The distance from the value to one end of its interval (0 where either is unknown)."""
    value, end = estimate["value"], estimate[side]
    if value is None or end is None:
        return 0.0
    return max(value - end, 0.0) if side == "low" else max(end - value, 0.0)
