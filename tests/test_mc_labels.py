"""Monte-Carlo step labels: rollouts from each step prefix, soft and hard labels, shared prefixes rolled out
once, the prompt fallback, solution files and the `referee tasks mc-label` command."""

from __future__ import annotations

import json
import random

import pytest

from referee.errors import RefereeError
from referee.models.base import Completion, Model, Sampling
from referee.tasks.arithmetic import check_solution
from referee.rewards import load_steps
from referee.tasks.math import MathProblem
from referee.verifiers.mc_labels import Solution, continues_final_message, load_solutions, mc_step_labels

# 7 apples, +5, -3, *2 -> 7, 12, 9, 18
PROBLEM = MathProblem("t", "Ada has 7 apples. She buys 5, eats 3, then doubles them. How many now?", "18", [],
                      meta={"values": [7, 12, 9, 18]})
GOOD = ["7 + 5 = 12", "12 - 3 = 9", "9 * 2 = 18", "The answer is 18."]
BAD = ["7 + 5 = 12", "12 - 3 = 8", "8 * 2 = 16", "The answer is 16."]


class Finisher(Model):
    """A stand-in policy. From a prefix with no wrong step it finishes correctly with probability
    ``p_right`` (drawn from the sample's own seed); from a prefix with a wrong step it cannot recover."""

    spec = "finisher"
    fingerprint = "finisher-v1"
    continues_final_message = True

    def __init__(self, p_right: float = 1.0, prefill: bool = True):
        super().__init__()
        self.p_right = p_right
        self.prefixes: list[str] = []
        if not prefill:
            self.continues_final_message = False

    def _prefix(self, chat) -> str:
        if chat[-1]["role"] == "assistant":
            return chat[-1]["content"]
        text = chat[-1]["content"]
        assert "Here is the beginning of a solution:" in text and PROBLEM.question in text
        return text.split("Here is the beginning of a solution:\n", 1)[1].split("\n\n", 1)[0]

    def _generate(self, requests):
        out = []
        for r in requests:
            prefix = self._prefix(r.chat)
            self.prefixes.append(prefix)
            on_track = check_solution(PROBLEM, prefix).first_error is None
            right = on_track and random.Random(r.seed).random() < self.p_right
            out.append(Completion("So the total is 18.\nThe answer is 18." if right else "The answer is 3.",
                                  5, 5, "stop"))
        return out


def _solutions():
    chat = [{"role": "user", "content": PROBLEM.question}]
    return [Solution.from_steps(chat, GOOD, "18", "good"), Solution.from_steps(chat, BAD, "18", "bad")]


def test_hard_labels_follow_the_first_error():
    policy = Finisher(1.0)
    records = mc_step_labels(policy, _solutions(), k=4, mode="hard")
    assert records[0].labels == [1.0, 1.0, 1.0, 1.0]
    assert records[1].labels == [1.0, 0.0, 0.0, 0.0]
    assert records[0].extra["reached"] == [4, 4, 4] and records[1].extra["reached"] == [4, 0, 0]
    assert records[0].extra["rollout"] == "prefill" and records[1].extra["correct"] is False
    # the shared first step is rolled out once (k samples), the last steps not at all
    assert len(policy.prefixes) == 4 * (1 + 2 + 2)
    assert policy.prefixes.count("7 + 5 = 12") == 4
    assert all(r.to_record()["labels"] in ([True] * 4, [True, False, False, False]) for r in records)


def test_soft_labels_are_fractions_of_rollouts():
    records = mc_step_labels(Finisher(0.5), _solutions(), k=40, mode="soft",
                             sampling=Sampling(temperature=0.7, seed=1))
    good, bad = records
    assert all(0.2 < x < 0.8 for x in good.labels[:3]) and good.labels[3] == 1.0
    assert good.labels[:3] == [c / 40 for c in good.extra["reached"]]
    assert bad.labels[0] == good.labels[0]  # same prefix, same rollouts
    assert bad.labels[1:] == [0.0, 0.0, 0.0]
    # the same seed gives the same labels; another seed other rollouts
    again = mc_step_labels(Finisher(0.5), _solutions(), k=40, mode="soft", sampling=Sampling(temperature=0.7, seed=1))
    assert [r.labels for r in again] == [r.labels for r in records]
    other = mc_step_labels(Finisher(0.5), _solutions(), k=40, mode="soft", sampling=Sampling(temperature=0.7, seed=2))
    assert [r.labels for r in other] != [r.labels for r in records]


