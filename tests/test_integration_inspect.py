"""Referee inside Inspect AI: real Inspect evaluations (the mockllm provider answers, offline) scored by
referee verifiers and a judge on a tiny model, and their logs read back as answers for ``referee judge``."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

from conftest import run_cli
from referee.errors import RefereeError
from referee.verifiers.base import PointwiseVerifier, Score

try:
    import inspect_ai  # noqa: F401
except ImportError:  # CI installs the extra (scripts/setup.sh test): there a missing Inspect fails
    if os.environ.get("CI"):
        raise
    pytest.skip("needs Inspect AI: pip install 'referee[inspect]'", allow_module_level=True)

from inspect_ai import Task  # noqa: E402
from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.dataset import Sample  # noqa: E402
from inspect_ai.model import ModelOutput, ModelUsage, get_model  # noqa: E402
from inspect_ai.solver import generate  # noqa: E402

from referee.integrations.inspect import eval_log_answers, is_eval_log, scorer  # noqa: E402

SYSTEM = "Answer with a number."
# question -> (target, the mock model's reply, exact's score, digits in the reply or None: no digit)
ITEMS = {
    "What is 2+2?": ("4", "2 + 2 = 4. The answer is 4.", 1.0, 4),
    "What is 2+3?": ("6", "The answer is 5.", 0.0, 1),
    "What is 5+5?": ("10", "#### 10", 1.0, 2),
    "What is 3+4?": ("7", "no idea", 0.0, None),  # states no answer: exact says 0, the digit count can't read it
}
IDS = ["a", "b", "c", "d"]


class DigitCount(PointwiseVerifier):
    """A user's verifier: the number of digits in the reply, unreadable (invalid) when it has none."""

    name = "digits"

    def score_many(self, prompts, responses):
        return [Score(float(n), True) if (n := sum(c.isdigit() for c in r)) else Score(None, False, {"why": "no digit"})
                for r in responses]


def digit_verifier():
    return DigitCount()


def mock_model(fails: str | None = None):
    """Inspect's mockllm, replying per question (raising on ``fails``); usage is given so that it counts
    no tokens (tiktoken would download its encoding)."""
    def reply(messages, tools, tool_choice, config):
        question = [m.text for m in messages if m.role == "user"][-1]
        if question == fails:
            raise RuntimeError("the provider went away")
        out = ModelOutput.from_content(model="mockllm", content=ITEMS[question][1])
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    return get_model("mockllm/model", custom_outputs=reply)


def samples():
    out = []
    for sid, (question, (target, *_)) in zip(IDS, ITEMS.items()):
        chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        out.append(Sample(id=sid, input=chat if sid == "d" else question, target=target))
    return out


def run_task(scorers, log_dir, fails: str | None = None):
    [log] = inspect_eval(Task(dataset=samples(), solver=generate(), scorer=scorers), model=mock_model(fails),
                         log_dir=str(log_dir), display="none", fail_on_error=False, retry_on_error=0)
    assert log.status == "success", log.error
    return log


def by_sample(log, name):
    return {s.id: s.scores[name] for s in log.samples}


def results(log, name):
    return next(s for s in log.results.scores if s.name == name)


@pytest.fixture(scope="module")
def programmatic_log(tmp_path_factory):
    """One evaluation scored by the exact check (gold answers from the targets) and by a user's python:
    verifier that cannot read every reply."""
    return run_task([scorer("exact", name="exact"),
                     scorer("python:test_integration_inspect:digit_verifier", name="digits")],
                    tmp_path_factory.mktemp("inspect_logs"))


def test_exact_check_scores_each_sample_against_its_target(programmatic_log):
    scores = by_sample(programmatic_log, "exact")
    assert [scores[i].value for i in IDS] == [item[2] for item in ITEMS.values()]
    assert [scores[i].metadata["detail"]["status"] for i in IDS] == ["correct", "wrong", "correct", "no_answer"]
    assert [scores[i].answer for i in IDS] == ["4", "5", "10", None]
    assert [s.options["supervisor"] for s in programmatic_log.eval.scorers] == [
        "exact", "python:test_integration_inspect:digit_verifier"]
    summary = results(programmatic_log, "exact")
    assert summary.scored_samples == 4 and summary.unscored_samples == 0
    assert summary.metrics["mean"].value == pytest.approx(0.5)
    assert summary.metrics["stderr"].value == pytest.approx(math.sqrt(1 / 3) / 2)  # sample sd / sqrt(n)


def test_an_unreadable_score_is_unscored_and_counted_never_zero(programmatic_log):
    scores = by_sample(programmatic_log, "digits")
    assert [scores[i].value for i in "abc"] == [4.0, 1.0, 2.0]
    unread = scores["d"]
    assert math.isnan(unread.value) and unread.reason == "grader_failed"
    assert unread.metadata["invalid"] is True and "no digit" in unread.explanation
    summary = results(programmatic_log, "digits")
    assert summary.scored_samples == 3 and summary.unscored_samples == 1
    assert summary.metrics["mean"].value == pytest.approx(7 / 3)  # of the answered: a 0 would make it 7 / 4


