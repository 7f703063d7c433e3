"""The prompt-optimisation run's figure: held-out F1 of the initial prompt and of each round's best prompt,
with its bootstrap interval."""

from __future__ import annotations

from pathlib import Path

from referee.figures import save_figure
from referee.runs import Run


def draw(run: Run) -> list[Path]:
    """``plots/prompt_optimization.png`` from the rounds in metrics.json."""
    metrics = run.metrics()["prompt_optimization"]
    rounds = [metrics["initial"], *metrics["rounds"]]
    title = f"ProTeGi on {Path(metrics['train']).name} ({metrics['selection']}, {metrics['test_items']} test items)"
    return [plot_f1_by_round(rounds, metrics["f1"], run.plot_path("prompt_optimization.png"), title)]


def plot_f1_by_round(rounds: list[dict], average: str, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [s["round"] for s in rounds]
    f1 = [s["test_f1"] for s in rounds]
    value = [_number(e["value"]) for e in f1]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(xs, value, marker="o", label="best prompt of the round")
    ax.fill_between(xs, [_number(e["low"]) for e in f1], [_number(e["high"]) for e in f1], alpha=0.15,
                    label="95% bootstrap interval")
    ax.set_xticks(xs)
    ax.set_xlabel("round (0: the initial prompt)")
    ax.set_ylabel(f"held-out {average} F1")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=120)


def _number(x: float | None) -> float:
    return float("nan") if x is None else x
