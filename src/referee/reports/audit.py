"""Figures of a judge's bias audit and of its agreement with people, drawn from the run folder."""

from __future__ import annotations

from pathlib import Path

from referee.audit.report import is_estimate
from referee.figures import save_figure

HEADLINES = {  # check -> the metrics worth a bar in the plot, with their labels
    "position": [("consistent", "position consistency"), ("prefers_first", "prefers first position")],
    "verbosity": [("failure", "verbosity: padded wins")],
    "assertiveness": [("flip_rate", "assertive: flip rate"), ("shift", "assertive: P shift")],
    "injection": [("flip_rate", "injection: flip rate"), ("shift", "injection: P shift")],
    "self": [("self_win_rate", "self: own answer wins"), ("self_bias", "self: bias vs gold")],
}


def draw(run) -> list[Path]:
    metrics = run.metrics().get("audit", {})
    plot = plot_audit(metrics, run.plot_path("audit.png"))
    return [plot] if plot else []


def _bars(labels: list[str], ests: list[dict], path: Path, title: str, xlabel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vals = [e["value"] if e["value"] is not None else 0.0 for e in ests]
    lo = [max(0.0, v - e["low"]) if e["low"] is not None else 0.0 for v, e in zip(vals, ests)]
    hi = [max(0.0, e["high"] - v) if e["high"] is not None else 0.0 for v, e in zip(vals, ests)]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.2))
    ax.barh(range(len(labels)), vals, xerr=[lo, hi], color="#4C72B0", capsize=3)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_audit(metrics: dict, path: str | Path) -> Path | None:
    """One bar (with its 95% interval) per headline metric of the checks that ran."""
    labels, ests = [], []
    for check, wanted in HEADLINES.items():
        body = metrics.get(check)
        if not isinstance(body, dict):
            continue
        for key, label in wanted:
            if is_estimate(body.get(key)) and body[key]["value"] is not None:
                labels.append(label)
                ests.append(body[key])
    if not labels:
        return None
    return _bars(labels, ests, Path(path), "Judge bias audit (95% bootstrap intervals)", "rate or shift")


def plot_agreement(metrics: dict, path: str | Path) -> Path | None:
    """S2, S1, accuracy (of all, and of readable verdicts where some were unreadable) and kappa overall and
    per category, with their intervals."""
    groups = [("all", metrics)] + sorted((metrics.get("per_category") or {}).items())
    labels, ests = [], []
    for name, body in groups:
        for key in ("s2", "s1", "accuracy", "accuracy_answered", "kappa"):
            if key == "accuracy_answered" and body.get(key) == body.get("accuracy"):
                continue  # no unreadable verdict: the same bar twice
            if is_estimate(body.get(key)) and body[key]["value"] is not None:
                labels.append(f"{name}: {key}")
                ests.append(body[key])
    if not labels:
        return None
    return _bars(labels, ests, Path(path), "Agreement with human labels (95% bootstrap intervals)", "agreement / kappa")
