"""Math tasks: answer extraction and matching, GSM8K loading, synthetic arithmetic and its step checker,
the exact-answer verifier, stepwise files and the `referee tasks` commands."""

from __future__ import annotations

import json
import random
from fractions import Fraction

import pytest

from conftest import DATA, run_cli
from referee.errors import RefereeError
from referee.rewards import load_solutions, load_steps
from referee.tasks.arithmetic import (Difficulty, check_solution, corrupt_solution, find_calculations,
                                      generate_problems, labelled_record, load_arithmetic, sft_records,
                                      stepwise_records)
from referee.tasks.gsm8k import check_annotations, load_gsm8k, split_held_out
from referee.tasks.math import (MathProblem, Solution, StepwiseRecord, answers_match, extract_answer,
                                format_number, parse_number, safe_eval, split_steps, write_stepwise)
from referee.verifiers.programmatic import ExactAnswerVerifier, summarize

GSM8K = DATA / "gsm8k" / "train.jsonl"


# ---- extraction ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, value, method", [
    ("48 + 24 = 72 clips\n#### 72", 72, "gsm8k"),
    ("#### 1,080", 1080, "gsm8k"),
    ("#### -5", -5, "gsm8k"),
    ("so x = 3\n#### $2,520,000.", 2520000, "gsm8k"),
    (r"Thus the result is \boxed{\frac{3}{4}} overall.", Fraction(3, 4), "boxed"),
    (r"\boxed{\dfrac{1}{2}} and later \boxed{12}", 12, "boxed"),
    (r"\boxed{ {7} }", 7, "boxed"),
    ("The answer is 12 apples.", 12, "announced"),
    ("The answer is: -3.50 dollars", Fraction(-7, 2), "announced"),
    ("Answer: 1/2 of the cake", Fraction(1, 2), "announced"),
    ("Final answer = 0.25.", Fraction(1, 4), "announced"),
    ("The answer is 5. Then I checked: 2 + 2 = 4", 5, "announced"),
    ("So the answer is 12 + 3 = 15 pears.", 15, "announced"),
    ("She has 7 - 3 = 4 left", 4, "last_number"),
    ("It costs $3.50 and 1,250 people came", 1250, "last_number"),
    ("12 - 5", 5, "last_number"),  # a minus between operands is not a sign
    ("temperature fell to -7", -7, "last_number"),
    ("−8 degrees", -8, "last_number"),  # unicode minus
])
def test_extract_answer(text, value, method):
    found = extract_answer(text)
    assert found.found and found.value == value and found.method == method


def test_no_extractable_answer():
    for text in ("", "I do not know.", "The answer is", "#### "):
        assert not extract_answer(text).found
    assert not answers_match(extract_answer("no idea"), "5")


def test_answer_styles_are_strict_when_named():
    assert extract_answer("It is 5", "gsm8k").found is False
    assert extract_answer("#### 7\nthen 9", "last_number").value == 9
    with pytest.raises(RefereeError, match="answer style"):
        extract_answer("5", "nonsense")


@pytest.mark.parametrize("pred, gold, same", [
    ("0.5", "1/2", True), ("1,000", "1000", True), ("72 clips", "72", True), ("$18.00", "18", True),
    ("-3", "3", False), ("0.333", "1/3", False), ("50%", "50", True), (r"\frac{6}{4}", "1.5", True),
    ("Paris", "paris.", True), ("Paris", "5", False), (None, "5", False),
])
def test_answers_match(pred, gold, same):
    assert answers_match(pred, gold) is same


def test_gold_can_be_a_whole_gsm8k_solution():
    assert answers_match("The answer is 72", "Natalia sold 48+24 = 72 clips.\n#### 72")


def test_number_helpers():
    assert parse_number("about 1,234.5 km") == Fraction(2469, 2)
    assert parse_number("none") is None
    assert format_number(Fraction(5, 2)) == "2.5" and format_number(Fraction(1, 3)) == "1/3"
    assert format_number(Fraction(-12)) == "-12"
    assert safe_eval("(3 + 4) x 2 - 10 ÷ 4") == Fraction(23, 2)
    assert safe_eval("1,200 / 3") == 400
    for bad in ("__import__('os')", "2 ** 3", "1/0", "abc"):
        with pytest.raises(ValueError):
            safe_eval(bad)


