"""No published figure lives in code (issue 33): a number a results page quotes must come from a run
folder through a command, never from a string in src/ that would outlive the runs that measured it."""

import ast
import re
from pathlib import Path

from referee.reports.verifiable_feedback import width_note

ROOT = Path(__file__).resolve().parents[1]
# a figure with its interval: "36% [30, 42]", "+0.13 [+0.05, +0.21]", "+6.0 points [+2.6, +9.8]"
INTERVAL = re.compile(r"[+-]?\d+(?:\.\d+)?%?(?: points)? \[[+-]?\d+(?:\.\d+)?%?, [+-]?\d+(?:\.\d+)?%?\]")


def figures(text: str) -> set[str]:
    return {re.sub(r"\s+", " ", m.group(0)).lstrip("+") for m in INTERVAL.finditer(text)}


def code_strings() -> dict[str, str]:
    """Every string constant (docstrings and messages) in src/, by where it is."""
    out = {}
    for path in sorted((ROOT / "src" / "referee").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out[f"{path.relative_to(ROOT)}:{node.lineno}"] = node.value
    return out


def published_pages() -> list[Path]:
    """Where figures are published: the README, BENCHMARKS.md (now an index) and every page of the site."""
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_no_published_interval_is_written_in_the_code():
    published = figures("\n".join(p.read_text(encoding="utf-8") for p in published_pages()))
    assert len(published) > 100  # the pages do quote figures: the pattern reads them
    hits = {where: sorted(figures(text) & published) for where, text in code_strings().items()}
    assert {w: h for w, h in hits.items() if h} == {}


def test_the_pattern_finds_a_figure_written_in_a_message():
    assert figures('print("checker arm: +6.0 points [+2.6, +9.8] pooled")') == {"6.0 points [+2.6, +9.8]"}


def test_the_feedback_report_reads_its_interval_width_from_the_run():
    metrics = {"evaluation": {"M1": {"problems": 64, "accuracy": {"value": 0.5, "low": 0.38, "high": 0.62}}}}
    assert "With 64 held-out problems M1's accuracy interval spans 12.0 points either side" in width_note(metrics)
    assert width_note({"evaluation": {"M1": {"problems": 0, "accuracy": {"value": None}}}}) == ""
