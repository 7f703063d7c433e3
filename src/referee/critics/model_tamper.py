"""Bugs written by a model: asked for one subtle bug, its program is checked as the programmatic ones are
(it parses, the function is still there, the code changed, the tests now fail), and the changed lines are
found by diffing against the correct program. Every reply that does not make a bug is counted by why."""

from __future__ import annotations

import ast
import re
from collections import Counter
from importlib import resources

from referee.critics.refine import extract_program
from referee.errors import RefereeError
from referee.models.base import Model, Sampling
from referee.programs.datasets import Program, run_tests
from referee.programs.tamper import changed_lines

BUG_LINE = re.compile(r"^\s*Bug:\s*(.+)$", re.MULTILINE)
OUTCOMES = ("kept", "no_program", "unparseable", "function_missing", "unchanged", "tests_passed")


def template() -> str:
    return (resources.files("referee") / "templates" / "critics" / "tamper.txt").read_text()


def _lines(source: str, first: int, last: int) -> str:
    return "\n".join(source.splitlines()[first - 1:last])


def judge_reply(program: Program, reply: str, model_spec: str) -> tuple[str, dict | None]:
    """(outcome, record or None) for one model reply to the tampering prompt."""
    buggy = extract_program(reply)
    if buggy is None:
        return "no_program", None
    try:
        tree = ast.parse(buggy)
    except SyntaxError:
        return "unparseable", None
    if not any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == program.entry_point
               for node in tree.body):
        return "function_missing", None
    try:
        (first, last), (new_first, new_last), hunks = changed_lines(program.source, buggy, program.entry_point)
    except RefereeError:  # the function's code is the same, comments and blank lines aside
        return "unchanged", None
    outcome = run_tests(buggy, program.tests)
    if outcome["passed"]:
        return "tests_passed", None
    said = BUG_LINE.search(reply)
    return "kept", {"id": f"{program.id}/model/0", "program_id": program.id, "origin": program.origin,
                    "entry_point": program.entry_point, "operator": "model", "line_start": new_first,
                    "line_end": new_last, "original_line_start": first, "original_line_end": last,
                    "original_code": _lines(program.source, first, last), "tampered_code": _lines(buggy, new_first,
                                                                                                   new_last),
                    "description": said.group(1).strip() if said else f"a bug written by {model_spec}",
                    "hunks": hunks, "source": buggy, "tests_failed_with": outcome["error"],
                    "timed_out": outcome["timed_out"], "seed": None}


def model_tamper(model: Model, programs: list[Program], sampling: Sampling) -> tuple[list[dict], dict]:
    """One attempt per program; records of the bugs kept, and counts of every outcome."""
    chats = [[{"role": "user", "content": template().format(program=p.source.rstrip())}] for p in programs]
    replies = model.generate(chats, sampling, desc="model tampering")
    records, outcomes = [], Counter()
    for program, row in zip(programs, replies):
        outcome, record = judge_reply(program, row[0].text, model.spec)
        outcomes[outcome] += 1
        if record:
            records.append(record)
    return records, {"programs": len(programs), **{o: outcomes[o] for o in OUTCOMES}}
