"""Bugs written by a model are checked like the programmatic ones; every other reply is counted by why."""

from __future__ import annotations

from referee.critics.model_tamper import judge_reply, model_tamper
from referee.models.base import Sampling
from referee.programs.datasets import Program

SOURCE = "def add(a, b):\n    total = a + b\n    return total\n"
PROGRAM = Program("toy/add", SOURCE, "add", "assert add(2, 3) == 5\nassert add(0, 0) == 0\n", "toy")


def reply(code: str, bug: str = "Bug: plus became minus.") -> str:
    return f"Sure.\n```python\n{code}```\n{bug}"


def test_a_real_bug_is_kept_with_its_lines_and_sentence():
    outcome, record = judge_reply(PROGRAM, reply(SOURCE.replace("a + b", "a - b")), "m")
    assert outcome == "kept"
    assert (record["line_start"], record["line_end"]) == (2, 2)
    assert record["original_code"] == "    total = a + b" and record["tampered_code"] == "    total = a - b"
    assert record["description"] == "plus became minus." and record["operator"] == "model"


def test_replies_that_make_no_bug_are_counted_by_why():
    assert judge_reply(PROGRAM, "I would rather not.", "m") == ("no_program", None)
    assert judge_reply(PROGRAM, reply("def add(a, b:\n    return\n"), "m") == ("unparseable", None)
    assert judge_reply(PROGRAM, reply("def plus(a, b):\n    return a + b\n"), "m") == ("function_missing", None)
    assert judge_reply(PROGRAM, reply(SOURCE.replace("total = a + b", "total = a + b  # sneaky")), "m") == \
        ("unchanged", None)
    assert judge_reply(PROGRAM, reply(SOURCE.replace("total = a + b", "total = b + a")), "m") == \
        ("tests_passed", None)  # an equivalent change is no bug


def test_model_tamper_with_a_real_model_counts_every_reply(tiny_model):
    records, report = model_tamper(tiny_model, [PROGRAM], Sampling(temperature=0.0, max_new_tokens=8))
    assert report["programs"] == 1 and sum(report[k] for k in report if k != "programs") == 1
    assert len(records) == report["kept"]
