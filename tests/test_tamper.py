"""Tampering inserts bugs its records describe exactly, and keeps only the ones the tests catch.

Operators are checked on a hand-written program (exact spans and text, nothing outside the function body);
tampering on tiny programs with an equivalent (dead-code) mutation, duplicates and a broken reference; then
the real data: HumanEval's first tasks and QuixBugs (correct programs pass, real bugs fail, their spans).
"""

from __future__ import annotations

import ast
import gzip
import json
import subprocess
import sys

import pytest

from conftest import DATA, REPO
from referee.errors import RefereeError
from referee.programs import tamper as T
from referee.programs.datasets import (Program, check_programs, load_humaneval, load_quixbugs, run_tests)
from referee.programs.sandbox import Limits

HUMANEVAL = DATA / "humaneval" / "HumanEval.jsonl.gz"
QUIXBUGS = DATA / "quixbugs"
needs_humaneval = pytest.mark.data("humaneval/HumanEval.jsonl.gz")
needs_quixbugs = pytest.mark.data("quixbugs/correct_python_programs", "quixbugs/python_programs", "quixbugs/json_testcases")
FAST = Limits(timeout_s=5, cpu_s=5)

SAMPLE = (
    "import math\n"                                        # 1
    "\n"                                                   # 2
    "\n"                                                   # 3
    "def scaled_sum(xs, k):\n"                             # 4
    '    """Sum of the first k items (k < 10), doubled."""\n'  # 5
    "    if k > len(xs) or not xs:\n"                      # 6
    "        return -1\n"                                  # 7
    "    total = 0\n"                                      # 8
    "    for i in range(k):\n"                             # 9
    "        if xs[i] >= 0:\n"                             # 10
    "            total = total + xs[i] * 2\n"              # 11
    "    return pow(total, 1) - math.floor(0.5)\n"         # 12
)
SAMPLE_LINES = SAMPLE.split("\n")


def _find(mutations, line, tampered_code):
    found = [m for m in mutations if m.line_start == line and m.tampered_code == tampered_code]
    assert found, f"no mutation gives line {line} as {tampered_code!r}; got " + repr(
        [(m.line_start, m.tampered_code) for m in mutations])
    return found[0]


def _check_in_place(m, first, last, original, tampered):
    """A one-line-or-more edit: the record's spans and text, and the rest of the program untouched."""
    assert (m.original_line_start, m.original_line_end) == (first, last)
    assert m.original_code == original == "\n".join(SAMPLE_LINES[first - 1:last])
    new_lines = m.source.split("\n")
    assert m.tampered_code == tampered == "\n".join(new_lines[m.line_start - 1:m.line_end])
    assert new_lines[:m.line_start - 1] == SAMPLE_LINES[:first - 1]
    assert new_lines[m.line_end:] == SAMPLE_LINES[last:]
    ast.parse(m.source)


@pytest.mark.parametrize("operator, line, original, tampered, said", [
    ("off_by_one", 9, "    for i in range(k):", "    for i in range(k + 1):", "`range(k)` became `range(k + 1)`"),
    ("flip_comparison", 10, "        if xs[i] >= 0:", "        if xs[i] > 0:", "`xs[i] >= 0` became `xs[i] > 0`"),
    ("flip_boolean", 6, "    if k > len(xs) or not xs:", "    if k > len(xs) and not xs:", "became `k > len(xs) and"),
    ("wrong_operator", 11, "            total = total + xs[i] * 2", "            total = total - xs[i] * 2",
     "`total + xs[i] * 2` became `total - xs[i] * 2`"),
    ("swap_arguments", 12, "    return pow(total, 1) - math.floor(0.5)", "    return pow(1, total) - math.floor(0.5)",
     "two arguments of `pow` are swapped"),
    ("wrong_constant", 8, "    total = 0", "    total = 1", "`total = 0` became `total = 1`"),
    ("wrong_return", 12, "    return pow(total, 1) - math.floor(0.5)", "    return total", "`return total`"),
    ("wrong_return", 7, "        return -1", "        return None", "None is returned"),
    ("drop_statement", 7, "        return -1", "        pass", "`return -1` became `pass`"),  # the block would be empty
])
def test_each_operator_makes_the_edit_its_record_describes(operator, line, original, tampered, said):
    mutations = getattr(T, operator)(SAMPLE, "scaled_sum")
    m = _find(mutations, line, tampered)
    _check_in_place(m, line, line, original, tampered)
    assert m.operator == operator and said in m.description and m.description.startswith(f"In line {line}, ")
    for other in mutations:  # never the import, the signature or the docstring; always a parseable change
        assert other.original_line_start >= 6 and other.source.split("\n")[:5] == SAMPLE_LINES[:5]
        assert ast.dump(ast.parse(other.source)) != ast.dump(ast.parse(SAMPLE))


