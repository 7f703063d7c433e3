"""Programs with two known bugs, for the comprehensiveness of critiques (CriticGPT asks a critique to find
every bug, not one).

Two tampering records of the same program (``programs.tamper``) whose changed lines are at least one line
apart are applied together to the correct program, line by line: each record's original lines are
replaced by its tampered lines (none, for a removed statement). Applying a record alone this way must give
back the record's own tampered program, or the pair is skipped (counted). The combined program is kept
when it parses and its tests fail: each bug alone failed the tests, but two bugs can cancel out. Its
record lists both bugs' line spans in the combined program, in the tampering records' convention (a
removed statement: ``end == start - 1``).
"""

from __future__ import annotations

import ast
import hashlib
import itertools

from referee.programs.datasets import run_tests
from referee.programs.sandbox import Limits


def _new_lines(record: dict) -> list[str]:
    return record["tampered_code"].splitlines() if record["tampered_code"] else []


def apply_records(source: str, records: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """``source`` with every record's line edit applied, and each record's span in the result (records in
    the order given; their original spans must not overlap)."""
    lines = source.splitlines()
    for r in sorted(records, key=lambda r: -r["original_line_start"]):  # from the end: earlier numbers hold
        lines[r["original_line_start"] - 1:r["original_line_end"]] = _new_lines(r)
    spans = {}
    shift = 0
    for r in sorted(records, key=lambda r: r["original_line_start"]):
        start, n = r["original_line_start"] + shift, len(_new_lines(r))
        spans[r["id"]] = (start, start + n - 1)
        shift += n - (r["original_line_end"] - r["original_line_start"] + 1)
    return "\n".join(lines) + "\n", [spans[r["id"]] for r in records]


def _same_text(a: str, b: str) -> bool:
    return a.rstrip("\n") == b.rstrip("\n")


def two_bug_programs(correct: dict[str, str], records: list[dict], tests: dict[str, str], seed: int = 0,
                     limits: Limits | None = None) -> tuple[list[dict], dict]:
    """At most one two-bug program per program id in ``correct`` ({id: correct source}), from its tampering
    ``records``, pairs tried in a seeded order; ``tests`` gives each program's tests. Returns (records,
    counts of what was tried and why pairs were left)."""
    report = dict.fromkeys(("programs", "pairs_tried", "kept", "overlapping", "not_reproducible", "unparseable",
                            "rejected_tests_passed"), 0)
    out = []
    by_program: dict[str, list[dict]] = {}
    for r in records:
        if r["program_id"] in correct:
            by_program.setdefault(r["program_id"], []).append(r)
    for pid, own in sorted(by_program.items()):
        if len(own) < 2:
            continue
        report["programs"] += 1
        pairs = sorted(itertools.combinations(own, 2),
                       key=lambda p: hashlib.sha256(f"{seed}|{p[0]['id']}|{p[1]['id']}".encode()).hexdigest())
        for a, b in pairs:
            first, second = sorted((a, b), key=lambda r: r["original_line_start"])
            if first["original_line_end"] + 1 >= second["original_line_start"]:
                report["overlapping"] += 1
                continue
            report["pairs_tried"] += 1
            if not all(_same_text(apply_records(correct[pid], [r])[0], r["source"]) for r in (a, b)):
                report["not_reproducible"] += 1
                continue
            source, spans = apply_records(correct[pid], [first, second])
            try:
                ast.parse(source)
            except SyntaxError:
                report["unparseable"] += 1
                continue
            outcome = run_tests(source, tests[pid], limits)
            if outcome["passed"]:
                report["rejected_tests_passed"] += 1
                continue
            report["kept"] += 1
            parts = "+".join(r["id"][len(pid) + 1:] for r in (first, second))  # e.g. wrong_return/4+off_by_one/2
            out.append({"id": f"{pid}/two_bugs/{parts}", "program_id": pid, "origin": first["origin"],
                        "operator": "two_bugs", "source": source, "spans": [list(s) for s in spans],
                        "parts": [first["id"], second["id"]],
                        "description": " ".join(r["description"] for r in (first, second)),
                        "tests_failed_with": outcome["error"]})
            break
    return out, report
