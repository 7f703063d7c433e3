"""Programmatic bug insertion ("tampering") for training and measuring critics.

Each mutation operator (``off_by_one``, ``flip_comparison``, ``flip_boolean``, ``wrong_operator``,
``swap_arguments``, ``drop_statement``, ``wrong_constant``, ``wrong_return``) lists every candidate
mutation of one program: ``referee.programs.operators`` proposes them, ``referee.programs.edits`` writes
them into the source text and ``referee.programs.mutations`` keeps the edits that parse to exactly the
intended tree (all re-exported here). Only the body of the function under test is mutated, and only from
``first_line`` on (for HumanEval: the canonical solution, not the prompt). This module is the driver.

``tamper`` keeps a mutation only when the tampered program's tests FAIL in the sandbox: a mutation the tests
cannot see (dead code, an equivalent change) is no bug a critic could be asked to find, and is counted as
rejected. Candidates are shuffled with a seeded RNG per program, tried round-robin over operators, at most
one per operator until each operator had its turn (diversity), at most ``max_tries`` sandbox runs and
``per_program`` kept mutations per program, deduplicated by their syntax tree.

Records give the changed line span in the tampered program (``line_start``..``line_end``, 1-based) and in
the original (``original_line_start``..``original_line_end``); a removed statement leaves an empty span in
the tampered program (``line_end == line_start - 1``, ``line_start`` being the line that now follows it).
``natural_bugs`` gives QuixBugs' real one-line bugs as records of the same shape (operator "natural").
"""

from __future__ import annotations

import ast
import difflib
import io
import math
import random
import time
import tokenize
from dataclasses import replace
from pathlib import Path

from referee.errors import RefereeError
from referee.programs.datasets import DEFAULT_LIMITS, Program, check_programs, load_quixbugs, run_tests
from referee.programs.edits import SourceText, entry_function
# The operator functions and ``candidates`` are imported from here too.
from referee.programs.mutations import (Mutation, candidates, drop_statement, flip_boolean,  # noqa: F401
                                       flip_comparison, off_by_one, snippet, swap_arguments, wrong_constant,
                                       wrong_operator, wrong_return)
from referee.programs.operators import OPERATORS, PROPOSERS
from referee.programs.sandbox import Limits

MAX_TRIES = 30  # sandbox runs per program
MIN_TIMEOUT_S = 3.0  # per-program timeout: this, or 5x the correct program's test time if longer


def tamper(programs: list[Program], seed: int = 0, per_program: int = 3, operators=OPERATORS,
           limits: Limits | None = None, max_tries: int = MAX_TRIES, on_program=None) -> tuple[list[dict], dict]:
    """Tampered versions of each program whose tests fail (module doc), and a report of what was tried.

    Programs whose correct version fails its own tests are skipped and listed in the report, never counted.
    ``on_program(program)`` is called after each program is checked and after each is tampered (progress).
    """
    operators = _check_operators(operators)
    if per_program < 1 or max_tries < 1:
        raise RefereeError("per_program and max_tries should be at least 1")
    started = time.monotonic()
    passing, failing = check_programs(programs, limits, on_program)
    counts = {op: dict.fromkeys(("candidates", "unparseable", "tried", "duplicates", "kept", "rejected_tests_passed",
                                 "timed_out"), 0) for op in operators}
    records, without = [], []
    for program in passing:
        kept = _tamper_one(program, seed, per_program, operators, _program_limits(program, limits), max_tries,
                           counts)
        records += kept
        if on_program is not None:
            on_program(program)
        if not kept:
            without.append(program.id)
    tried = sum(c["tried"] for c in counts.values())
    rejected = sum(c["rejected_tests_passed"] for c in counts.values())
    report = {"programs": len(programs), "tampered": len(passing) - len(without), "records": len(records),
              "skipped_failing_own_tests": failing, "without_mutation": without, "operators": counts,
              "tried": tried, "rejected_tests_passed": rejected,
              "rejected_share_tests_passed": round(rejected / tried, 4) if tried else None,
              "seed": seed, "per_program": per_program, "seconds": round(time.monotonic() - started, 1)}
    return records, report