def test_a_removed_statement_leaves_an_empty_span_where_it_was():
    mutations = T.drop_statement(SAMPLE, "scaled_sum")
    m = next(m for m in mutations if m.original_line_start == 6)  # the two-line `if` guard
    assert (m.original_line_end, m.line_start, m.line_end, m.tampered_code) == (7, 6, 5, "")
    assert m.original_code == "    if k > len(xs) or not xs:\n        return -1"
    assert m.source.split("\n") == SAMPLE_LINES[:5] + SAMPLE_LINES[7:]
    assert m.description.startswith("In line 6, `if k > len(xs) or not xs: return -1` was removed")
    simple = next(m for m in mutations if m.original_line_start == 8)
    assert (simple.line_start, simple.line_end, simple.original_code) == (8, 7, "    total = 0")


def test_edits_keep_the_formatting_around_them_and_respect_precedence():
    source = 'def f(a, b, c, x, i):\n    y = "é€" + x[i]  # note\n    return (a - b) - c if a<b  else a - b * c\n'
    lines = source.split("\n")
    m = _find(T.off_by_one(source, "f"), 2, '    y = "é€" + x[i + 1]  # note')  # columns are bytes in the AST
    assert m.source.split("\n")[2] == lines[2]
    m = _find(T.flip_comparison(source, "f"), 3, "    return (a - b) - c if a<=b  else a - b * c")
    swapped = [m.tampered_code for m in T.swap_arguments(source, "f")]
    assert "    return c - (a - b) if a<b  else a - b * c" in swapped  # not `(c) - a - b`
    assert "    return (a - b) - c if a<b  else a - (b + c)" in [m.tampered_code for m in T.wrong_operator(source, "f")]


def test_only_lines_from_first_line_on_are_mutated():
    source = "def f(xs):\n    n = len(xs)\n    return xs[n - 1] + 1\n"
    assert 2 in {m.original_line_start for op in T.OPERATORS for m in T.candidates(source, "f", op)[0]}
    assert all(m.original_line_start >= 3 for op in T.OPERATORS for m in T.candidates(source, "f", op, 3)[0])
    with pytest.raises(RefereeError, match="no top-level function named 'g'"):
        T.off_by_one(source, "g")


DEAD_CODE = Program("toy/dead", "def double(x):\n    if False:\n        return x + 100\n    return x * 2\n", "double",
                    "assert double(3) == 6 and double(0) == 0\n", "humaneval", {})


def test_tamper_keeps_only_mutations_the_tests_catch():
    records, report = T.tamper([DEAD_CODE], per_program=5, operators=["wrong_constant"], limits=FAST)
    counts = report["operators"]["wrong_constant"]
    assert (counts["candidates"], counts["tried"], counts["kept"], counts["rejected_tests_passed"]) == (2, 2, 1, 1)
    assert report["rejected_share_tests_passed"] == 0.5
    [r] = records  # `x + 100` -> `x + 101` is dead code: its tests pass, so it is rejected
    assert (r["line_start"], r["line_end"], r["original_code"], r["tampered_code"]) == (
        4, 4, "    return x * 2", "    return x * 3")
    assert r["id"] == "toy/dead/wrong_constant/1" and r["program_id"] == "toy/dead" and r["origin"] == "humaneval"
    assert r["tests_failed_with"] == "AssertionError" and not r["timed_out"]
    assert not run_tests(r["source"], DEAD_CODE.tests, FAST)["passed"]


def test_a_mutation_that_loops_forever_is_kept_as_timed_out():
    program = Program("toy/loop", "def count(n):\n    i = 0\n    while i < n:\n        i += 1\n    return i\n", "count",
                      "assert count(5) == 5\n", "quixbugs", {})
    records, report = T.tamper([program], operators=["wrong_operator"], limits=Limits(timeout_s=1.5, cpu_s=2))
    [r] = records
    assert r["tampered_code"] == "        i -= 1" and r["timed_out"] and r["tests_failed_with"].startswith("timed out")
    assert report["operators"]["wrong_operator"]["timed_out"] == 1


def test_duplicates_across_operators_are_tried_once():
    program = Program("toy/sign", 'def sign(x):\n    if x < 1:\n        return "small"\n    return "big"\n', "sign",
                      'assert sign(0) == "small" and sign(1) == "big"\n', "humaneval", {})
    records, report = T.tamper([program], per_program=10, operators=["off_by_one", "wrong_constant"], limits=FAST)
    sources = [ast.dump(ast.parse(r["source"])) for r in records]
    assert len(sources) == len(set(sources)) == 2  # `x < 2` and `x < 0`; wrong_constant's `x < 0` is the same
    assert sum(c["duplicates"] for c in report["operators"].values()) == 1


