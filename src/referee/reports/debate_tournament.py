"""The tournament's figure, from its metrics.json: the judge's accuracy against each player's Elo, for
debate (the player's self-play) and consultancy (the player as consultant), both with 95% intervals,
and the blind and expert judges as lines (Khan et al. 2024's central figure); with trained judges, their
accuracy per player and their blind and expert twins too."""

from __future__ import annotations

from pathlib import Path

from referee.figures import save_figure
from referee.runs import Run


def draw(run: Run) -> list[Path]:
    out = run.metrics().get("debate_tournament")
    if not out:
        return []
    return [plot_accuracy_vs_elo(out, run.plot_path("accuracy_vs_elo.png"))]


def plot_accuracy_vs_elo(out: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    names = list(out["elo"])
    elo = [out["elo"][n] for n in names]
    xs = [e["value"] for e in elo]
    xerr = [[e["value"] - e["low"] for e in elo], [e["high"] - e["value"] for e in elo]]
    for key, label, marker in (("debate_accuracy", "debate (self-play)", "o"),
                               ("consultancy_accuracy", "consultancy", "s"),
                               ("trained_debate_accuracy", "debate, trained judge", "^"),
                               ("trained_consultancy_accuracy", "consultancy, trained judge", "v")):
        if key not in out:
            continue
        acc = [out[key][n]["accuracy"] for n in names]
        ys = [a["value"] for a in acc]
        yerr = [[a["value"] - a["low"] for a in acc], [a["high"] - a["value"] for a in acc]]
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt=f"-{marker}", capsize=3, label=label)
    for group, colour, suffix in (("baselines", "grey", ""), ("trained_baselines", "black", ", trained")):
        for reader, style in (("blind", ":"), ("expert", "--")):
            if reader in out.get(group, {}):
                ax.axhline(out[group][reader]["accuracy"]["value"], color=colour, ls=style, lw=1,
                           label=reader + suffix)
    for x, n in zip(xs, names):
        ax.annotate(n, (x, 0.02), fontsize=8, ha="center")
    ax.set_ylim(0, 1)
    ax.set_xlabel("debater Elo (cross-play, 95% CI)")
    ax.set_ylabel("judge accuracy (95% CI)")
    ax.set_title(f"judge accuracy against debater strength ({out['items']} items)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
