"""The TRL wrappers train for real on a tiny model: losses fall, preferences move, checkpoints load and chain."""

from __future__ import annotations

import json

import pytest

from referee.errors import RefereeError
from referee.models import load_model
from referee.trainers import LoraSettings, TrainSettings, train_dpo, train_grpo, train_sft
from referee.verifiers.base import PointwiseVerifier, Score

PROMPTS = ["Say the word.", "What is the word?", "Tell me the word now.", "The word, please."]
TARGET = " banana banana banana"


def _settings(**kw):
    base = dict(learning_rate=5e-3, max_steps=12, batch_size=4, max_length=128,
                lora=LoraSettings(r=8, alpha=16, dropout=0.0))
    base.update(kw)
    return TrainSettings(**base)


def _mean_logprob(spec, text):
    m = load_model(spec)
    chats = [[{"role": "user", "content": p}] for p in PROMPTS]
    return sum(r.total for r in m.logprobs(chats, [text] * len(chats))) / len(chats)


def test_sft_then_dpo_checkpoints_chain(tiny_model_path, tmp_path):
    base = f"hf:{tiny_model_path}"
    demos = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": TARGET}]} for p in PROMPTS]
    before = _mean_logprob(base, TARGET)
    sft_spec, history = train_sft(base, demos * 2, tmp_path / "sft", _settings())
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0]
    after = _mean_logprob(sft_spec, TARGET)
    assert after > before + 1.0, (before, after)
    marker = json.loads((tmp_path / "sft" / "referee-checkpoint.json").read_text())
    assert marker["base"] == base and marker["kind"] == "sft"

    # DPO from the SFT checkpoint: prefer "cherry" over "banana"
    pairs = [{"prompt": p, "chosen": " cherry cherry", "rejected": " banana banana"} for p in PROMPTS]
    margin_before = _mean_logprob(sft_spec, " cherry cherry") - _mean_logprob(sft_spec, " banana banana")
    dpo_spec, _ = train_dpo(sft_spec, pairs * 2, tmp_path / "dpo", _settings(max_steps=10, save_every=5), beta=0.1)
    margin_after = _mean_logprob(dpo_spec, " cherry cherry") - _mean_logprob(dpo_spec, " banana banana")
    assert margin_after > margin_before + 0.5, (margin_before, margin_after)
    # save_every: the policy after 5 steps is a checkpoint of its own, between the start and the end;
    # the one after 10 is the final policy
    steps = tmp_path / "dpo" / "steps"
    assert sorted(p.name for p in steps.iterdir()) == ["step-10", "step-5"]
    assert json.loads((steps / "step-5" / "referee-checkpoint.json").read_text())["step"] == 5
    assert not (steps / "step-5" / "optimizer.pt").exists() and not (tmp_path / "dpo" / "trainer").exists()
    margin = {k: _mean_logprob(f"hf:{steps / k}", " cherry cherry") - _mean_logprob(f"hf:{steps / k}", " banana banana")
              for k in ("step-5", "step-10")}
    assert margin["step-10"] == pytest.approx(margin_after, abs=1e-4)
    assert margin_before < margin["step-5"] < margin_after, (margin_before, margin, margin_after)
    # the chain base -> sft -> dpo has its own fingerprint, and loads as a generating model
    m = load_model(dpo_spec)
    assert m.fingerprint not in (load_model(sft_spec).fingerprint, load_model(base).fingerprint)
    assert m.generate([[{"role": "user", "content": "hi"}]])[0][0].completion_tokens >= 1


class LengthVerifier(PointwiseVerifier):
    """Rewards short answers; every third call's score is unreadable, to check invalid counting."""

    name = "length"

    def __init__(self):
        self.calls = 0

    def score_many(self, prompts, responses):
        out = []
        for r in responses:
            self.calls += 1
            out.append(Score(None, valid=False) if self.calls % 3 == 0 else Score(-float(len(r))))
        return out


def test_grpo_runs_with_a_verifier_reward_and_counts_invalid(tiny_model_path, tmp_path):
    verifier = LengthVerifier()
    spec, info = train_grpo(f"hf:{tiny_model_path}", PROMPTS, verifier, tmp_path / "grpo",
                            _settings(max_steps=2, learning_rate=1e-3), num_generations=4, max_completion_length=8)
    assert info["rewards_scored"] >= 8 and info["rewards_invalid"] == info["rewards_scored"] // 3
    assert load_model(spec).generate([[{"role": "user", "content": "hi"}]])[0][0].completion_tokens >= 1


