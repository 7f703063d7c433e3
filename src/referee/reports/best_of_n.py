"""The best-of-N run's figure: accuracy against N for every method, with bootstrap intervals."""

from __future__ import annotations

from pathlib import Path

from referee.config import load_config_file
from referee.figures import save_figure
from referee.runs import Run


def draw(run: Run) -> list[Path]:
    """``plots/best_of_n.png`` from the curves in metrics.json."""
    metrics = run.metrics()["best_of_n"]
    model = load_config_file(run.folder / "config.yaml").get("model")
    title = f"best-of-N on {metrics['task']} ({metrics['problems']} problems, {model})"
    return [plot_curves(metrics["curves"], run.plot_path("best_of_n.png"), title)]


def plot_curves(curves: dict, path: Path, title: str) -> Path:
    """One line per method, N on a log2 axis; ``curves`` as in metrics.json ({method: {"N": point}})."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, by_n in curves.items():
        keys = sorted(by_n, key=int)
        ns = [int(n) for n in keys]
        ax.plot(ns, [by_n[n]["accuracy"] for n in keys], marker="o", label=name)
        ax.fill_between(ns, [by_n[n]["low"] for n in keys], [by_n[n]["high"] for n in keys], alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (samples per problem)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=120)
