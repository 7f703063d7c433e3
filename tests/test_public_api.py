"""The public Python API: only the names in ``referee.__all__`` are used here, as a user's script would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import referee

PAIRS = [{"id": "p1", "prompt": "Name a colour.", "chosen": "Blue, like the sky on a clear day.", "rejected": "Red."},
         {"id": "p2", "prompt": "Say hello.", "answer_a": "Hi.", "answer_b": "Hello there, friend!", "label": "B"}]


def test_every_public_name_is_documented_and_import_referee_loads_no_torch():
    for name in referee.__all__:
        value = getattr(referee, name)
        assert name == "__version__" or value.__doc__, f"referee.{name} has no docstring"
    code = "import referee, sys; print('torch' in sys.modules, referee.supervisor.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "supervisor"]  # the API is imported on first use, and it imports no torch either
    with pytest.raises(AttributeError, match="no attribute 'judge'"):
        referee.judge  # noqa: B018  (a misspelt name is an AttributeError, not a lazy import)


def test_load_model_gives_a_model_that_answers_through_a_cache(tiny_model_path, tmp_path):
    from referee.cache import Cache

    model = referee.load_model(f"hf:{tiny_model_path}", cache=Cache(tmp_path / "calls.sqlite"))
    first = model.generate([[{"role": "user", "content": "Hi"}]])[0][0]
    again = model.generate([[{"role": "user", "content": "Hi"}]])[0][0]
    assert first.completion_tokens >= 1 and again.cached and again.text == first.text


def test_supervisor_reads_every_kind_of_spec_the_command_line_does(tiny_model_path):
    assert hasattr(referee.supervisor("baseline:longer"), "judge_pairs")
    grader = referee.supervisor(f"judge:hf:{tiny_model_path}")
    assert hasattr(grader, "score_many") and "single_1to10" in grader.template.name
    pairwise = referee.supervisor(f"hf:{tiny_model_path}", swap="conservative")
    assert pairwise.swap == "conservative" and hasattr(pairwise, "judge_pairs")
    with pytest.raises(referee.RefereeError, match="judge options \\(swap\\) are for judges of pairs"):
        referee.supervisor("exact", swap="conservative", answers={"q": "1"})
    with pytest.raises(referee.RefereeError, match="swap"):
        referee.supervisor("baseline:longer", swap="sideways")
    with pytest.raises(referee.RefereeError, match="needs gold answers"):
        referee.supervisor("exact")


def test_score_returns_numbers_and_none_where_unreadable():
    answers = {"What is 2 + 2?": "4", "What is 3 + 3?": "6"}
    scores = referee.score("exact", ["What is 2 + 2?", "What is 3 + 3?"], ["The answer is 4.", "The answer is 7."],
                           answers=answers)
    assert scores == [1.0, 0.0]
    with pytest.raises(referee.RefereeError, match="2 prompts but 1 responses"):
        referee.score("exact", ["a", "b"], ["x"], answers=answers)
    with pytest.raises(referee.RefereeError, match="does not score single answers"):
        referee.score(referee.supervisor("baseline:longer"), ["a"], ["x"])


def test_judge_pairs_takes_records_or_a_file_and_any_judge_spec(tiny_model_path, tmp_path):
    records = referee.judge_pairs("baseline:longer", PAIRS)
    assert [(r["id"], r["winner"]) for r in records] == [("p1", "A"), ("p2", "B")]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    assert referee.judge_pairs("baseline:longer", path) == records
    cache = tmp_path / "judge.sqlite"
    llm = referee.judge_pairs(f"hf:{tiny_model_path}", PAIRS, cache=cache, swap="conservative")
    assert [r["id"] for r in llm] == ["p1", "p2"] and all(len(r["orders"]) == 2 for r in llm)
    assert cache.exists() and referee.judge_pairs(f"hf:{tiny_model_path}", PAIRS, cache=cache,
                                                  swap="conservative") == llm
    with pytest.raises(referee.RefereeError, match="judge_pairs: item 1: missing field"):
        referee.judge_pairs("baseline:longer", [{"id": "x", "prompt": "q"}])


def test_run_runs_a_protocol_config_as_the_command_does_and_resumes(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    config = {"protocol": "judge", "judges": ["baseline:longer"], "pairs": str(pairs)}
    result = referee.run(config, out=str(tmp_path / "run"))
    assert result.folder == str(tmp_path / "run") and result.headline
    assert (tmp_path / "run" / "config.yaml").exists() and (tmp_path / "run" / "records" / "judgments.jsonl").exists()
    again = referee.run(tmp_path / "run" / "config.yaml")  # a run folder's own config runs in that folder
    assert again.metrics == result.metrics and again.folder == result.folder
    with pytest.raises(referee.RefereeError, match="missing setting 'protocol'"):
        referee.run({"judges": ["baseline:longer"]})
    secret = "hf_SECRETsecret1234567890"
    with pytest.raises(referee.RefereeError) as e:  # a credential in a spec: refused before any file is written
        referee.run({**config, "judges": [f"hf:{tmp_path}/model?token={secret}"]}, out=str(tmp_path / "leak"))
    assert "SECRET" not in str(e.value) and not (tmp_path / "leak").exists()
