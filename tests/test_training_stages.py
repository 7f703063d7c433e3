"""The training-stage module: one key, one marker and one clean-up rule for every model a protocol trains."""

from __future__ import annotations

import json

import pytest

from referee import models
from referee.models.checkpoints import MARKER
from referee.protocols import stages
from referee.runs import Run


def _writer(calls: list, fail: bool = False):
    """A stand-in trainer: leaves a stray file, then (unless it fails) the marker, as a real one does last."""
    def train(out):
        calls.append(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"part-{len(calls)}.bin").write_text("weights")
        if fail:
            raise RuntimeError("killed while training")
        (out / MARKER).write_text(json.dumps({"base": "hf:x", "kind": "sft"}))
    return train


def test_a_stage_keyed_on_a_model_that_cannot_load_still_has_a_key_and_loads_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("weights were loaded for a key"))
    calls = []
    with Run(tmp_path / "run") as run:
        folder = stages.checkpoint(run, "sft_x", base=f"hf:{tmp_path / 'no-such-model'}", inputs={"lr": 1},
                                   train=_writer(calls))
        assert (folder / MARKER).exists() and run.models == {}
        base = f"hf:{tmp_path / 'no-such-model'}"
        assert run.state["stages"]["sft_x"]["fingerprint"]  # keyed, and marked done
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["models"][base]["loaded"] is False  # the manifest still names what it was trained from


def test_the_key_from_files_is_the_loaded_model_s_own(tiny_model_path, tmp_path):
    spec = f"hf:{tiny_model_path}"
    with Run(tmp_path / "a") as run:
        from_files = run.model_key(spec)
        assert spec not in run.models
    with Run(tmp_path / "b") as run:
        assert from_files == {"model": run.model(spec).fingerprint}


def test_the_marker_appears_only_after_training_succeeds_and_a_failure_leaves_the_stage_not_done(tmp_path):
    calls = []
    with Run(tmp_path / "run") as run:
        with pytest.raises(RuntimeError, match="killed"):
            stages.checkpoint(run, "sft_x", base="hf:/nowhere", inputs={"lr": 1}, train=_writer(calls, fail=True))
        out = tmp_path / "run" / "checkpoints" / "sft_x"
        assert not (out / MARKER).exists() and "sft_x" not in run.state["stages"]
        stages.checkpoint(run, "sft_x", base="hf:/nowhere", inputs={"lr": 1}, train=_writer(calls))
        assert len(calls) == 2
        assert not (out / "part-1.bin").exists()  # what the failed attempt left was cleared first
        stages.checkpoint(run, "sft_x", base="hf:/nowhere", inputs={"lr": 1}, train=_writer(calls))
        assert len(calls) == 2  # same base and inputs, marker there: read back


def test_changed_inputs_retrain_into_a_cleared_folder(tmp_path):
    calls = []
    with Run(tmp_path / "run") as run:
        out = stages.checkpoint(run, "sft_x", name="m1", base="hf:/nowhere", inputs={"lr": 1}, train=_writer(calls))
        assert out == tmp_path / "run" / "checkpoints" / "m1" and (out / "part-1.bin").exists()
        stages.checkpoint(run, "sft_x", name="m1", base="hf:/nowhere", inputs={"lr": 2}, train=_writer(calls))
        assert len(calls) == 2 and not (out / "part-1.bin").exists() and (out / "part-2.bin").exists()
        stages.checkpoint(run, "sft_x", name="m1", base="hf:/elsewhere", inputs={"lr": 2}, train=_writer(calls))
        assert len(calls) == 3  # another base model is another stage key
    with Run(tmp_path / "run") as run:  # a new invocation with the same inputs reads it back
        stages.checkpoint(run, "sft_x", name="m1", base="hf:/elsewhere", inputs={"lr": 2}, train=_writer(calls))
        assert len(calls) == 3
    (out / MARKER).unlink()  # the finished folder was damaged: trained again
    with Run(tmp_path / "run") as run:
        stages.checkpoint(run, "sft_x", name="m1", base="hf:/elsewhere", inputs={"lr": 2}, train=_writer(calls))
        assert len(calls) == 4


def test_a_reward_model_stage_is_a_verifier_folder_trained_once(tiny_model_path, tmp_path):
    from referee.rewards import load_verifier
    from referee.rewards.data import PreferencePair
    from referee.rewards.heads import CONFIG_NAME
    from referee.rewards.training import TrainOptions

    def ask(q):
        return [{"role": "user", "content": q}]

    pairs = [PreferencePair(ask("2+2?"), "4", "5", "a"), PreferencePair(ask("3+3?"), "6", "7", "b")]
    options = TrainOptions(epochs=1, seed=0)
    with Run(tmp_path / "run") as run:
        folder = stages.reward_model(run, "rm", base=f"hf:{tiny_model_path}", pairs=pairs, options=options,
                                     max_length=64, report={"pairs": 2})
        stray = folder / "stray.txt"
        stray.write_text("left by hand")
        again = stages.reward_model(run, "rm", base=f"hf:{tiny_model_path}", pairs=pairs, options=options,
                                    max_length=64)
        assert again == folder and stray.exists()  # read back, not retrained
        assert run.metrics()["rm"]["pairs"] == 2 and "training" in run.metrics()["rm"]
        stages.reward_model(run, "rm", base=f"hf:{tiny_model_path}", pairs=pairs[:1], options=options, max_length=64)
        assert not stray.exists() and (folder / CONFIG_NAME).exists()  # new pairs: retrained in a cleared folder
    assert len(load_verifier("rm", folder).score_many([ask("2+2?")], ["4"])) == 1


