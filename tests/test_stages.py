"""The stage runner: finished stages are read back only for the same inputs, written atomically, and
charged to the ledger under their own name."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from referee.errors import RefereeError
from referee.io import write_jsonl
from referee.runs import Run, fingerprint


@dataclass
class Item:
    id: str
    text: str


def _counting(records):
    calls = []

    def compute():
        calls.append(1)
        return records

    return compute, calls


def test_same_inputs_read_back_changed_inputs_recompute(tmp_path, capsys, monkeypatch):
    from referee import progress

    monkeypatch.setattr(progress, "_quiet", False)
    items = [Item("1", "a"), Item("2", "b")]
    compute, calls = _counting([{"id": "1", "v": 1}, {"id": "2", "v": 2}])
    with Run(tmp_path) as run:
        first = run.run_stage("judge", {"items": items, "settings": {"swap": "none"}}, compute)
    with Run(tmp_path) as run:
        again = run.run_stage("judge", {"items": items, "settings": {"swap": "none"}}, compute)
    assert calls == [1] and again == first
    assert "read back" in capsys.readouterr().err
    # one input text changed (same ids): recomputed, and said so
    with Run(tmp_path) as run:
        run.run_stage("judge", {"items": [Item("1", "a"), Item("2", "B")], "settings": {"swap": "none"}}, compute)
    assert calls == [1, 1] and "inputs changed" in capsys.readouterr().err
    # one setting changed: recomputed
    with Run(tmp_path) as run:
        run.run_stage("judge", {"items": items, "settings": {"swap": "average"}}, compute)
    assert len(calls) == 3


def test_a_stage_runs_under_its_own_ledger_stage_and_is_marked_done_after_its_records(tmp_path):
    with Run(tmp_path) as run:
        def compute():
            assert not (tmp_path / "records" / "sample.jsonl").exists()
            assert "sample" not in json.loads((tmp_path / "state.json").read_text())["stages"] \
                if (tmp_path / "state.json").exists() else True
            run.ledger.add("m", calls=1)
            return [{"x": 1}]

        run.run_stage("sample", {"n": 1}, compute)
    ledger = json.loads((tmp_path / "ledger.json").read_text())
    assert [e["stage"] for e in ledger["entries"]] == ["sample"]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["stages"]["sample"]["fingerprint"] == fingerprint({"n": 1})
    assert not list((tmp_path / "records").glob("*.tmp"))


def test_a_killed_stage_is_not_done(tmp_path):
    """compute raising (a crash half-way) leaves no records and no done mark: the rerun computes."""
    def crash():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with Run(tmp_path) as run:
            run.run_stage("s", {"n": 1}, crash)
    compute, calls = _counting([{"x": 1}])
    with Run(tmp_path) as run:
        assert run.run_stage("s", {"n": 1}, compute) == [{"x": 1}]
    assert calls == [1]


def test_records_deleted_by_hand_are_recomputed(tmp_path):
    compute, calls = _counting([{"x": 1}])
    with Run(tmp_path) as run:
        run.run_stage("s", {"n": 1}, compute)
    (tmp_path / "records" / "s.jsonl").unlink()
    with Run(tmp_path) as run:
        run.run_stage("s", {"n": 1}, compute)
    assert calls == [1, 1]


def test_a_stage_without_records_checks_its_outputs(tmp_path):
    made = tmp_path / "ckpt" / "marker"

    def train():
        made.parent.mkdir(exist_ok=True)
        made.write_text("done")
        calls.append(1)

    calls = []
    with Run(tmp_path / "run") as run:
        assert run.run_stage("train", {"lr": 1}, train, outputs=[made]) is None
        run.run_stage("train", {"lr": 1}, train, outputs=[made])
        assert calls == [1]
        made.unlink()  # the checkpoint was removed: train again
        run.run_stage("train", {"lr": 1}, train, outputs=[made])
        assert calls == [1, 1]
        run.run_stage("train", {"lr": 2}, train, outputs=[made])
        assert calls == [1, 1, 1]


def test_fingerprints_see_models_configs_and_arrays():
    import numpy as np

    from referee.config import SamplingConfig

    class FakeModel:
        spec, fingerprint = "hf:x", "abc"

    assert fingerprint({"m": FakeModel()}) == fingerprint({"m": {"model": "abc"}})
    assert fingerprint(SamplingConfig(temperature=0.5)) != fingerprint(SamplingConfig(temperature=0.6))
    assert fingerprint(np.array([1, 2])) == fingerprint([1, 2])
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    with pytest.raises(TypeError, match="cannot fingerprint"):
        fingerprint(object())


def test_old_or_corrupt_state(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"stages_done": ["s"]}))
    write_jsonl(tmp_path / "records" / "s.jsonl", [{"stale": True}])
    compute, calls = _counting([{"fresh": True}])
    with Run(tmp_path) as run:  # a folder from before fingerprints: nothing in it is trusted
        assert run.run_stage("s", {"n": 1}, compute) == [{"fresh": True}]
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(RefereeError, match="state.json: unreadable run state"):
        Run(tmp_path)


def test_a_recompute_killed_half_way_never_passes_for_the_earlier_inputs(tmp_path):
    """Inputs X finish; a recompute for Y rewrites the output and is killed before it is marked done; X
    again must not read Y's half-made output back as its own."""
    made = tmp_path / "head.bin"

    def train(value):
        def compute():
            made.write_text(value)
            if value == "Y":
                raise KeyboardInterrupt  # killed after writing, before being marked done
        return compute

    with Run(tmp_path / "run") as run:
        run.run_stage("train", {"lr": 1}, train("X"), outputs=[made])
    with pytest.raises(KeyboardInterrupt):
        with Run(tmp_path / "run") as run:
            run.run_stage("train", {"lr": 2}, train("Y"), outputs=[made])
    with Run(tmp_path / "run") as run:
        run.run_stage("train", {"lr": 1}, train("X"), outputs=[made])
    assert made.read_text() == "X"


def test_a_stage_with_withheld_answers_is_asked_again(tmp_path):
    """A server's content filter or refusal is recorded, but the stage is not done: the next run asks again."""
    compute_calls = []

    def sample():
        compute_calls.append(1)
        from referee import ledger

        ledger.record("m", calls=2, withheld=1 if len(compute_calls) == 1 else 0)
        return [{"text": "", "finish_reason": "content_filter" if len(compute_calls) == 1 else "stop"}]

    with Run(tmp_path) as run:
        first = run.run_stage("samples", {"n": 1}, sample)
    assert first[0]["finish_reason"] == "content_filter" and "samples" not in run.state["stages"]
    with Run(tmp_path) as run:
        again = run.run_stage("samples", {"n": 1}, sample)
    assert again[0]["finish_reason"] == "stop" and len(compute_calls) == 2
    with Run(tmp_path) as run:
        run.run_stage("samples", {"n": 1}, sample)
    assert len(compute_calls) == 2  # now finished: read back
    assert json.loads((tmp_path / "ledger.json").read_text())["all_invocations"]["totals"]["withheld"] == 1