# ---- GSM8K -----------------------------------------------------------------------------------------
@pytest.mark.data("gsm8k/train.jsonl")
def test_gsm8k_loader_on_real_data():
    data = load_gsm8k(GSM8K, limit=200)
    assert len(data.problems) == 200
    p = data.problems[0]
    assert p.answer.replace(",", "").lstrip("-").isdigit()
    assert p.steps and all("<<" not in s and "####" not in s for s in p.steps)
    # every reference solution's last number in its steps is a readable number; ids are stable
    assert data.problems[5].id == "gsm8k-6"
    kept = load_gsm8k(GSM8K, limit=5, annotations="keep").problems
    assert any("<<" in s for p in kept for s in p.steps)
    # the gold answer is the #### line: reference solutions check out against it
    assert sum(answers_match(extract_answer("\n".join(p.steps)), p.answer) for p in data.problems) > 150


def test_gsm8k_annotations_are_checked(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"question": "q?", "answer": "a = <<2*3=6>>6\nb = <<6+1=8>>8\n#### 8"}) + "\n"
                 + json.dumps({"question": "q2?", "answer": "fine <<10/4=2.5>>2.5\n#### 2.5"}) + "\n")
    data = load_gsm8k(f)
    assert data.bad_annotations == 1
    assert [p.meta["bad_annotations"] for p in data.problems] == [1, 0]
    assert data.problems[0].steps == ["a = 6", "b = 8"]
    assert [c.ok for c in check_annotations("<<1+1=2>> <<2*2=5>> <<x=3>>")] == [True, False, None]


def test_gsm8k_bad_input_names_line_and_field(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "1\n#### 1"}) + "\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(RefereeError, match=r"g.jsonl:2: missing field 'answer'"):
        load_gsm8k(f)
    f.write_text(json.dumps({"question": "q", "answer": "no final line"}) + "\n")
    with pytest.raises(RefereeError, match=r"g.jsonl:1: field 'answer' has no '#### <answer>'"):
        load_gsm8k(f)


def test_held_out_split_is_stable():
    probs = [MathProblem(f"p{i}", "q", "1") for i in range(1000)]
    train, held = split_held_out(probs, 0.2, seed=3)
    assert len(train) + len(held) == 1000 and 150 < len(held) < 250
    _, held_again = split_held_out(list(reversed(probs[:500])), 0.2, seed=3)
    assert {p.id for p in held_again} == {p.id for p in held if int(p.id[1:]) < 500}
    _, other = split_held_out(probs, 0.2, seed=4)
    assert {p.id for p in other} != {p.id for p in held}
    with pytest.raises(RefereeError):
        split_held_out(probs, 1.5)


# ---- synthetic arithmetic --------------------------------------------------------------------------
def test_generator_is_seeded_and_sized():
    a = generate_problems(30, Difficulty(steps=3, max_number=9), seed=7)
    b = generate_problems(10, Difficulty(steps=3, max_number=9), seed=7)
    assert [p.question for p in a[:10]] == [p.question for p in b]
    assert [p.question for p in generate_problems(10, Difficulty(steps=3, max_number=9), seed=8)] != \
        [p.question for p in b]
    for p in a:
        vals = p.meta["values"]
        assert len(vals) == 4 and len(p.steps) == 4 and p.answer == str(vals[-1])
        assert all(isinstance(v, int) and v > 0 for v in vals)
        assert 2 <= vals[0] <= 9
        for op, k in zip(p.meta["ops"], p.meta["operands"]):
            assert (1 <= k <= 9) if op in ("add", "sub") else (2 <= k <= 3)
    only_add = generate_problems(5, Difficulty(steps=2, ops=("add",)), seed=0)
    assert all(op == "add" for p in only_add for op in p.meta["ops"])
    with pytest.raises(RefereeError, match="ops"):
        Difficulty(ops=("pow",))


