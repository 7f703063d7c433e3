"""Compact tables and plots of audit and agreement metrics (as JSON-ready dicts, as in metrics.json)."""

from __future__ import annotations

from pathlib import Path

from referee.figures import save_figure

HEADLINES = {  # check -> the metrics worth a bar in the plot, with their labels
    "position": [("consistent", "position consistency"), ("prefers_first", "prefers first position")],
    "verbosity": [("failure", "verbosity: padded wins")],
    "assertiveness": [("flip_rate", "assertive: flip rate"), ("shift", "assertive: P shift")],
    "injection": [("flip_rate", "injection: flip rate"), ("shift", "injection: P shift")],
    "self": [("self_win_rate", "self: own answer wins"), ("self_bias", "self: bias vs gold")],
}


def _is_est(v) -> bool:
    return isinstance(v, dict) and {"value", "low", "high", "n"} <= set(v)


def fmt(est: dict, percent: bool = True) -> str:
    """``62% [55, 70]`` for rates, ``+0.12 [+0.05, +0.20]`` for differences; ``n/a`` when undefined."""
    v, lo, hi = est["value"], est["low"], est["high"]
    if v is None:
        return "n/a"
    if percent:
        return f"{100 * v:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]" if lo is not None else f"{100 * v:.0f}%"
    return f"{v:+.2f} [{lo:+.2f}, {hi:+.2f}]" if lo is not None else f"{v:+.2f}"


_SIGNED = {"shift", "self_bias", "kappa", "pearson", "spearman"}


def rows(metrics: dict, skip: tuple[str, ...] = ("per_category",)) -> list[tuple[str, str, str, int]]:
    """(group, metric, formatted value, n) for every estimate in a metrics dict, one level of groups."""
    out = []
    for group, body in metrics.items():
        if _is_est(body):
            out.append(("judge", group, fmt(body, group not in _SIGNED), body["n"]))
        elif isinstance(body, dict) and group not in skip:
            for name, est in body.items():
                if _is_est(est):
                    out.append((group, name, fmt(est, name not in _SIGNED), est["n"]))
    return out


def table(metrics: dict, skip: tuple[str, ...] = ("per_category",)) -> str:
    """A plain-text table of ``rows``."""
    lines = [f"{'group':14s} {'metric':24s} {'value [95% CI]':24s} {'n':>5s}"]
    last = None
    for group, name, value, n in rows(metrics, skip):
        lines.append(f"{group if group != last else '':14s} {name:24s} {value:24s} {n:5d}")
        last = group
    return "\n".join(lines)


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
            if _is_est(body.get(key)) and body[key]["value"] is not None:
                labels.append(label)
                ests.append(body[key])
    if not labels:
        return None
    return _bars(labels, ests, Path(path), "Judge bias audit (95% bootstrap intervals)", "rate or shift")


def plot_agreement(metrics: dict, path: str | Path) -> Path | None:
    """S2, S1, accuracy and kappa overall and per category, with their intervals."""
    groups = [("all", metrics)] + sorted((metrics.get("per_category") or {}).items())
    labels, ests = [], []
    for name, body in groups:
        for key in ("s2", "s1", "accuracy", "kappa"):
            if _is_est(body.get(key)) and body[key]["value"] is not None:
                labels.append(f"{name}: {key}")
                ests.append(body[key])
    if not labels:
        return None
    return _bars(labels, ests, Path(path), "Agreement with human labels (95% bootstrap intervals)", "agreement / kappa")