def test_same_seed_same_records_and_other_seeds_choose_otherwise():
    program = Program("toy/list", "def f():\n    return [10, 20, 30, 40, 50, 60, 70, 80]\n", "f",
                      "assert f() == [10, 20, 30, 40, 50, 60, 70, 80]\n", "humaneval", {})
    runs = {seed: T.tamper([program], seed=seed, per_program=1, operators=["wrong_constant"], limits=FAST)[0]
            for seed in range(4)}
    again = T.tamper([program], seed=0, per_program=1, operators=["wrong_constant"], limits=FAST)[0]
    assert again == runs[0] and len(runs[0]) == 1
    assert len({r[0]["id"] for r in runs.values()}) > 1


def test_a_program_failing_its_own_tests_is_skipped_and_reported():
    broken = Program("toy/broken", "def one():\n    return 2\n", "one", "assert one() == 1, 'one is not 1'\n",
                     "humaneval", {})
    records, report = T.tamper([broken, DEAD_CODE], per_program=1, operators=["wrong_constant"], limits=FAST)
    assert [r["program_id"] for r in records] == ["toy/dead"]
    assert report["skipped_failing_own_tests"] == [
        {"id": "toy/broken", "error": "AssertionError: one is not 1", "timed_out": False}]
    assert report["programs"] == 2 and report["tampered"] == 1
    passing, failing = check_programs([broken], FAST)
    assert passing == [] and failing[0]["id"] == "toy/broken"


@needs_humaneval
def test_humaneval_solutions_pass_and_tampered_versions_fail():
    programs = load_humaneval(HUMANEVAL, limit=10)
    assert [p.id for p in programs] == [f"HumanEval/{i}" for i in range(10)]
    records, report = T.tamper(programs, per_program=1)
    assert report["skipped_failing_own_tests"] == [] and report["tampered"] == 10 and len(records) == 10
    by_id = {p.id: p for p in programs}
    for r in records:
        program = by_id[r["program_id"]]
        assert r["original_line_start"] >= program.meta["editable_from_line"]  # the solution, not the prompt
        assert r["source"].startswith(program.source.split("\n")[0])
        assert "\n".join(program.source.split("\n")[r["original_line_start"] - 1:r["original_line_end"]]) == \
            r["original_code"]
        assert not run_tests(r["source"], program.tests)["passed"]


@needs_quixbugs
def test_quixbugs_correct_programs_pass_and_real_bugs_fail_at_their_lines():
    records, report = T.natural_bugs(QUIXBUGS)
    print("QuixBugs bugs the JSON cases do not catch:", report["tests_pass_anyway"])
    assert report["skipped_failing_own_tests"] == []  # every correct program passes its own cases
    assert report["programs"] == 31 and len(report["skipped_without_cases"]) == 9
    assert len(records) >= 28  # (all 31 here)
    correct = {p.id: p.source.split("\n") for p in load_quixbugs(QUIXBUGS, "correct")[0]}
    for r in records:
        buggy = r["source"].split("\n")
        assert "\n".join(correct[r["program_id"]][r["original_line_start"] - 1:r["original_line_end"]]) == \
            r["original_code"]
        assert "\n".join(buggy[r["line_start"] - 1:r["line_end"]]) == r["tampered_code"]
    by_name = {r["entry_point"]: r for r in records}
    bitcount = by_name["bitcount"]
    assert (bitcount["line_start"], bitcount["original_code"].strip(), bitcount["tampered_code"].strip()) == (
        5, "n &= n - 1", "n ^= n - 1")
    missing = by_name["shunting_yard"]  # the bug is a missing line: an empty span in the buggy program
    assert missing["tampered_code"] == "" and missing["line_end"] == missing["line_start"] - 1
    assert missing["original_code"].strip() == "opstack.append(token)"


def _write_quixbugs(folder, cases: str):
    for sub in ("correct_python_programs", "python_programs", "json_testcases"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "correct_python_programs" / "add.py").write_text("def add(a, b):\n    return a + b\n")
    (folder / "python_programs" / "add.py").write_text("def add(a, b):\n    return a - b\n")
    (folder / "correct_python_programs" / "graph.py").write_text("def graph(node):\n    return node\n")
    (folder / "json_testcases" / "add.json").write_text(cases)