def _check_operators(operators) -> tuple[str, ...]:
    names = tuple(op if isinstance(op, str) else getattr(op, "__name__", "") for op in operators)
    unknown = [n for n in names if n not in PROPOSERS]
    if unknown or not names:
        raise RefereeError(f"unknown mutation operator(s) {unknown}; expected some of {', '.join(OPERATORS)}")
    return names


def _program_limits(program: Program, limits: Limits | None) -> Limits:
    """A per-program timeout: 5x the correct program's test time, at least MIN_TIMEOUT_S, at most the
    limit given; so a mutation that loops forever costs seconds, not the whole limit."""
    base = limits or DEFAULT_LIMITS
    seconds = program.meta.get("test_seconds")
    if seconds is None:
        return base
    timeout = min(base.timeout_s, max(MIN_TIMEOUT_S, 5 * seconds))
    return replace(base, timeout_s=timeout, cpu_s=max(1, min(base.cpu_s, math.ceil(timeout))))


def _tamper_one(program: Program, seed: int, per_program: int, operators: tuple[str, ...], limits: Limits,
                max_tries: int, counts: dict) -> list[dict]:
    rng = random.Random(f"referee-tamper:{seed}:{program.id}")
    first_line = program.meta.get("editable_from_line", 1)
    pools = {}
    for op in operators:
        try:
            found, failed = candidates(program.source, program.entry_point, op, first_line)
        except RefereeError as e:
            raise RefereeError(f"{program.id}: {e}") from None
        counts[op]["candidates"] += len(found)
        counts[op]["unparseable"] += failed
        rng.shuffle(found)
        pools[op] = found
    order = list(operators)
    rng.shuffle(order)
    queue = _round_robin([pools[op] for op in order])
    kept, kept_ops, done, seen, tries = [], set(), set(), {ast.dump(ast.parse(program.source))}, 0
    for diverse in (True, False):
        for i, mutation in enumerate(queue):
            if len(kept) >= per_program or tries >= max_tries:
                break
            if i in done or (diverse and mutation.operator in kept_ops):
                continue
            done.add(i)
            if mutation.normalised in seen:
                counts[mutation.operator]["duplicates"] += 1
                continue
            seen.add(mutation.normalised)
            tries += 1
            counts[mutation.operator]["tried"] += 1
            outcome = run_tests(mutation.source, program.tests, limits)
            if outcome["passed"]:
                counts[mutation.operator]["rejected_tests_passed"] += 1
                continue
            counts[mutation.operator]["kept"] += 1
            counts[mutation.operator]["timed_out"] += outcome["timed_out"]
            kept_ops.add(mutation.operator)
            kept.append(_record(program, mutation, outcome, seed))
    return kept


def _round_robin(pools: list[list]) -> list:
    out = []
    for i in range(max((len(p) for p in pools), default=0)):
        out += [p[i] for p in pools if i < len(p)]
    return out


def _record(program: Program, m: Mutation, outcome: dict, seed: int) -> dict:
    return {"id": f"{program.id}/{m.operator}/{m.index}", "program_id": program.id, "origin": program.origin,
            "entry_point": program.entry_point, "operator": m.operator, "line_start": m.line_start,
            "line_end": m.line_end, "original_line_start": m.original_line_start,
            "original_line_end": m.original_line_end, "original_code": m.original_code,
            "tampered_code": m.tampered_code, "description": m.description, "source": m.source,
            "tests_failed_with": outcome["error"], "timed_out": outcome["timed_out"], "seed": seed}


# ---------------------------------------------------------------------------------------------------------
# QuixBugs' real bugs