@pytest.fixture(scope="module")
def judge_log(tiny_model_path, tmp_path_factory):
    """One evaluation graded by an LLM judge on the tiny model, with probability and generative verdicts."""
    spec = f"judge:hf:{tiny_model_path}"
    folder = tmp_path_factory.mktemp("inspect_judge")
    return run_task([scorer(spec, name="probability", cache=folder / "cache.sqlite"),
                     scorer(spec, name="generative", verdict="generative", max_new_tokens=6, max_retries=0)],
                    folder / "logs")


def test_llm_judge_on_a_tiny_model_scores_or_counts_every_sample(judge_log, tiny_model_path):
    read = by_sample(judge_log, "probability")
    assert all(1 <= s.value <= 10 and s.metadata["invalid"] is False for s in read.values())
    assert all(len(s.metadata["detail"]["probs"]) == 10 for s in read.values())
    assert results(judge_log, "probability").unscored_samples == 0
    parsed = by_sample(judge_log, "generative")
    unread = [s for s in parsed.values() if math.isnan(s.value)]
    assert all(s.metadata["invalid"] and s.reason == "grader_failed" for s in unread)
    assert all(1 <= s.value <= 10 for s in parsed.values() if not math.isnan(s.value))  # never a 0 stand-in
    assert unread, "a random 2-layer model wrote a readable [[N]] grade for every sample"
    assert results(judge_log, "generative").unscored_samples == len(unread)
    assert judge_log.eval.scorers[1].options == {
        "supervisor": f"judge:hf:{tiny_model_path}",
        "options": {"verdict": "generative", "max_new_tokens": 6, "max_retries": 0}}


def test_a_log_reads_back_as_answers(programmatic_log, tmp_path):
    expected = [{"id": sid, "prompt": ([{"role": "system", "content": SYSTEM}] if sid == "d" else [])
                 + [{"role": "user", "content": q}], "response": reply, "reference": target}
                for sid, (q, (target, reply, *_)) in zip(IDS, ITEMS.items())]
    assert eval_log_answers(programmatic_log.location) == expected
    from inspect_ai.log import write_eval_log

    as_json = tmp_path / "log.json"
    write_eval_log(programmatic_log, str(as_json), format="json")
    assert is_eval_log(as_json) and eval_log_answers(as_json) == expected


def test_referee_judge_grades_a_log_as_the_scorer_did(judge_log, tiny_model_path, tmp_path, capsys):
    """The same judge reads the same prompts and answers whether Inspect calls it or `referee judge`
    reads the log: the grades agree."""
    run = tmp_path / "run"
    code, out, err = run_cli(["--quiet", "judge", "--mode", "single", "--answers", judge_log.location,
                              "--judge", f"hf:{tiny_model_path}", "--run", str(run)], capsys)
    assert code == 0, err
    records = {r["id"]: r for r in map(json.loads, (run / "records" / "judgments.jsonl").read_text().splitlines())}
    assert sorted(records) == IDS and json.loads(out)["answers"] == 4
    in_inspect = by_sample(judge_log, "probability")
    for sid in IDS:
        assert records[sid]["expected_score"] == pytest.approx(in_inspect[sid].value, abs=1e-4)


def test_samples_that_ended_in_an_error_are_left_out_of_the_answers(tmp_path):
    log = run_task([scorer("exact")], tmp_path, fails="What is 2+3?")
    assert [s.error is not None for s in log.samples] == [False, True, False, False]
    assert [a["id"] for a in eval_log_answers(log.location)] == ["a", "c", "d"]


def test_logs_are_told_from_answer_files_and_bad_logs_are_one_line(tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([{"prompt": "q", "response": "r"}]))
    jsonl = tmp_path / "answers.jsonl"
    jsonl.write_text(json.dumps({"version": 2, "prompt": "q", "response": "r"}) + "\n")
    assert not is_eval_log(answers) and not is_eval_log(jsonl)
    broken = tmp_path / "broken.eval"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(RefereeError, match="broken.eval: not a readable Inspect eval log"):
        eval_log_answers(broken)
    with pytest.raises(RefereeError, match="missing.eval: no such Inspect log"):
        eval_log_answers(tmp_path / "missing.eval")


def test_scorer_options_are_checked_before_any_evaluation(tiny_model_path):
    with pytest.raises(RefereeError, match="unknown option.*verdict"):
        scorer("exact", verdict="generative")
    with pytest.raises(RefereeError, match="setting 'verdict'"):
        scorer(f"judge:hf:{tiny_model_path}", verdict="sometimes")
    with pytest.raises(RefereeError, match="mode single"):
        scorer(f"judge:hf:{tiny_model_path}", mode="pairwise")
    with pytest.raises(RefereeError, match="has no score_many"):
        scorer(object())
    assert callable(scorer(DigitCount()))  # a verifier object as it is


def test_without_inspect_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    from referee.protocols.judge import load_answers

    monkeypatch.setitem(sys.modules, "inspect_ai", None)  # import inspect_ai now raises ImportError
    with pytest.raises(RefereeError, match=r"pip install 'referee\[inspect\]'"):
        scorer("exact")
    log = tmp_path / "run.eval"
    log.write_bytes(b"")
    with pytest.raises(RefereeError, match=r"pip install 'referee\[inspect\]'"):
        load_answers(str(log))
