"""The supervisor factory (``referee.supervisors``): every judge and verifier is built there, and each spec
form works wherever a command takes a judge."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from conftest import run_cli

from referee.errors import RefereeError
from referee.judges.build import JudgeConfig
from referee.supervisors import build_judge, build_verifier, judge_identity

SRC = Path(__file__).resolve().parents[1] / "src" / "referee"
# Classes that judge or verify, and the loader of saved verifiers: made by the factory, or inside the
# packages that define them (judges/, rewards/, verifiers/), nowhere else.
SUPERVISOR_CLASSES = {"GradingJudge", "PairwiseJudge", "Panel", "LongerJudge", "RandomJudge", "ScoredPairJudge",
                      "ExactAnswerVerifier", "RewardModel", "OutcomeRM", "ProcessRM", "load_verifier"}
MAKERS = ("judges", "rewards", "verifiers")


def _called_name(call: ast.Call) -> str | None:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def test_no_judge_or_verifier_is_constructed_outside_the_factory():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in MAKERS or rel == Path("supervisors.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _called_name(node) in SUPERVISOR_CLASSES:
                found.append(f"{rel}:{node.lineno} {_called_name(node)}(")
    assert not found, "build these through referee.supervisors:\n" + "\n".join(found)


def toy_pairs(n, seed=0):
    import random

    from referee.rewards.data import PreferencePair

    rng = random.Random(seed)
    words = ["apple", "river", "stone", "cloud", "green", "music"]
    return [PreferencePair([{"role": "user", "content": f"Tell me about {rng.choice(words)} {i}."}],
                           f"{rng.choice(words)} certainly", f"{rng.choice(words)} maybe", str(i)) for i in range(n)]


@pytest.fixture(scope="module")
def rm_folder(tiny_model_path, tmp_path_factory) -> Path:
    """A tiny Bradley-Terry reward model that learnt to prefer 'certainly' over 'maybe'."""
    from referee.rewards.bradley_terry import train_reward_model
    from referee.rewards.training import TrainOptions

    rm, _ = train_reward_model(f"hf:{tiny_model_path}", toy_pairs(48), TrainOptions(epochs=25, batch_size=16))
    folder = tmp_path_factory.mktemp("rm") / "rm"
    rm.save(folder)
    return folder


def test_referee_judge_reads_pairs_with_a_reward_model(rm_folder, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"Tell me about apple {i}.", "answer_a": "river certainly", "answer_b": "river maybe",
             "label": "A"} for i in range(3)]
    rows += [{"prompt": f"Tell me about stone {i}.", "answer_a": "cloud maybe", "answer_b": "cloud certainly",
              "label": "B"} for i in range(3)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "verdicts.jsonl"
    code, stdout, _ = run_cli(["judge", "--judge", f"rm:{rm_folder}", "--pairs", str(pairs), "--out", str(out),
                               "--run", str(tmp_path / "run")], capsys)
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["winner"] for r in records] == ["A"] * 3 + ["B"] * 3  # the RM's learnt preference, either side
    assert all(r["verdict_mode"] == "score" and len(r["scores"]) == 2 for r in records)
    summary = json.loads(stdout)
    assert summary["pairs"] == 6 and summary["win_rate_a"] == 0.5 and summary["invalid_rate"] == 0
    # a reward model has no position prior to divide out and grades nothing in mode single
    code, _, stderr = run_cli(["judge", "--judge", f"rm:{rm_folder}", "--pairs", str(pairs), "--calibration",
                               "batch", "--run", str(tmp_path / "run2")], capsys)
    assert code == 2 and "no position prior" in stderr


def test_a_reward_model_judge_is_keyed_by_its_files_and_refuses_grading(rm_folder):
    key = judge_identity(f"rm:{rm_folder}", JudgeConfig(), load_model=None)
    assert set(key) == {"rm"} and "head.safetensors" in key["rm"]
    with pytest.raises(RefereeError, match="judges pairs"):
        build_judge(f"rm:{rm_folder}", JudgeConfig(mode="single"), load_model=None)
    with pytest.raises(RefereeError, match="no reward model folder"):
        judge_identity(f"rm:{rm_folder}-missing", JudgeConfig(), load_model=None)


def test_python_spec_calls_the_users_function_with_its_argument(tmp_path, monkeypatch):
    (tmp_path / "my_checks.py").write_text("def make(arg=None):\n    return ('made', arg)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert build_verifier("python:my_checks:make") == ("made", None)
    assert build_verifier("python:my_checks:make@some/file@v2") == ("made", "some/file@v2")
    with pytest.raises(RefereeError, match="cannot import"):
        build_verifier("python:my_checks:missing")
    with pytest.raises(RefereeError, match="python:MODULE:FUNCTION"):
        build_verifier("python:my_checks")
