"""Reading a verdict out of a judge's reply: ``[[A]]``, ``[[B]]``, ``[[C]]`` (tie) or ``[[7]]``.

Only the judge's own output is ever passed here, never the prompt (the backends return the new text
only), so instructions that show the markers cannot be mistaken for a verdict. Inside the reply, the
last marker counts (a reasoning judge concludes at the end), unless the reply ends by listing several
different markers on one line ("[[A]], [[B]] or [[C]]"): that is an echo of the format, not a verdict.
Anything unreadable is ``None`` with a reason, never a default.
"""

from __future__ import annotations

import re

MARKER = re.compile(r"\[\[\s*([A-Za-z]+|\d+(?:\.\d+)?)\s*\]\]")
PAIRWISE = {"a": "first", "b": "second", "c": "tie", "tie": "tie"}


def _last_marker(text: str, read) -> tuple[object | None, str | None]:
    """The value of the concluding marker, or (None, why)."""
    found = [(m, read(m.group(1))) for m in MARKER.finditer(text or "")]
    found = [(m, v) for m, v in found if v is not None]
    if not found:
        return None, "no verdict marker"
    last_match, last_value = found[-1]
    if len({v for _, v in found}) > 1:
        line_start = text.rfind("\n", 0, last_match.start()) + 1
        line_end = text.find("\n", last_match.end())
        line_end = len(text) if line_end < 0 else line_end
        same_line = [v for m, v in found if line_start <= m.start() < line_end]
        if len(set(same_line)) > 1:
            return None, "several different verdicts on the concluding line"
    return last_value, None


def parse_pairwise(text: str) -> tuple[str | None, str | None]:
    """The verdict in shown positions: "first", "second" or "tie"; or (None, why)."""
    return _last_marker(text, lambda s: PAIRWISE.get(s.lower()))


def parse_score(text: str, low: int, high: int) -> tuple[float | None, str | None]:
    """A score within [low, high]; out-of-range or non-numeric markers do not count."""
    def read(s: str):
        try:
            v = float(s)
        except ValueError:
            return None
        return v if low <= v <= high else None

    value, why = _last_marker(text, read)
    if value is None and why == "no verdict marker" and MARKER.search(text or ""):
        why = f"no score marker within {low}..{high}"
    return value, why