def test_quixbugs_harness_and_skipped_programs(tmp_path):
    _write_quixbugs(tmp_path, "[[1, 2], 3]\n\n[[[1], [2]], [1, 2]]\n")
    programs, skipped = load_quixbugs(tmp_path)
    assert [p.id for p in programs] == ["quixbugs/add"] and skipped == ["graph"]
    assert run_tests(programs[0].source, programs[0].tests, FAST)["passed"]
    buggy = load_quixbugs(tmp_path, "buggy")[0][0]
    outcome = run_tests(buggy.source, buggy.tests, FAST)
    assert not outcome["passed"] and outcome["error"] == (
        "AssertionError: case at line 1 of add.json: add(1, 2) returned -1, expected 3")


def test_bad_input_names_file_line_and_field(tmp_path):
    not_json = tmp_path / "he.jsonl"
    not_json.write_text('{"task_id": "a"}\nthis is not json\n')
    with pytest.raises(RefereeError, match=r"he\.jsonl:1: missing field 'prompt'"):
        load_humaneval(not_json)
    not_json.write_text(json.dumps({"task_id": "a", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
                                    "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"})
                        + "\nthis is not json\n")
    with pytest.raises(RefereeError, match=r"he\.jsonl:2: not valid JSON"):
        load_humaneval(not_json)
    gz = tmp_path / "he.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.write(json.dumps({"task_id": "a", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
                            "test": "x", "entry_point": "g"}) + "\n")
    with pytest.raises(RefereeError, match=r"he\.jsonl\.gz:1: field 'entry_point': no top-level function named 'g'"):
        load_humaneval(gz)
    _write_quixbugs(tmp_path / "qb", "[[1, 2], 3]\n[1, 2, 3]\n")
    with pytest.raises(RefereeError, match=r"add\.json:2: expected a case \[\[arguments"):
        load_quixbugs(tmp_path / "qb")
    _write_quixbugs(tmp_path / "qb", "[[1, 2], 3\n")
    with pytest.raises(RefereeError, match=r"add\.json:1: not valid JSON"):
        load_quixbugs(tmp_path / "qb")
    with pytest.raises(RefereeError, match="no such folder"):
        load_quixbugs(tmp_path / "nowhere")
    with pytest.raises(RefereeError, match="unknown mutation operator"):
        T.tamper([DEAD_CODE], operators=["typo"])


@needs_humaneval
@needs_quixbugs
def test_the_cli_writes_records_and_prints_the_report(tmp_path):
    out = tmp_path / "tampered.jsonl"
    command = [sys.executable, "-m", "referee", "critics", "tamper", "--humaneval", str(HUMANEVAL), "--quixbugs",
               str(QUIXBUGS), "--out", str(out), "--limit", "5", "--per-program", "1", "--seed", "3"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 10 and {r["origin"] for r in records} == {"humaneval", "quixbugs"}
    assert {"id", "operator", "line_start", "line_end", "original_code", "tampered_code", "description", "source",
            "tests_failed_with"} <= set(records[0])
    assert "off_by_one" in done.stdout and "rejected because the tests still passed" in done.stdout
    assert "without JSON test cases, skipped (9)" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "referee", "critics", "tamper", "--out", str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: give --humaneval FILE, --quixbugs DIR or both"


@needs_humaneval
def test_two_bugs_at_once_keep_both_spans_and_fail_the_tests():
    from referee.critics.metrics import score_critique
    from referee.programs.multi_bug import apply_records, two_bug_programs

    programs = load_humaneval(HUMANEVAL, limit=4)
    records, _ = T.tamper(programs, per_program=3)
    by_id = {p.id: p for p in programs}
    for r in records:  # one record applied line by line gives back its own tampered program
        assert apply_records(by_id[r["program_id"]].source, [r])[0].rstrip("\n") == r["source"].rstrip("\n")
    two, report = two_bug_programs({p.id: p.source for p in programs}, records, {p.id: p.tests for p in programs})
    assert two and report["kept"] == len(two) <= 4 and report["pairs_tried"] >= report["kept"]
    parts = {r["id"]: r for r in records}
    for t in two:
        a, b = (parts[i] for i in t["parts"])
        assert not run_tests(t["source"], by_id[t["program_id"]].tests)["passed"]
        lines = t["source"].splitlines()
        for (start, end), r in zip(t["spans"], sorted((a, b), key=lambda r: r["original_line_start"])):
            assert "\n".join(lines[start - 1:end]) == r["tampered_code"]  # each bug where its span says
        # a critique quoting one of the two bugs is half comprehensive
        first = next(r for r in (a, b) if r["tampered_code"].strip())
        critique = f"<quote>{first['tampered_code'].strip()}</quote> is wrong."
        assert score_critique(critique, t["source"], [tuple(s) for s in t["spans"]])["comprehensive"] == 0.5
