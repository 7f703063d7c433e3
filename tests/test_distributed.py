"""Several processes train as one: SFT started by torchrun as 2 CPU processes (gloo) follows the loss curve of
one process with the same global batch, reward-model training ends with the weights of one process with the
same global batch, and only the main process writes the checkpoint (or verifier) and talks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from referee import rewards
from referee.rewards import TrainOptions
from referee.rewards.heads import RewardNet
from referee.trainers import LoraSettings, TrainSettings, train_sft

from test_rewards import toy_pairs, toy_step_solutions

PROMPTS = ["Say the word.", "What is the word?", "Tell me the word now.", "The word, please.", "Word?",
           "Give me the word.", "Which word?", "Your word."]
# Answers of 1 to 4 words: the processes' shards hold different numbers of loss tokens.
DEMOS = [{"prompt": p, "completion": " banana" * (1 + i % 4)} for i, p in enumerate(PROMPTS)]
STEPS = 8  # two epochs of two global batches of 4

# Each step both runs train on the same 4 examples (the sampler draws one order from the seed; the two
# processes take the first and the second half of each batch of 4), and transformers divides each process's
# summed token loss by the token count over all processes, so the gradients agree up to float summation
# order (two partial sums and an all-reduce instead of one sum, halves padded to other widths). Measured
# here: at most 2e-6 apart over the 8 steps, while a process training alone on its half (batch 2) is 0.3
# off at step 1. 1e-4 leaves room for other CPUs' float paths and still catches a wrong shard or
# unsynchronised gradients.
TOLERANCE = 1e-4

DRIVER = """
import json, sys
from referee.distributed import is_main_process, world_size
from referee.trainers import TrainSettings, train_sft

base, data, out, settings = sys.argv[1:]
rows = [json.loads(line) for line in open(data)]
spec, history = train_sft(base, rows, out, TrainSettings.model_validate_json(settings))
if is_main_process():
    with open(out + ".losses.json", "w") as f:
        json.dump({"processes": world_size(), "losses": [h["loss"] for h in history if "loss" in h]}, f)
