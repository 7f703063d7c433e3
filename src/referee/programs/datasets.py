"""Code data sets with their tests, for critics: HumanEval (Chen et al. 2021) and QuixBugs (Lin et al. 2017).

A ``Program`` is a whole correct program (``source``) and test code (``tests``) that, appended after it,
raises or exits non-zero when the program is wrong. ``run_tests`` runs the two together in the sandbox.

- HumanEval: ``source`` is prompt + canonical solution; ``tests`` is the task's ``check`` function and a
  call ``check(ENTRY)``. Only lines from ``meta["editable_from_line"]`` on (the canonical solution) are
  the model's; the prompt above them (signature, docstring, helper functions) is given.
- QuixBugs: ``source`` is a file of ``correct_python_programs`` (or of ``python_programs``, the buggy
  originals, each with one real one-line bug); ``tests`` is generated code that calls the function on each
  case of ``json_testcases/NAME.json`` (``[[args...], expected]`` per line) and compares, as QuixBugs' own
  pytest tests do: generators are turned into lists, tuples compare equal to lists, ``sqrt`` is compared
  within its epsilon, and the two cases QuixBugs' own tests skip as too slow (one ``levenshtein``, one
  ``knapsack``) are skipped too (listed in ``meta["skipped_cases"]``). Programs without JSON cases (the
  graph ones, which use ``node.py``) are not loaded; the loader returns their names.

A program whose correct version fails its own tests cannot tell a tampered version from a correct one:
``check_programs`` finds them so that callers skip and report them, never count them.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from referee.errors import RefereeError
from referee.io import read_json_lines, read_records, read_text, require
from referee.paths import data_path
from referee.programs.sandbox import Limits, run_python

HUMANEVAL_FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
DEFAULT_LIMITS = Limits(timeout_s=10.0, cpu_s=10, memory_mb=512)

# Cases QuixBugs' own pytest tests skip ("Takes too long to pass!"): matched on their leading arguments.
SLOW_CASES = {
    "levenshtein": [("amanaplanacanalpanama", "docnoteidissentafastneverpreventsafatnessidietoncod")],
    "knapsack": [(6404180,)],
}
# Programs whose result is a float compared within the tolerance given as their last argument.
TOLERANCE_FROM_LAST_ARG = ("sqrt",)


@dataclass
class Program:
    id: str
    source: str  # the full correct program
    entry_point: str  # the function under test
    tests: str  # appended after ``source``; raises or exits non-zero when the program is wrong
    origin: str  # "humaneval" or "quixbugs"
    meta: dict = field(default_factory=dict)  # where it came from, editable_from_line, skipped cases, ...


def load_humaneval(path: str | os.PathLike, limit: int | None = None) -> list[Program]:
    """HumanEval's tasks as programs (prompt + canonical solution), in file order; a bad line raises naming
    file, line and field."""
    programs = []
    for lineno, obj in read_records(path):
        where = f"{path}:{lineno}"
        values = {name: require(obj, name, str, where) for name in HUMANEVAL_FIELDS}
        if not values["entry_point"].isidentifier():
            raise RefereeError(f"{where}: field 'entry_point' should be a function name, got "
                               f"{values['entry_point']!r}")
        prompt = values["prompt"] if values["prompt"].endswith("\n") else values["prompt"] + "\n"
        source = prompt + values["canonical_solution"]
        _check_parses(source, f"{where}: fields 'prompt' + 'canonical_solution'")
        _check_defines(source, values["entry_point"], f"{where}: field 'entry_point'")
        tests = values["test"].rstrip("\n") + f"\n\n\ncheck({values['entry_point']})\n"
        programs.append(Program(values["task_id"], source, values["entry_point"], tests, "humaneval",
                                {"where": where, "editable_from_line": prompt.count("\n") + 1}))
        if limit is not None and len(programs) >= limit:
            break
    return programs


def load_quixbugs(folder: str | os.PathLike, which: str = "correct",
                  limit: int | None = None) -> tuple[list[Program], list[str]]:
    """QuixBugs programs that have JSON test cases, sorted by name (the first ``limit``), and the names of all
    those that have none (skipped). ``which``: "correct" (correct_python_programs) or "buggy" (python_programs)."""
    folder = data_path(folder)
    subfolder = {"correct": "correct_python_programs", "buggy": "python_programs"}.get(which)
    if subfolder is None:
        raise RefereeError(f"which={which!r}: expected 'correct' or 'buggy'")
    programs_dir, cases_dir = folder / subfolder, folder / "json_testcases"
    for needed in (programs_dir, cases_dir):
        if not needed.is_dir():
            raise RefereeError(f"{needed}: no such folder (expected a QuixBugs checkout with {subfolder}/ and "
                               "json_testcases/)")
    programs, skipped = [], []
    for name in quixbugs_names(programs_dir):
        cases_path = cases_dir / f"{name}.json"
        if not cases_path.exists():
            skipped.append(name)
            continue
        if limit is not None and len(programs) >= limit:
            continue
        source_path = programs_dir / f"{name}.py"
        source = read_text(source_path)
        _check_parses(source, str(source_path))
        _check_defines(source, name, f"{source_path}: function '{name}'")
        cases, slow = read_quixbugs_cases(cases_path, name)
        programs.append(Program(f"quixbugs/{name}", source, name, quixbugs_harness(name, cases), "quixbugs",
                                {"where": str(source_path), "which": which, "cases": len(cases),
                                 "skipped_cases": slow, "editable_from_line": 1}))
    return programs, skipped


def quixbugs_names(programs_dir: Path) -> list[str]:
    """The programs of a QuixBugs folder: its .py files less the graph tests and the shared ``node.py``."""
    return sorted(p.stem for p in programs_dir.glob("*.py") if not p.stem.endswith("_test") and p.stem != "node")


def read_quixbugs_cases(path: Path, name: str) -> tuple[list[tuple[int, list, object]], list[int]]:
    """(line, args, expected) per case of a QuixBugs JSON file, and the lines of the slow cases left out."""
    cases, slow = [], []
    for lineno, case in read_json_lines(path):
        if not (isinstance(case, list) and len(case) == 2 and isinstance(case[0], list)):
            raise RefereeError(f"{path}:{lineno}: expected a case [[arguments...], expected result], got "
                               f"{json.dumps(case)[:80]}")
        args, expected = case
        if any(tuple(args[:len(p)]) == p for p in SLOW_CASES.get(name, ())):
            slow.append(lineno)
            continue
        cases.append((lineno, args, expected))
    if not cases:
        raise RefereeError(f"{path}: no test cases")
    return cases, slow


_HARNESS = '''

# --- tests (generated by referee from QuixBugs' json_testcases) ---
def _referee_plain(value):
    import inspect
    if inspect.isgenerator(value):
        value = list(value)
    if isinstance(value, (list, tuple)):
        return [_referee_plain(v) for v in value]
    return value


def _referee_check():
    import copy, json
    for line, args, expected in json.loads(_REFEREE_CASES):
        got = _referee_plain({entry}(*copy.deepcopy(args)))
        tolerance = {tolerance}
        if tolerance is not None and isinstance(got, (int, float)) and not isinstance(got, bool):
            same = abs(got - expected) <= tolerance
        else:
            same = got == expected
        shown = ", ".join(repr(a) for a in args)
        assert same, (f"case at line {{line}} of {name}.json: {entry}({{shown[:200]}}) returned "
                      f"{{repr(got)[:200]}}, expected {{repr(expected)[:200]}}")


_REFEREE_CASES = {cases!r}
_referee_check()
'''


def quixbugs_harness(name: str, cases: list[tuple[int, list, object]]) -> str:
    """Test code calling ``name`` on each case and asserting the result, the message naming the case."""
    tolerance = "args[-1]" if name in TOLERANCE_FROM_LAST_ARG else "None"
    return _HARNESS.format(entry=name, name=name, tolerance=tolerance, cases=json.dumps(cases))


def run_tests(program_source: str, tests: str, limits: Limits | None = None) -> dict:
    """Run a program with its tests appended in the sandbox. ``error`` is the last line of stderr (the
    exception), "timed out after Ns" or "exit status N"; None when the tests pass."""
    limits = limits or DEFAULT_LIMITS
    result = run_python(program_source.rstrip("\n") + "\n\n" + tests, limits)
    error = None
    if not result.ok:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if result.timed_out:
            error = f"timed out after {limits.timeout_s:g}s"
        elif lines:
            error = lines[-1].strip()[:500]
        else:
            error = f"exit status {result.returncode}"
    return {"passed": result.ok, "timed_out": result.timed_out, "returncode": result.returncode, "error": error,
            "seconds": round(result.seconds, 3)}


def check_programs(programs: list[Program], limits: Limits | None = None,
                   on_program=None) -> tuple[list[Program], list[dict]]:
    """Run each program's own tests on its correct source: (the programs that pass, one row per program that
    fails: id, error, timed_out). The passing ones get ``meta["test_seconds"]`` (for per-program timeouts).
    ``on_program(program)`` is called after each (progress)."""
    passing, failing = [], []
    for program in programs:
        if on_program is not None:
            on_program(program)
        outcome = run_tests(program.source, program.tests, limits)
        if outcome["passed"]:
            program.meta["test_seconds"] = outcome["seconds"]
            passing.append(program)
        else:
            failing.append({"id": program.id, "error": outcome["error"], "timed_out": outcome["timed_out"]})
    return passing, failing


def _check_parses(source: str, where: str) -> None:
    try:
        ast.parse(source)
    except SyntaxError as e:
        raise RefereeError(f"{where}: not valid Python (line {e.lineno}: {e.msg})") from None


def _check_defines(source: str, name: str, where: str) -> None:
    """The function under test must be defined at the top level, where tampering looks for it."""
    tree = ast.parse(source)
    if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body):
        raise RefereeError(f"{where}: no top-level function named {name!r} in the program")