def test_reference_solutions_check_as_all_correct():
    for p in generate_problems(40, Difficulty(steps=4, max_number=50, max_factor=4), seed=1):
        check = check_solution(p, "\n".join(p.steps))
        assert check.correct and check.first_error is None
        assert [v.label for v in check.steps] == ["correct"] * len(p.steps)


def _problem():
    # 7 apples, +5, -3, *2  -> 7, 12, 9, 18
    return MathProblem("t", "Ada has 7 apples. ...", "18", [],
                       meta={"values": [7, 12, 9, 18], "ops": ["add", "sub", "mul"], "operands": [5, 3, 2]})


def test_step_checker_labels_and_reasons():
    p = _problem()
    check = check_solution(p, "Let me think.\n1. 7 + 5 = 13\n13 - 3 = 10\n10 x 2 = 20\nThe answer is 20.")
    labels = [v.label for v in check.steps]
    assert labels == ["neutral", "wrong", "wrong", "wrong", "wrong"]
    assert "7 + 5 is 12, not 13" in check.steps[1].reason
    assert "does not follow" in check.steps[2].reason
    assert "expected 18" in check.steps[4].reason
    assert check.first_error == 1 and not check.correct

    # combining two events on one line, and restating a value, are fine; arithmetic written with x and $
    ok = check_solution(p, "7 + 5 - 3 = 9\nSo she has 9 = 9 apples\n9 x 2 = 18\n#### 18")
    assert [v.label for v in ok.steps] == ["correct", "correct", "correct", "correct"] and ok.correct

    # right arithmetic on the wrong numbers is wrong; a lucky right final answer is still right
    lucky = check_solution(p, "7 + 4 = 11\n11 - 2 = 9\n9 * 2 = 18\nThe answer is 18")
    assert [v.label for v in lucky.steps] == ["wrong", "correct", "correct", "correct"]
    assert lucky.correct and lucky.first_error == 0


def test_step_checker_no_answer_is_counted():
    check = check_solution(_problem(), "First add the apples.\nI am not sure")
    assert check.no_answer and not check.correct
    assert [v.label for v in check.steps] == ["neutral", "neutral"]


def test_find_calculations_ignores_non_arithmetic():
    calcs = find_calculations("Step 2: she pays $1,200 / 3 = $400, then 3 + 4 = 7; version 2.0 = new")
    assert [c.text for c in calcs] == ["1,200 / 3 = $400", "3 + 4 = 7"]
    assert all(c.holds for c in calcs)
    units = find_calculations("10 apples - 2 apples = 7 apples, and 3 x 4 = 12 boxes")
    assert [(c.text, c.holds) for c in units] == [("10 - 2 = 7", False), ("3 x 4 = 12", True)]


def test_corrupted_solutions_have_exact_labels():
    rng = random.Random(0)
    problems = generate_problems(30, Difficulty(steps=3), seed=2)
    seen = 0
    for p in problems:
        bad = corrupt_solution(p, rng)
        if bad is None:
            continue
        seen += 1
        check = check_solution(p, bad)
        assert not check.correct and check.first_error is not None
        assert all(v.label == "correct" for v in check.steps[:check.first_error])
    assert seen >= 25


def test_writers_sft_and_stepwise(tmp_path):
    problems = generate_problems(6, Difficulty(steps=2), seed=0)
    sft = sft_records(problems)
    assert sft[0]["messages"][0]["role"] == "user" and sft[0]["messages"][1]["content"].endswith(f"{problems[0].answer}.")
    recs = stepwise_records(problems, negatives=1, seed=0)
    assert len(recs) >= 11
    for r in recs:
        assert len(r.completions) == len(r.labels) == 3
        assert (all(r.labels) and r.extra["source"] == "reference") or (not all(r.labels) and r.extra["source"] == "corrupted")
    path = tmp_path / "prm.jsonl"
    write_stepwise(path, recs)
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) >= {"prompt", "completions", "labels"} and first["labels"] == [True, True, True]
    back, stats = load_steps(path)
    assert len(back) == len(recs) and stats.unlabelled == 0 and back[0].meta["source"] == "reference"
    truncated = labelled_record(problems[0], ["1 + 1 = 3", problems[0].steps[0], "The answer is 0"], stop_at_first_error=True)
    assert truncated.completions == ["1 + 1 = 3"] and truncated.labels == [0.0]


