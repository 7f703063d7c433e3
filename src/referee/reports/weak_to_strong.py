"""The weak-to-strong run's report, drawn from its metrics.json: test accuracy per student (weak,
weak-to-strong, ceiling), PGR with intervals, and the PGR table as Markdown (for docs/results/weak-to-strong.md)."""

from __future__ import annotations

from pathlib import Path

from referee.errors import RefereeError
from referee.figures import save_figure
from referee.protocols.weak_to_strong import headline_rows
from referee.runs import Run


def draw(run: Run) -> list[Path]:
    metrics = read_metrics(run.folder)
    return [plot_accuracy(metrics, run.plot_path("w2s_accuracy.png")),
            plot_pgr(metrics, run.plot_path("w2s_pgr.png"))]


def read_metrics(folder: str | Path) -> dict:
    """The ``weak_to_strong`` metrics of a finished run folder."""
    path = Path(folder) / "metrics.json"
    if not path.exists():
        raise RefereeError(f"{folder}: no metrics.json (is it a finished run folder?)")
    from referee.runs import read_metrics_file

    data = read_metrics_file(path)
    if "weak_to_strong" not in data:
        raise RefereeError(f"{path}: no weak_to_strong results in it")
    return data["weak_to_strong"]


def markdown_table(metrics: dict) -> str:
    """The PGR table as Markdown, one row per student, and the mean and median PGR per loss."""
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    lines = ["| weak | strong | loss | weak acc | w2s acc | ceiling acc | PGR [95% CI] | imitation | flag |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in headline_rows(metrics):
        ci = f" [{r['pgr_ci'][0]:.2f}, {r['pgr_ci'][1]:.2f}]" if r["pgr_ci"] else ""
        p = "-" if r["pgr"] is None else f"{r['pgr']:.2f}{ci}"
        lines.append(f"| {r['weak']} | {r['via'] or r['strong']} | {r['loss']} | {pct(r['acc_weak'])} | "
                     f"{pct(r['acc_w2s'])} | {pct(r['acc_ceiling'])} | {p} | {pct(r['imitation'])} | {r['flag'] or ''} |")
    lines.append("")
    for name, s in metrics["summary"].items():
        mean = "-" if s["mean_pgr"] is None else f"{s['mean_pgr']:.2f}"
        median = "-" if s["median_pgr"] is None else f"{s['median_pgr']:.2f}"
        lines.append(f"- {name}: mean PGR {mean}, median {median} over {s['runs'] - s['flagged']} runs "
                     f"({s['flagged']} flagged, left out)")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _labels(metrics: dict) -> tuple[list[str], list[str]]:
    names = list(metrics["rungs"])
    ticks = []
    for n in names:
        size = metrics["rungs"][n]["size"]
        unit = "features" if metrics["rungs"][n]["kind"] == "bow" else "params"
        ticks.append(f"{n}\n({_human(size)} {unit})")
    return names, ticks


def _human(x: int) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.1f}{suffix}"
    return str(x)


def plot_accuracy(metrics: dict, path: Path) -> Path:
    """One panel per loss: x = student rung; the ceiling's accuracy, and for each weak supervisor its own
    accuracy (a dotted level) and its students' accuracy. Bootstrapped students are drawn as squares."""
    plt = _pyplot()
    names, ticks = _labels(metrics)
    losses = sorted({r["loss"] for r in metrics["pairs"]}, key=lambda s: (s != "naive", s))
    fig, axes = plt.subplots(1, len(losses), figsize=(5.5 * len(losses), 4.2), sharey=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ceil_x = [k for k, n in enumerate(names) if metrics["rungs"][n]["acc_ceiling"] is not None]
    for ax, loss in zip(axes[0], losses):
        ax.plot(ceil_x, [metrics["rungs"][names[k]]["acc_ceiling"] for k in ceil_x], "k-o",
                label="ceiling (ground truth)")
        weaks = [n for n in names if any(r["weak"] == n and r["loss"] == loss for r in metrics["pairs"])]
        for c, weak in enumerate(weaks):
            colour = colours[c % len(colours)]
            k0 = names.index(weak)
            acc_weak = metrics["rungs"][weak]["acc_trained_on_part1"]
            rows = sorted((r for r in metrics["pairs"] if r["weak"] == weak and r["loss"] == loss),
                          key=lambda r: names.index(r["strong"]))
            xs = [k0] + [names.index(r["strong"]) for r in rows]
            ys = [acc_weak] + [r["acc_w2s"] for r in rows]
            ax.plot(xs, ys, "-o", color=colour, label=f"supervised by {weak}")
            ax.hlines(acc_weak, k0, len(names) - 1, colors=colour, linestyles=":", linewidth=1)
        boots = [r for r in metrics.get("bootstrap", []) if r["loss"] == loss]
        if boots:
            ax.plot([names.index(r["chain"][-1]) for r in boots], [r["acc_w2s"] for r in boots], "s--",
                    color="grey", label=f"bootstrapped from {boots[0]['chain'][0]}")
        ax.set_xticks(range(len(names)), ticks, fontsize=8)
        ax.set_title(f"loss: {loss}")
        ax.legend(fontsize=7, loc="best")
        ax.set_xlabel("student")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    fig.suptitle(f"weak-to-strong on {metrics['task']} (n_test={metrics['split']['test']})")
    return save_figure(fig, path, dpi=120)


def plot_pgr(metrics: dict, path: Path) -> Path:
    """PGR with its bootstrap interval per (weak, strong, loss); flagged runs are marked, not drawn."""
    plt = _pyplot()
    rows = list(metrics["pairs"]) + [
        {**r, "weak": r["chain"][0], "strong": r["chain"][-1], "loss": f"bootstrap-{r['loss']}"}
        for r in metrics.get("bootstrap", [])]
    losses = sorted({r["loss"] for r in rows}, key=lambda s: (s.startswith("bootstrap"), s))
    pairs = sorted({(r["weak"], r["strong"]) for r in rows}, key=lambda p: (list(metrics["rungs"]).index(p[1]),
                                                                            list(metrics["rungs"]).index(p[0])))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(pairs) + 2), 4.0))
    width = 0.8 / max(1, len(losses))
    labelled: set[str] = set()
    for li, loss in enumerate(losses):
        for pi, (w, s) in enumerate(pairs):
            found = [r for r in rows if r["loss"] == loss and r["weak"] == w and r["strong"] == s]
            if not found:
                continue
            r = found[0]
            x = pi + (li - (len(losses) - 1) / 2) * width
            if r["pgr"] is None:
                ax.text(x, 0, "x", ha="center", va="bottom", color="red")
                continue
            err = None
            if r["pgr_ci"]:
                err = [[max(0.0, r["pgr"] - r["pgr_ci"][0])], [max(0.0, r["pgr_ci"][1] - r["pgr"])]]
            ax.bar(x, r["pgr"], width, yerr=err, capsize=2, color=f"C{li}",
                   label=None if loss in labelled else loss)
            labelled.add(loss)
    if labelled:
        ax.legend(fontsize=8)
    # PGR intervals explode when the gap is small; keep the axis on the range where PGR means something
    ax.set_ylim(max(ax.get_ylim()[0], -2.0), min(ax.get_ylim()[1], 3.0))
    ax.axhline(0, color="k", linewidth=0.8)
    ax.axhline(1, color="k", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(pairs)), [f"{w}\n-> {s}" for w, s in pairs], fontsize=8)
    ax.set_ylabel("performance gap recovered (axis cut at -2, 3)")
    ax.set_title(f"PGR on {metrics['task']} (x: weak not worse than ceiling, flagged)")
    return save_figure(fig, path, dpi=120)
