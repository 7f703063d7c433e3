"""The critics run's figures, from its metrics.json: bugs caught and false alarms per critic (with
intervals), and, with FSBS, bugs caught against hallucinated quotes as lambda grows (the paper's
precision/recall trade-off)."""

from __future__ import annotations

from pathlib import Path

from referee.figures import bar_with_interval, save_figure
from referee.runs import Run


def draw(run: Run) -> list[Path]:
    metrics = run.metrics()
    if "critics" not in metrics:
        return []
    paths = [plot_critics(metrics, run.plot_path("critics.png"))]
    if metrics.get("fsbs"):
        paths.append(plot_fsbs(metrics["fsbs"], run.plot_path("fsbs.png")))
    return paths


def plot_critics(metrics: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(metrics["critics"])
    shown = [("tampered", "cbi", "bugs caught: tampered"), ("natural", "cbi", "bugs caught: QuixBugs' real bugs"),
             ("correct", "false_alarm_rate", "false alarms: correct programs")]
    if metrics.get("items", {}).get("two_bugs"):
        shown.insert(2, ("two_bugs", "comprehensiveness", "share of two bugs caught"))
    colours = ["#3b7dd8", "#5aa469", "#8e6bbf", "#d9534f"] if len(shown) == 4 else ["#3b7dd8", "#5aa469", "#d9534f"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(names), 4))
    width = 0.8 / len(shown)
    for k, (group, key, label) in enumerate(shown):
        for n, name in enumerate(names):
            bar_with_interval(ax, n + (k - (len(shown) - 1) / 2) * width, metrics["critics"][name][group][key],
                              width, label=label if n == 0 else None, color=colours[k])
    unreadable = [sum(metrics["critics"][n][g]["unreadable"] for g, _, _ in shown) for n in names]
    ax.set_xticks(range(len(names)), [f"{n}\n({u} unreadable)" for n, u in zip(names, unreadable)], fontsize=8)
    ax.set_ylim(0, 1.3)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("share of critiques (95% CI)")
    ax.set_title("critics of code: catches and false alarms (unreadable critiques left out)")
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    return save_figure(fig, path)


def plot_fsbs(fsbs: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in fsbs["points"] if p["cbi"]["value"] is not None]
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    xs = [p["hallucinated_quote_rate"] or 0.0 for p in points]
    ys = [p["cbi"]["value"] for p in points]
    errs = [[y - (p["cbi"]["low"] or y) for y, p in zip(ys, points)], [(p["cbi"]["high"] or y) - y
                                                                        for y, p in zip(ys, points)]]
    ax.errorbar(xs, ys, yerr=errs, fmt="-o", capsize=3)
    for x, y, p in zip(xs, ys, points):
        ax.annotate(f"λ={p['lambda']:g}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("hallucinated quotes (share of quotes not in the program)")
    ax.set_ylabel("bugs caught (CBI, 95% CI)")
    ax.set_title(f"FSBS with {fsbs['critic']}: RM score + λ × highlights")
    return save_figure(fig, path)