def test_problems_file_round_trip(tmp_path):
    problems = generate_problems(4, Difficulty(steps=2), seed=0)
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps(p.to_record()) + "\n" for p in problems))
    back = load_arithmetic(f)
    assert [p.meta["values"] for p in back] == [p.meta["values"] for p in problems]
    f.write_text(json.dumps({"id": "a", "question": "q", "answer": "1"}) + "\n")
    with pytest.raises(RefereeError, match=r"p.jsonl:1: missing field 'meta.values'"):
        load_arithmetic(f)


# ---- stepwise files: bad input ---------------------------------------------------------------------
def test_stepwise_files_read_word_labels_and_name_bad_lines(tmp_path):
    f = tmp_path / "s.jsonl"
    rows = [{"prompt": "q", "completions": ["a", "b", "c"], "labels": [True, None, 0.25]},
            {"prompt": [{"role": "user", "content": "q2"}], "completions": ["a", "b"], "labels": ["neutral", "wrong"]}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data, stats = load_steps(f)
    assert stats.steps == 5 and stats.unlabelled == 1 and stats.neutral == 1
    assert data[0].labels == [1.0, None, 0.25] and data[1].labels == [1.0, 0.0]
    assert data[1].prompt == [{"role": "user", "content": "q2"}]
    assert load_steps(f, neutral="skip")[0][1].labels == [None, 0.0]
    rows.append({"prompt": "q", "completions": ["a", "b"], "labels": [True]})
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RefereeError, match=r"s.jsonl:3: 2 steps in 'completions' but 1 labels"):
        load_steps(f)
    f.write_text(json.dumps({"prompt": "q", "completions": ["a"], "labels": ["maybe"]}) + "\n")
    with pytest.raises(RefereeError, match=r"s.jsonl:1: field 'labels' item 0"):
        load_steps(f)


def test_split_steps_at_line_boundaries_or_at_newlines_only():
    text = " 7 + 5 = 12\r\n\n12 - 3 = 9\rso 9\u2028The answer is 9. \n"
    assert split_steps(text) == ["7 + 5 = 12", "12 - 3 = 9", "so 9", "The answer is 9."]
    # the reward models' reading: a lone carriage return or a Unicode line separator stays inside its step
    assert split_steps(text, newline_only=True) == ["7 + 5 = 12", "12 - 3 = 9\rso 9\u2028The answer is 9."]
    assert split_steps("a\nb") == split_steps("a\nb", newline_only=True) == ["a", "b"]


def test_one_solution_for_outcome_data_and_step_labelling():
    chat = [{"role": "user", "content": "q"}]
    stepwise = Solution.from_steps(chat, ["7 + 5 = 12", "The answer is 12."], "12", "a", {"sample": 1})
    assert stepwise.response == "7 + 5 = 12\nThe answer is 12." and stepwise.label is None
    assert (stepwise.gold, stepwise.id, stepwise.extra) == ("12", "a", {"sample": 1})
    outcome = Solution(chat, "The answer is 12.", 1.0, "b")
    assert outcome.steps == [] and outcome.gold is None and outcome.label == 1.0


def test_stepwise_record_keeps_soft_labels():
    r = StepwiseRecord("q", ["a", "b", "c"], [1.0, 0.5, None]).to_record()
    assert r["labels"] == [True, 0.5, None]