def test_prompt_fallback_when_the_model_cannot_continue():
    policy = Finisher(1.0, prefill=False)
    assert not continues_final_message(policy)
    records = mc_step_labels(policy, _solutions(), k=2, mode="hard")
    assert records[0].extra["rollout"] == "prompt" and records[1].labels == [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(RefereeError, match="cannot continue a partial"):
        mc_step_labels(policy, _solutions(), how="prefill")
    with pytest.raises(RefereeError, match="mode"):
        mc_step_labels(policy, _solutions(), mode="medium")
    with pytest.raises(RefereeError, match="k should"):
        mc_step_labels(policy, _solutions(), k=0)


def test_probe_on_a_real_backend(tiny_model):
    """The probe reads the backend's own template: it says prefill only if the render really continues."""
    probe = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "12 + 3 = 15"}]
    assert continues_final_message(tiny_model) == tiny_model.render(probe).rstrip().endswith("12 + 3 = 15")
    records = mc_step_labels(tiny_model, _solutions()[:1], k=2, mode="soft",
                             sampling=Sampling(temperature=1.0, max_new_tokens=8))
    assert len(records[0].labels) == 4 and records[0].labels[3] == 1.0
    assert all(0.0 <= x <= 1.0 for x in records[0].labels)


def test_load_solutions(tmp_path):
    f = tmp_path / "s.jsonl"
    rows = [{"id": "a", "prompt": "q?", "completion": "7 + 5 = 12\n\nThe answer is 12.", "answer": "12"},
            {"prompt": [{"role": "user", "content": "q?"}], "completions": ["x", " "], "meta": {"answer": 3}},
            {"prompt": "q?", "completion": "   ", "answer": "1"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_solutions(f)
    assert [s.steps for s in data.solutions] == [["7 + 5 = 12", "The answer is 12."], ["x"]]
    assert [s.gold for s in data.solutions] == ["12", "3"] and data.empty == 1
    f.write_text(json.dumps({"prompt": "q", "completion": "1"}) + "\n")
    with pytest.raises(RefereeError, match=r"s.jsonl:1: missing field 'answer'"):
        load_solutions(f)
    f.write_text(json.dumps({"prompt": "q", "answer": "1"}) + "\n")
    with pytest.raises(RefereeError, match=r"s.jsonl:1: missing field 'completion'"):
        load_solutions(f)
    f.write_text(json.dumps({"prompt": "q", "completions": "a\nb", "answer": "1"}) + "\n")
    with pytest.raises(RefereeError, match=r"s.jsonl:1: field 'completions'"):
        load_solutions(f)


def test_cli_mc_label(tmp_path, tiny_model_path, capsys):
    from referee.cli import main

    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"prompt": PROBLEM.question, "completion": "\n".join(BAD), "answer": "18"}) + "\n")
    out = tmp_path / "prm.jsonl"
    main(["tasks", "mc-label", "--file", str(f), "--out", str(out), "--policy", f"hf:{tiny_model_path}",
          "--k", "2", "--mode", "hard", "--max-new-tokens", "6", "--run", str(tmp_path / "run")])
    data, stats = load_steps(out)
    assert len(data) == 1 and stats.steps == 4 and data[0].labels[3] == 0.0
    assert (tmp_path / "run" / "records" / "mc_labels.jsonl").exists()


def test_mc_label_run_folder_repeats_with_referee_run(tmp_path, tiny_model_path, capsys, monkeypatch):
    """The command's config.yaml runs again: unchanged, the labels are read back (no rollouts); a changed
    setting or a changed solution recomputes them."""
    import yaml

    from referee import progress
    from referee.cli import main

    monkeypatch.setattr(progress, "_quiet", False)  # the stage runner says what it read back

    f = tmp_path / "s.jsonl"
    f.write_text(json.dumps({"prompt": PROBLEM.question, "completion": "\n".join(BAD), "answer": "18"}) + "\n")
    run = tmp_path / "run"
    main(["tasks", "mc-label", "--file", str(f), "--out", str(tmp_path / "prm.jsonl"), "--policy",
          f"hf:{tiny_model_path}", "--k", "2", "--mode", "hard", "--max-new-tokens", "6", "--run", str(run)])
    first = (run / "records" / "mc_labels.jsonl").read_text()
    assert (tmp_path / "prm.jsonl").read_text() == first
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["protocol"] == "mc_label" and config["k"] == 2
    capsys.readouterr()

    main(["run", str(run / "config.yaml")])
    err = capsys.readouterr().err
    assert "mc_labels: finished earlier with the same inputs, read back" in err
    assert json.loads((run / "ledger.json").read_text())["totals"]["calls"] == 0
    assert (run / "records" / "mc_labels.jsonl").read_text() == first

    config["k"] = 3
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    main(["run", str(run / "config.yaml")])
    assert "mc_labels: its inputs changed since it last ran, recomputing" in capsys.readouterr().err
    assert [json.loads(line)["k"] for line in (run / "records" / "mc_labels.jsonl").read_text().splitlines()] == [3]

    f.write_text(json.dumps({"prompt": PROBLEM.question, "completion": "\n".join(GOOD), "answer": "18"}) + "\n")
    main(["run", str(run / "config.yaml")])
    assert "mc_labels: its inputs changed since it last ran, recomputing" in capsys.readouterr().err
    record = json.loads((run / "records" / "mc_labels.jsonl").read_text())
    assert record["completions"] == GOOD and record["correct"] is True