def test_a_model_that_shares_its_folder_clears_only_its_own_files(tmp_path):
    """`referee rm train` writes the verifier into the run folder itself: retraining must not remove the
    run's config, ledger or records, but must remove the verifier's stale files, marker first."""
    calls = []
    with Run(tmp_path / "run") as run:
        (run.folder / "notes.txt").write_text("the user's")
        stages.checkpoint(run, "train", base="hf:/nowhere", inputs={"lr": 1}, train=_writer(calls),
                          into=run.folder, owned=[MARKER, "part-1.bin"])
        assert (run.folder / "part-1.bin").exists() and (run.folder / MARKER).exists()
        with pytest.raises(RuntimeError, match="killed"):
            stages.checkpoint(run, "train", base="hf:/nowhere", inputs={"lr": 2}, train=_writer(calls, fail=True),
                              into=run.folder, owned=[MARKER, "part-1.bin"])
        assert not (run.folder / MARKER).exists()  # the old verifier's marker went before training began
        assert not (run.folder / "part-1.bin").exists() and (run.folder / "notes.txt").exists()
        assert (run.folder / "state.json").exists() and "train" not in run.state["stages"]


def _pairs(n: int = 8) -> list[dict]:
    return [{"prompt": f"Say a colour for room {i}.", "chosen": "red", "rejected": f"blue and green {i}"}
            for i in range(n)]


def test_a_killed_dpo_stage_goes_on_from_its_last_state_and_ends_where_an_unbroken_one_does(
        tiny_model_path, tmp_path, monkeypatch, capsys):
    """A DPO stage killed at step 5 keeps its state of step 4 (REFEREE_RESUME_EVERY=2); run again, it trains
    steps 5-6 only and its adapter equals the unbroken run's. A stage with other inputs clears those states."""
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from referee.trainers import LoraSettings, TrainSettings
    from referee.trainers import dpo as dpo_module

    from referee import progress

    monkeypatch.setenv("REFEREE_RESUME_EVERY", "2")
    monkeypatch.setattr(progress, "_quiet", False)  # the resume is said on stderr
    settings = TrainSettings(learning_rate=5e-3, max_steps=6, batch_size=2, max_length=64, lora=LoraSettings(r=4))
    base = f"hf:{tiny_model_path}"

    def adapter(run_folder):
        return load_file(str(run_folder / "checkpoints" / "dpo" / "adapter_model.safetensors"))

    with Run(tmp_path / "unbroken") as run:
        stages.dpo(run, "dpo", base=base, pairs=_pairs(), settings=settings, beta=0.1)
    steps_seen = []

    class Kill(TrainerCallback):
        def __init__(self, at: int | None = 5):
            self.at = at

        def on_step_end(self, args, state, control, **kw):
            steps_seen.append(state.global_step)
            if state.global_step == self.at:
                raise RuntimeError(f"killed at step {self.at}")

    fit = dpo_module.fit
    monkeypatch.setattr(dpo_module, "fit", lambda trainer: (trainer.add_callback(Kill()), fit(trainer))[1])
    with Run(tmp_path / "broken") as run:
        with pytest.raises(RuntimeError, match="killed at step 5"):
            stages.dpo(run, "dpo", base=base, pairs=_pairs(), settings=settings, beta=0.1)
        trainer_dir = tmp_path / "broken" / "checkpoints" / "dpo" / "trainer"
        assert sorted(p.name for p in trainer_dir.glob("checkpoint-*")) == ["checkpoint-4"]  # the last only
        assert steps_seen == [1, 2, 3, 4, 5]
        steps_seen.clear()
        monkeypatch.setattr(dpo_module, "fit", lambda trainer: (trainer.add_callback(Kill(at=None)), fit(trainer))[1])
        capsys.readouterr()
        stages.dpo(run, "dpo", base=base, pairs=_pairs(), settings=settings, beta=0.1)
        assert "resuming an interrupted training at step 4" in capsys.readouterr().err
        assert steps_seen == [5, 6]  # steps 1-4 were not trained again
        assert not trainer_dir.exists()  # the states go once the model is made
    unbroken, resumed = adapter(tmp_path / "unbroken"), adapter(tmp_path / "broken")
    assert unbroken.keys() == resumed.keys()
    assert all(torch.allclose(unbroken[k], resumed[k], atol=1e-6) for k in unbroken)
    assert any(not torch.equal(v, torch.zeros_like(v)) for v in unbroken.values())
    # states kept for other inputs are never resumed: a new key clears them
    with Run(tmp_path / "other") as run:
        monkeypatch.setattr(dpo_module, "fit", lambda trainer: (trainer.add_callback(Kill()), fit(trainer))[1])
        steps_seen.clear()
        with pytest.raises(RuntimeError):
            stages.dpo(run, "dpo", base=base, pairs=_pairs(), settings=settings, beta=0.1)
        monkeypatch.setattr(dpo_module, "fit", fit)
        capsys.readouterr()
        stages.dpo(run, "dpo", base=base, pairs=_pairs(6), settings=settings, beta=0.1)
        assert "resuming" not in capsys.readouterr().err