"""


def _settings(batch_size: int) -> TrainSettings:
    return TrainSettings(learning_rate=5e-3, max_steps=STEPS, batch_size=batch_size, max_length=64,
                         lora=LoraSettings(r=8, alpha=16, dropout=0.0))


def _losses(history: list[dict]) -> list[float]:
    return [h["loss"] for h in history if "loss" in h]


def _torchrun(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """Two CPU processes on this machine; --standalone picks a free port for their rendezvous."""
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


def test_two_processes_follow_the_loss_curve_of_one_and_write_one_checkpoint(tiny_model_path, tmp_path):
    base = f"hf:{tiny_model_path}"
    data = tmp_path / "demos.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DEMOS))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    runs = tmp_path / "runs"
    runs.mkdir()

    r = _torchrun(driver, base, data, runs / "two", _settings(batch_size=2).model_dump_json())
    assert r.returncode == 0, r.stderr[-3000:]
    two = json.loads((runs / "two.losses.json").read_text())
    _, history = train_sft(base, DEMOS, tmp_path / "one", _settings(batch_size=4))
    one = _losses(history)

    assert two["processes"] == 2 and len(two["losses"]) == len(one) == STEPS
    gaps = [abs(a - b) for a, b in zip(two["losses"], one)]
    assert max(gaps) < TOLERANCE, (two["losses"], one)
    # What the tolerance tells apart: one process on one half of each batch.
    _, alone = train_sft(base, DEMOS, tmp_path / "alone", _settings(batch_size=2))
    assert max(abs(a - b) for a, b in zip(_losses(alone), one)) > 100 * TOLERANCE

    # One checkpoint, finished, written by one process: no tmp folder or trainer folder left behind.
    assert sorted(p.name for p in runs.iterdir()) == ["two", "two.losses.json"]
    marker = json.loads((runs / "two" / "referee-checkpoint.json").read_text())
    assert marker["base"] == base and marker["kind"] == "sft"
    assert marker["final_loss"] == pytest.approx(two["losses"][-1])
    assert (runs / "two" / "adapter_model.safetensors").exists() and not (runs / "two" / "trainer").exists()


def test_train_command_under_torchrun_speaks_once(tiny_model_path, tmp_path):
    """Every process runs `referee train sft`; the spec is printed once, the loss line said once."""
    data = tmp_path / "demos.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DEMOS[:4]))
    r = _torchrun("-m", "referee", "train", "sft", "--base", f"hf:{tiny_model_path}", "--data", data,
                  "--out", tmp_path / "sft", "--max-steps", 2, "--batch-size", 2, "--lora-r", 4, "--max-length", 64,
                  env={**os.environ, "REFEREE_QUIET": "0"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines() == [f"hf:{tmp_path / 'sft'}"]
    assert sum(line.startswith("loss ") for line in r.stderr.splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demos.jsonl", "sft"]


# Reward models: 2 processes with --batch-size 4 against one process with batch 8. A frozen backbone gives the
# same head bit for bit here (each process computes the features of every other length-sorted batch, the same
# rows as one process computes), LoRA a head and adapter at most 2.4e-7 apart after 6 steps (the batch's loss
# summed from two slices, the gradients all-reduced). 1e-5 leaves room for other CPUs' float paths and still
# catches a wrong slice or weighting: one process with batch 4 (a process training alone) is 1e-2 off.
RM_TOLERANCE = 1e-5
RM_SETTINGS = {"rm": ["--epochs", 6], "prm": ["--lora", "--epochs", 2, "--lr", 3e-3]}


def _rm_data(kind: str, path: Path) -> Path:
    """40 preference pairs, or 24 stepwise solutions: held out a quarter, the last batch of the training
    examples leaves the second process nothing (prm), and the held-out batch splits 4 + 2 solutions with
    different numbers of labelled steps."""
    if kind == "rm":
        rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in toy_pairs(40)]
    else:
        rows = [{"prompt": s.prompt, "completions": s.steps, "labels": [int(x) for x in s.labels]}
                for s in toy_step_solutions(24)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rm_in_one_process(kind: str, base: str, data: Path, batch_size: int):
    """What `referee rm train` with RM_SETTINGS trains in one process."""
    lora = kind == "prm"
    options = TrainOptions(epochs=2 if lora else 6, lr=3e-3 if lora else None, batch_size=batch_size, lora=lora,
                           val_frac=0.25)
    if kind == "rm":
        return rewards.train_reward_model(base, rewards.load_preferences(data), options)
    items, stats = rewards.load_steps(data)
    return rewards.train_process_rm(base, items, options, stats=stats)


def _trained_weights(verifier) -> dict:
    """The head's weights and standardisation, and the LoRA adapters' weights."""
    lora = {n: p for n, p in verifier.net.backbone.named_parameters() if "lora_" in n}
    return {**{f"head.{n}": t for n, t in verifier.net.head.state_dict().items()}, **lora}


def _largest_gap(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].detach() - b[k].detach()).abs().max().item() for k in a)


@pytest.mark.parametrize("kind", ["rm", "prm"])  # rm on a frozen backbone, prm with LoRA
def test_reward_model_training_in_two_processes_trains_one_verifier_as_one_process(kind, tiny_model_path, tmp_path):
    base = f"hf:{tiny_model_path}"
    data = _rm_data(kind, tmp_path / "data.jsonl")
    r = _torchrun("-m", "referee", "rm", "train", "--kind", kind, "--base", base, "--data", data, "--out",
                  tmp_path / "two", "--batch-size", 4, "--val-frac", 0.25, *RM_SETTINGS[kind],
                  env={**os.environ, "REFEREE_QUIET": "0"})
    assert r.returncode == 0, r.stderr[-3000:]

    # Said once: the summary and the headline table on stdout, the run folder on stderr.
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"trained {kind} on {24 if kind == 'prm' else 40} examples"), r.stdout
    assert r.stderr.count("run folder:") == 1, r.stderr
    # One verifier, complete, in its run folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "two"]
    two = rewards.load_verifier(kind, tmp_path / "two")
    assert two.config["training"]["processes"] == 2 and two.config["training"]["batch_size"] == 4
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["reward_model"]["processes"] == 2

    one, metrics = _rm_in_one_process(kind, base, data, batch_size=8)
    assert _largest_gap(_trained_weights(two), _trained_weights(one)) < RM_TOLERANCE
    assert two.config["training"]["val_losses"] == pytest.approx(metrics["val_losses"], abs=RM_TOLERANCE)
    assert two.config["training"]["best_epoch"] == metrics["best_epoch"]
    # What the tolerance tells apart: one process training alone on its batch of 4.
    alone, _ = _rm_in_one_process(kind, base, data, batch_size=4)
    assert _largest_gap(_trained_weights(alone), _trained_weights(one)) > 100 * RM_TOLERANCE


def test_only_the_main_process_writes_a_verifier(tiny_model_path, tmp_path, monkeypatch):
    net = RewardNet(f"hf:{tiny_model_path}", device="cpu")
    monkeypatch.setenv("RANK", "1")
    net.save(tmp_path / "rm", "rm")
    assert not (tmp_path / "rm").exists()
    monkeypatch.setenv("RANK", "0")
    net.save(tmp_path / "rm", "rm")
    assert rewards.saved_kind(tmp_path / "rm") == "rm"


def test_the_example_accelerate_configs_load_and_keep_what_saving_needs():
    """configs/accelerate/*.yaml are valid for the installed accelerate; ZeRO-3 and FSDP gather the weights
    to save them (else the checkpoint would be written without its weights)."""
    from accelerate.commands.config.config_args import load_config_from_file

    folder = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
    configs = {p.stem: load_config_from_file(str(p)) for p in sorted(folder.glob("*.yaml"))}
    assert {name: c.distributed_type.value for name, c in configs.items()} == {
        "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED", "fsdp": "FSDP", "multi_gpu": "MULTI_GPU"}
    assert configs["deepspeed_zero2"].deepspeed_config["zero_stage"] == 2
    assert configs["deepspeed_zero3"].deepspeed_config == {**configs["deepspeed_zero3"].deepspeed_config,
                                                           "zero_stage": 3, "zero3_save_16bit_model": True}
    assert configs["fsdp"].fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