def natural_bugs(folder: str | Path, limits: Limits | None = None, limit: int | None = None) -> tuple[list[dict], dict]:
    """QuixBugs' buggy programs (those with JSON cases) as records shaped like ``tamper``'s, the changed
    lines found by diffing the function's code (comments and blank lines aside) against the correct one.
    Only bugs the tests catch are records; the report lists the others, and the programs without cases."""
    started = time.monotonic()
    correct, skipped = load_quixbugs(folder, "correct", limit)
    buggy = {p.id: p for p in load_quixbugs(folder, "buggy", limit)[0]}
    records, passing_anyway, several_hunks = [], [], []
    correct, failing = check_programs(correct, limits)  # for per-program timeouts; a failing one is no reference
    for good in correct:
        bad = buggy.get(good.id)
        if bad is None:
            raise RefereeError(f"{folder}: no buggy version of {good.entry_point} in python_programs/")
        (first, last), (new_first, new_last), hunks = changed_lines(good.source, bad.source, good.entry_point)
        if hunks > 1:
            several_hunks.append(good.id)
        outcome = run_tests(bad.source, bad.tests, _program_limits(good, limits))
        if outcome["passed"]:
            passing_anyway.append(good.id)
            continue
        before, after = SourceText(good.source), SourceText(bad.source)
        original_code, tampered_code = before.lines(first, last), after.lines(new_first, new_last)
        where = f"line {new_first}" if new_last <= new_first else f"lines {new_first}-{new_last}"
        if not tampered_code:
            description = f"Before line {new_first}, `{snippet(original_code)}` was removed: "
        elif not original_code:
            description = f"In {where}, `{snippet(tampered_code)}` was added: "
        else:
            description = f"In {where}, `{snippet(original_code)}` became `{snippet(tampered_code)}`: "
        description += "a real one-line bug from QuixBugs."
        records.append({"id": f"{good.id}/natural/0", "program_id": good.id, "origin": "quixbugs",
                        "entry_point": good.entry_point, "operator": "natural", "line_start": new_first,
                        "line_end": new_last, "original_line_start": first, "original_line_end": last,
                        "original_code": original_code, "tampered_code": tampered_code, "description": description,
                        "source": bad.source, "tests_failed_with": outcome["error"],
                        "timed_out": outcome["timed_out"], "seed": None})
    report = {"programs": len(correct) + len(failing), "records": len(records), "tests_pass_anyway": passing_anyway,
              "skipped_failing_own_tests": failing,
              "several_hunks": several_hunks, "skipped_without_cases": skipped,
              "seconds": round(time.monotonic() - started, 1)}
    return records, report


def changed_lines(correct: str, buggy: str, entry_point: str) -> tuple[tuple[int, int], tuple[int, int], int]:
    """The lines of ``entry_point`` that differ between two versions, comments, blank lines and trailing
    spaces aside: ((first, last) in correct, (first, last) in buggy, number of separate changes). An
    empty span (last = first - 1) is a line one version lacks, placed where it would be."""
    a_lines, a_numbers = _code_lines(correct, entry_point)
    b_lines, b_numbers = _code_lines(buggy, entry_point)
    hunks = [op for op in difflib.SequenceMatcher(None, a_lines, b_lines, autojunk=False).get_opcodes()
             if op[0] != "equal"]
    if not hunks:
        raise RefereeError(f"{entry_point}: the two versions have the same code")
    i1, j1 = hunks[0][1], hunks[0][3]
    i2, j2 = hunks[-1][2], hunks[-1][4]
    return _number_span(a_numbers, i1, i2), _number_span(b_numbers, j1, j2), len(hunks)


def _number_span(numbers: list[int], i: int, j: int) -> tuple[int, int]:
    if j > i:
        return numbers[i], numbers[j - 1]
    at = numbers[i] if i < len(numbers) else numbers[-1] + 1
    return at, at - 1


def _code_lines(source: str, entry_point: str) -> tuple[list[str], list[int]]:
    """The function's non-blank lines with comments and trailing spaces removed, and their line numbers."""
    func = entry_function(ast.parse(source), entry_point)
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.start[1]
    lines, numbers = [], []
    all_lines = source.splitlines()
    for number in range(func.lineno, func.end_lineno + 1):
        line = all_lines[number - 1]
        line = line[:comments[number]] if number in comments else line
        if line.strip():
            lines.append(line.rstrip())
            numbers.append(number)
    return lines, numbers
