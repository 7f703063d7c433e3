"""Compact text tables of audit and agreement metrics (as JSON-ready dicts, as in metrics.json); their
plots are drawn by ``referee.reports.audit``."""

from __future__ import annotations

from referee.stats import interval_text


def is_estimate(v) -> bool:
    return isinstance(v, dict) and {"value", "low", "high", "n"} <= set(v)


def fmt(est: dict, percent: bool = True) -> str:
    """``62% [55, 70]`` for rates, ``+0.12 [+0.05, +0.20]`` for differences; ``n/a`` when undefined."""
    if percent:
        return interval_text(est["value"], est["low"], est["high"], digits=0, percent=True, unknown=None)
    return interval_text(est["value"], est["low"], est["high"], digits=2, signed=True, unknown=None)


_SIGNED = {"shift", "self_bias", "kappa", "pearson", "spearman"}


def rows(metrics: dict, skip: tuple[str, ...] = ("per_category",)) -> list[tuple[str, str, str, int]]:
    """(group, metric, formatted value, n) for every estimate in a metrics dict, one level of groups."""
    out = []
    for group, body in metrics.items():
        if is_estimate(body):
            out.append(("judge", group, fmt(body, group not in _SIGNED), body["n"]))
        elif isinstance(body, dict) and group not in skip:
            for name, est in body.items():
                if is_estimate(est):
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
