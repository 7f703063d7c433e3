"""The self-rewarding run's report: score distributions, win rates with intervals, lengths, costs."""

from __future__ import annotations

import json
from pathlib import Path

from referee.figures import save_figure
from referee.reports.html import Page
from referee.runs import Run


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, run: Run, name: str) -> Path:
    return save_figure(fig, run.plot_path(name))


def plot_scores(run: Run, iterations: list[int]) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for t in iterations:
        scores = [r["score"] for r in run.read_records(f"it{t}_self_judge") if r["score"] is not None]
        ax.hist(scores, bins=20, range=(0, 5), alpha=0.6, label=f"iteration {t} (M{t} judging)")
    ax.set_xlabel("self-judged score (0-5 rubric)")
    ax.set_ylabel("candidates")
    ax.legend()
    return _save(fig, run, "self_judge_scores.png")


def plot_win_rates(run: Run, metrics: dict, n_models: int) -> Path:
    plt = _plt()
    names, values, lows, highs, ties = [], [], [], [], []
    for i in range(1, n_models):
        vs = metrics.get(f"M{i}", {}).get("vs_m0")
        if not vs or vs["win_rate"]["value"] is None:
            continue
        w = vs["win_rate"]
        names.append(f"M{i}")
        values.append(w["value"])
        lows.append(w["value"] - (w["low"] if w["low"] is not None else w["value"]))
        highs.append((w["high"] if w["high"] is not None else w["value"]) - w["value"])
        ties.append(vs["tie_rate"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = range(len(names))
    ax.bar(x, values, yerr=[lows, highs], capsize=6, label="win rate vs M0 (95% CI)")
    ax.plot(list(x), ties, "o", color="black", label="tie rate")
    ax.set_xticks(list(x), names)
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.legend()
    return _save(fig, run, "win_rate_vs_m0.png")


def plot_lengths(run: Run, metrics: dict, n_models: int) -> Path:
    plt = _plt()
    names = [f"M{i}" for i in range(n_models) if metrics.get(f"M{i}", {}).get("lengths")]
    values = [metrics[n]["lengths"]["mean_chars"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(names, values)
    ax.set_ylabel("mean answer length (characters)")
    return _save(fig, run, "answer_lengths.png")


def stage_seconds(ledger: dict) -> dict[str, float]:
    """Wall seconds per stage over every invocation in the folder: a resumed run's last invocation mostly
    reads stages back, so it alone would show the experiment as nearly free."""
    out: dict[str, float] = {}
    for inv in ledger.get("earlier_invocations", []) + [ledger]:
        for stage, seconds in (inv.get("stage_wall_seconds") or {}).items():
            out[stage] = out.get(stage, 0.0) + seconds
    return out


def plot_costs(run: Run, ledger: dict) -> Path:
    plt = _plt()
    stages = stage_seconds(ledger)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(list(stages), list(stages.values()))
    ax.set_xlabel("wall seconds")
    ax.invert_yaxis()
    return _save(fig, run, "stage_seconds.png")


def draw(run: Run) -> list[Path]:
    """report.html with its plots, from the run folder's metrics and records."""
    metrics = run.metrics()
    return [write_report(run, metrics)]


def write_report(run: Run, metrics: dict) -> Path:
    n_models = len(metrics["models"])
    iterations = list(range(1, n_models - 1))
    page = Page("Self-rewarding run")
    page.note(f"Run folder: {run.folder}. Models: " + ", ".join(f"{k} = {v}" for k, v in metrics["models"].items()))

    page.heading("The self-judge at every model")
    page.note("Held-out EFT answers graded with the additive 0-5 rubric by each model; compared with gold grades.")
    rows = []
    for i in range(n_models):
        sj = metrics.get(f"M{i}", {}).get("self_judge", {})
        rows.append([f"M{i}", sj.get("invalid_rate", {}).get("value"), sj.get("exact_agreement", {}).get("value"),
                     sj.get("pearson", {}).get("value"), sj.get("spearman", {}).get("value")])
    page.table(["model", "invalid rate", "exact agreement", "Pearson", "Spearman"], rows)

    page.heading("Against M0 on held-out prompts")
    page.note("Pairwise judgments, both orders, probabilities averaged. A judge that always picks one position "
              "shows up as low position consistency and many ties.")
    rows = []
    for i in range(1, n_models):
        vs = metrics.get(f"M{i}", {}).get("vs_m0")
        if vs:
            w = vs["win_rate"]
            rows.append([f"M{i}", vs["judge"], w["value"], f"[{w['low']:.2f}, {w['high']:.2f}]" if w["low"] is not None else "n/a",
                         vs["tie_rate"], vs["loss_rate"]["value"], vs["position_consistency"], vs["invalid_rate"]])
    page.table(["model", "judge", "win rate", "95% CI", "tie rate", "loss rate", "position consistency", "invalid"], rows)
    page.image(plot_win_rates(run, metrics, n_models), run.folder, "win rates")

    page.heading("Self-judged candidates and pairs")
    rows = []
    for t in iterations:
        d = metrics.get(f"it{t}_data", {})
        rows.append([t, d.get("prompts"), d.get("candidates"), d.get("invalid_scores"), d.get("pairs"),
                     d.get("mean_margin"), d.get("chosen_mean_chars"), d.get("rejected_mean_chars")])
    page.table(["iteration", "prompts", "candidates", "invalid scores", "pairs", "mean margin",
                "chosen length", "rejected length"], rows)
    if iterations:
        page.image(plot_scores(run, iterations), run.folder, "score distributions")

    page.heading("Answer lengths")
    page.table(["model", "mean chars", "median chars", "mean tokens"],
               [[f"M{i}", metrics[f"M{i}"]["lengths"].get("mean_chars"), metrics[f"M{i}"]["lengths"].get("median_chars"),
                 metrics[f"M{i}"]["lengths"].get("mean_tokens")] for i in range(n_models) if f"M{i}" in metrics])
    page.image(plot_lengths(run, metrics, n_models), run.folder, "lengths")

    page.heading("Cost ledger")
    ledger = json.loads((run.folder / "ledger.json").read_text(encoding="utf-8"))
    invocations = ledger.get("all_invocations", {}).get("invocations", 1)
    page.note(f"Model calls of the last of {invocations} invocation(s) in this folder (stages read back from an "
              f"earlier one cost nothing here); the plot sums wall seconds per stage over all of them.")
    page.table(["stage", "model", "calls", "cached", "prompt tokens", "completion tokens", "model seconds"],
               [[e["stage"], e["model"], e["calls"], e["cached_calls"], e["prompt_tokens"], e["completion_tokens"],
                 e["model_seconds"]] for e in ledger["entries"]])
    page.image(plot_costs(run, ledger), run.folder, "stage seconds")
    return page.write(run.folder / "report.html")
