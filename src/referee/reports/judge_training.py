"""The judge-training run's figure, from its metrics.json: per held-out set and judge, accuracy,
position consistency, and the two attacks a judge most often falls for (padding and injected notes),
each with its 95% interval."""

from __future__ import annotations

from pathlib import Path

from referee.figures import bar_with_interval, save_figure
from referee.runs import Run

PANELS = [("accuracy (judge ties are misses)", ("agreement", "accuracy")),
          ("position consistency", ("position", "consistent")),
          ("verbosity: padded copy wins", ("audit", "verbosity", "failure")),
          ("injection: flips to the injected answer", ("audit", "injection", "flip_rate"))]
COLOURS = {"trained judge": "#3b7dd8", "untrained judge": "#9aa5b1", "always longer": "#e0a030",
           "reward model": "#5aa469"}


def draw(run: Run) -> list[Path]:
    folds = run.metrics().get("folds")
    if not folds:
        return []
    return [plot_folds(folds, run.plot_path("judge_training.png"))]


def _get(block: dict, path: tuple) -> dict | None:
    for key in path:
        if not isinstance(block, dict) or key not in block:
            return None
        block = block[key]
    return block


def plot_folds(folds: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in COLOURS if any(n in f for f in folds.values())]
    fig, axes = plt.subplots(2, 2, figsize=(2.5 + 1.6 * len(folds) * 2, 7.5), sharex=True)
    width = 0.8 / max(1, len(names))
    for ax, (title, key) in zip(axes.flat, PANELS):
        for k, name in enumerate(names):
            for f, fold in enumerate(folds.values()):
                bar_with_interval(ax, f + (k - (len(names) - 1) / 2) * width, _get(fold.get(name, {}), key), width,
                                  capsize=2, color=COLOURS[name], label=name if f == 0 else None)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.set_xticks(range(len(folds)), [f"{name}\n(n={fold['eval_pairs']})" for name, fold in folds.items()],
                      fontsize=8)
    axes.flat[0].axhline(0.5, color="grey", lw=0.6, ls=":")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("judges on a held-out set (trained on the others), 95% CI", fontsize=10)
    return save_figure(fig, path)