# ---- exact-answer verifier -------------------------------------------------------------------------
def test_exact_verifier_counts_no_answer_apart():
    v = ExactAnswerVerifier({"What is 2+3?": "5"})
    scores = v.score_many(["What is 2+3?"] * 3 + [[{"role": "user", "content": "What is 2+3?"}]],
                          ["2 + 3 = 5\n#### 5", "The answer is 6.", "I cannot say.", "It is 5."])
    assert [s.value for s in scores] == [1.0, 0.0, 0.0, 1.0]
    assert [s.detail["status"] for s in scores] == ["correct", "wrong", "no_answer", "correct"]
    assert all(s.valid for s in scores)
    assert v.counts == {"correct": 2, "wrong": 1, "no_answer": 1}
    assert summarize(scores) == {"n": 4, "correct": 2, "wrong": 1, "no_answer": 1, "accuracy": 0.5}
    assert v.score_many(["other"], ["12"], golds=["12"])[0].value == 1.0
    with pytest.raises(RefereeError, match="no gold answer"):
        v.score("unknown prompt", "5")


# ---- CLI -------------------------------------------------------------------------------------------

def test_cli_arithmetic_writes_all_formats(tmp_path, capsys):
    for fmt in ("problems", "sft", "stepwise"):
        code, _, err = run_cli(["tasks", "arithmetic", "--n", "5", "--steps", "2", "--format", fmt,
                             "--out", str(tmp_path / f"{fmt}.jsonl")], capsys)
        assert code == 0, err
    problems = load_arithmetic(tmp_path / "problems.jsonl")
    assert len(problems) == 5
    assert "messages" in json.loads((tmp_path / "sft.jsonl").read_text().splitlines()[0])
    assert len(load_steps(tmp_path / "stepwise.jsonl")[0]) >= 9


def test_cli_check_scores_samples(tmp_path, capsys):
    problems = generate_problems(3, Difficulty(steps=2), seed=0)
    (tmp_path / "problems.jsonl").write_text("".join(json.dumps(p.to_record()) + "\n" for p in problems))
    samples = [{"id": problems[0].id, "completion": "\n".join(problems[0].steps), "meta": {"answer": problems[0].answer}},
               {"id": problems[1].id, "completion": "I give up", "answer": problems[1].answer},
               {"id": problems[2].id, "completion": "The answer is -1.", "answer": problems[2].answer}]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    code, out, err = run_cli(["tasks", "check", "--task", "arithmetic", "--file", str(tmp_path / "samples.jsonl"),
                           "--problems", str(tmp_path / "problems.jsonl"), "--out", str(tmp_path / "scored.jsonl")], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["correct"] == 1 and report["wrong"] == 1 and report["no_answer"] == 1
    assert report["steps"]["wrong"] >= 1
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [s["status"] for s in scored] == ["correct", "no_answer", "wrong"]
    assert scored[0]["step_labels"] == ["correct"] * 3
    # the checked file is ORM data (field 'correct') and PRM data (TRL stepwise, 1 / 0 / -1) as it stands
    for s, p in zip(samples, problems):
        s["prompt"] = p.prompt()
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    code, _, err = run_cli(["tasks", "check", "--task", "arithmetic", "--file", str(tmp_path / "samples.jsonl"),
                         "--problems", str(tmp_path / "problems.jsonl"), "--out", str(tmp_path / "scored.jsonl")], capsys)
    assert code == 0, err
    assert [s.label for s in load_solutions(tmp_path / "scored.jsonl")] == [1.0, 0.0, 0.0]
    steps, stats = load_steps(tmp_path / "scored.jsonl", neutral="skip")
    assert steps[0].labels == [1.0, 1.0, 1.0] and steps[0].steps == problems[0].steps
    assert steps[2].labels == [0.0] and stats.scheme == "ternary"

    (tmp_path / "bad.jsonl").write_text(json.dumps({"completion": "5"}) + "\n")
    code, _, err = run_cli(["tasks", "check", "--task", "gsm8k", "--file", str(tmp_path / "bad.jsonl")], capsys)
    assert code == 2 and "bad.jsonl:1" in err and "'answer'" in err


@pytest.mark.data("gsm8k/train.jsonl")
def test_cli_gsm8k_export(tmp_path, capsys):
    code, _, err = run_cli(["tasks", "gsm8k", "--file", str(GSM8K), "--limit", "300", "--split", "held_out",
                         "--out", str(tmp_path / "g.jsonl")], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert 10 < len(rows) < 60 and all("prompt" in r and "answer" in r for r in rows)