def test_bad_training_input(tiny_model_path, tmp_path):
    with pytest.raises(RefereeError, match="dpo pair 1: missing field 'rejected'"):
        train_dpo(f"hf:{tiny_model_path}", [{"prompt": "x", "chosen": "y"}], tmp_path / "d")
    with pytest.raises(RefereeError, match="end with an assistant turn"):
        train_sft(f"hf:{tiny_model_path}", [{"messages": [{"role": "user", "content": "x"}]}], tmp_path / "s")
    with pytest.raises(RefereeError, match="no option"):
        train_sft(f"hf:{tiny_model_path}", [{"prompt": "a", "completion": "b"}], tmp_path / "s",
                  TrainSettings(trl={"not_a_real_option": 1}))


def test_demonstrations_longer_than_max_length_are_counted_before_training(tiny_model_path):
    """TRL keeps the start of a too-long example, cutting its reply: the count says so before training."""
    from referee.trainers.sft import longer_than

    demos = [{"messages": [{"role": "user", "content": "Say hi. " * n}, {"role": "assistant", "content": "hi"}]}
             for n in (1, 40, 200)]
    spec = f"hf:{tiny_model_path}"
    assert longer_than(spec, demos, 4096) == 0
    assert longer_than(spec, demos, 150) == 2 and longer_than(spec, demos, 16) == 3


def test_train_cli_sft_and_grpo_with_exact_reward(tiny_model_path, tmp_path):
    import subprocess
    import sys

    demos = tmp_path / "demos.jsonl"
    demos.write_text("".join(json.dumps({"prompt": p, "completion": TARGET}) + "\n" for p in PROMPTS))
    r = subprocess.run([sys.executable, "-m", "referee", "--quiet", "train", "sft", "--base", f"hf:{tiny_model_path}",
                        "--data", str(demos), "--out", str(tmp_path / "sft"), "--max-steps", "2", "--lora-r", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"hf:{tmp_path / 'sft'}"
    problems = tmp_path / "math.jsonl"
    problems.write_text("".join(json.dumps({"prompt": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n" for i in range(4)))
    r = subprocess.run([sys.executable, "-m", "referee", "--quiet", "train", "grpo", "--base", r.stdout.strip(),
                        "--data", str(problems), "--reward", "exact", "--out", str(tmp_path / "grpo"),
                        "--max-steps", "1", "--generations", "4", "--max-completion-length", "6", "--lora-r", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "grpo" / "referee-checkpoint.json").read_text())["base"] == f"hf:{tmp_path / 'sft'}"
    r = subprocess.run([sys.executable, "-m", "referee", "--quiet", "train", "grpo", "--data", str(problems),
                        "--reward", "magic", "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown verifier 'magic'" in r.stderr and "judge:MODEL_SPEC" in r.stderr


def test_a_full_fine_tune_is_marked_finished_and_loads_on_its_own(tiny_model_path, tmp_path):
    """Without LoRA the checkpoint holds whole weights: it gets the finished marker like any checkpoint
    (so a resumed run does not train it again) and loads without its base."""
    from referee.models.checkpoints import base_folder_and_adapters, is_checkpoint

    base = f"hf:{tiny_model_path}"
    demos = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": TARGET}]} for p in PROMPTS]
    spec, _ = train_sft(base, demos, tmp_path / "full", _settings(max_steps=2, lora=None))
    assert is_checkpoint(tmp_path / "full")
    assert json.loads((tmp_path / "full" / "referee-checkpoint.json").read_text())["full"] is True
    assert base_folder_and_adapters(spec) == (str(tmp_path / "full"), [], None)
    assert load_model(spec).generate([[{"role": "user", "content": "hi"}]])[0][0].completion_tokens >= 1


def test_settings_without_snapshots_dump_as_before_so_earlier_runs_keep_their_stages():
    assert "save_every" not in TrainSettings().model_dump(mode="json")
    assert TrainSettings(save_every=25).model_dump(mode="json")["save_every"] == 25


def test_protocols_share_the_lora_default_that_their_stage_keys_hash():
    """The protocols' training settings state no LoRA of their own: all take r=16, alpha=32 from here, as
    each of them used to write out, so their configs (and stage fingerprints) dump the same values."""
    from referee.protocols.self_rewarding import SelfRewardingConfig

    assert LoraSettings().model_dump() == {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
    assert TrainSettings().lora == LoraSettings(r=16, alpha=32)
    cfg = SelfRewardingConfig().model_dump(mode="json")
    assert cfg["dpo"]["lora"] == cfg["sft"]["lora"] == LoraSettings(r=16, alpha=32).model_dump(mode="json")
