"""Trained verifiers on tiny random backbones with a learnable toy signal: BT reward model, ORM, PRM."""

from __future__ import annotations

import gzip
import json
import math
import random

import pytest
import torch

from referee.errors import RefereeError
from referee.rewards import (TrainOptions, load_preferences, load_solutions, load_steps, load_verifier,
                             train_outcome_rm, train_process_rm, train_reward_model)
from referee.rewards.bradley_terry import pair_loss
from referee.rewards.data import PreferencePair, Solution, StepSolution, parse_dialogue
from referee.rewards.evaluate import eval_pairs, eval_steps
from referee.rewards.prm import step_loss
from referee.rewards.training import Example

from conftest import DATA

WORDS = ["apple", "river", "stone", "cloud", "green", "table", "music", "light", "paper", "house", "seven", "blue"]


def _chat(text):
    return [{"role": "user", "content": text}]


def toy_pairs(n, seed=0):
    """Chosen answers say 'certainly' where rejected ones say 'maybe'; the rest is random filler."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))
        pairs.append(PreferencePair(_chat(f"Tell me about {rng.choice(WORDS)} {i}."),
                                    f"{filler} certainly", f"{filler} maybe", str(i)))
    return pairs


def toy_step_solutions(n, seed=0):
    """Steps ending in 'wrong' are wrong, and so is every step after the first wrong one."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(2, 5)
        bad = rng.randint(0, k)  # k: no wrong step
        steps, labels = [], []
        for j in range(k):
            filler = " ".join(rng.choice(WORDS) for _ in range(3))
            steps.append(f"{filler} {'wrong' if j == bad else 'fine'}")
            labels.append(1.0 if j < bad else 0.0)
        out.append(StepSolution(_chat(f"Solve problem {i}."), steps, labels, str(i)))
    return out


@pytest.fixture(scope="module")
def base(tiny_model_path):
    return f"hf:{tiny_model_path}"


@pytest.fixture(scope="module")
def trained_rm(base):
    pairs = toy_pairs(72)
    rm, metrics = train_reward_model(base, pairs[:48], TrainOptions(epochs=25, batch_size=16))
    return rm, metrics, pairs[48:]


# ---- Bradley-Terry reward model ---------------------------------------------------------------------
def test_pair_loss_matches_the_formula():
    logits = torch.tensor([2.0, 0.0, -1.0, 1.0])  # pairs (2, 0) and (-1, 1)
    plain = pair_loss(logits, [])
    expected = (-math.log(1 / (1 + math.exp(-2))) - math.log(1 / (1 + math.exp(2)))) / 2
    assert plain.item() == pytest.approx(expected, rel=1e-6)
    centred = pair_loss(logits, [], center=0.5)
    assert centred.item() == pytest.approx(expected + 0.5 * (4 + 0) / 2, rel=1e-6)


def test_reward_model_learns_the_toy_signal(trained_rm):
    rm, metrics, test = trained_rm
    assert metrics["loss_last_epoch"] < 0.5 * metrics["loss_first_epoch"]
    assert metrics["examples"] == 48
    m = eval_pairs(rm, test)
    assert m["accuracy"].value >= 0.85
    assert m["accuracy"].low > 0.5
    # every toy pair has equal length apart from the last word: 'certainly' is longer than 'maybe'
    assert m["always_longer"].value == 1.0
    diff = m["minus_always_longer"]  # paired over the same pairs: exactly accuracy minus the baseline
    assert diff.value == pytest.approx(m["accuracy"].value - 1.0) and diff.n == len(test)
    comps = rm.compare_many([p.prompt for p in test], [p.rejected for p in test], [p.chosen for p in test])
    assert sum(c.winner == "B" for c in comps) >= 0.85 * len(test)
    assert all(0.0 <= c.p_a <= 1.0 for c in comps)


def test_reward_model_save_load_gives_identical_scores(trained_rm, tmp_path):
    rm, _, test = trained_rm
    rm.save(tmp_path / "rm")
    again = load_verifier("rm", tmp_path / "rm")
    prompts, answers = [p.prompt for p in test], [p.chosen for p in test]
    assert [s.value for s in again.score_many(prompts, answers)] == [s.value for s in rm.score_many(prompts, answers)]
    with pytest.raises(RefereeError, match="trained as 'rm', not 'prm'"):
        load_verifier("prm", tmp_path / "rm")
    with pytest.raises(RefereeError, match="not a saved verifier"):
        load_verifier("rm", tmp_path)


def test_batched_scores_equal_one_at_a_time(trained_rm):
    rm, _, test = trained_rm
    prompts, answers = [p.prompt for p in test[:6]], [p.rejected for p in test[:6]]
    batched = [s.value for s in rm.score_many(prompts, answers)]
    single = [rm.score(p, a).value for p, a in zip(prompts, answers)]
    assert batched == pytest.approx(single, abs=1e-4)


def test_centering_keeps_rewards_near_zero(base):
    pairs = toy_pairs(24, seed=3)
    plain, _ = train_reward_model(base, pairs, TrainOptions(epochs=20))
    centred, m = train_reward_model(base, pairs, TrainOptions(epochs=20), center=0.1)
    assert m["center_rewards_coefficient"] == 0.1 and m["truncated"] == 0
    _, cut = train_reward_model(base, pairs[:4], TrainOptions(epochs=1), max_length=8)  # every side loses its start
    assert cut["truncated"] == 8

    def mean_abs_sum(rm):
        r = rm.rewards([p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs])
        return sum(abs(a + b) for a, b in zip(r[:24], r[24:])) / 24

    assert mean_abs_sum(centred) < 0.5 * mean_abs_sum(plain)
    assert eval_pairs(centred, pairs)["accuracy"].value >= 0.85


def test_lora_reward_model_trains_and_round_trips(base, tmp_path):
    pairs = toy_pairs(16, seed=5)
    rm, metrics = train_reward_model(base, pairs, TrainOptions(lora=True, epochs=2, lr=3e-3, batch_size=8))
    assert metrics["lora"] and metrics["loss_last_epoch"] < metrics["loss_first_epoch"]
    rm.save(tmp_path / "lora")
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").exists()
    again = load_verifier("rm", tmp_path / "lora")
    prompts, answers = [p.prompt for p in pairs[:5]], [p.chosen for p in pairs[:5]]
    assert [s.value for s in again.score_many(prompts, answers)] == pytest.approx(
        [s.value for s in rm.score_many(prompts, answers)], abs=1e-5)


# ---- outcome RM ----------------------------------------------------------------------------------------
def test_outcome_rm_learns_and_gives_probabilities(base):
    rng = random.Random(1)
    sols = []
    for i in range(100):
        ok = i % 2 == 0
        filler = " ".join(rng.choice(WORDS) for _ in range(4))
        sols.append(Solution(_chat(f"Problem {i}"), f"{filler}\nThe answer is {'right' if ok else 'off'}", float(ok)))
    orm, metrics = train_outcome_rm(base, sols[:70], TrainOptions(epochs=25))
    assert metrics["loss_last_epoch"] < 0.5 * metrics["loss_first_epoch"]
    assert metrics["positive_rate"] == pytest.approx(0.5)
    # 10% held out (7 of 70); the kept head is the epoch with the lowest held-out loss
    assert metrics["val_examples"] == 7 and metrics["train_examples"] == 63
    assert len(metrics["val_losses"]) == 25
    assert metrics["val_losses"][metrics["best_epoch"] - 1] == min(metrics["val_losses"])
    scores = orm.score_many([s.prompt for s in sols[70:]], [s.response for s in sols[70:]])
    assert all(0 < s.value < 1 and s.valid for s in scores)
    acc = sum((s.value > 0.5) == (x.label > 0.5) for s, x in zip(scores, sols[70:])) / 30
    assert acc >= 0.85


# ---- process RM ---------------------------------------------------------------------------------------
def test_step_loss_soft_targets_and_unlabelled_steps():
    logits = torch.tensor([0.0, 2.0, -1.0])
    ex = [Example([], [0.25, None]), Example([], [1.0])]
    got = step_loss(logits[[0, 1, 2]], ex).item()
    bce = lambda z, t: -(t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z))))
    assert got == pytest.approx((bce(0.0, 0.25) + bce(-1.0, 1.0)) / 2, rel=1e-6)


@pytest.fixture(scope="module")
def trained_prm(base):
    sols = toy_step_solutions(100)
    prm, metrics = train_process_rm(base, sols[:70], TrainOptions(epochs=25))
    return prm, metrics, sols[70:]


def test_prm_learns_steps_and_finds_the_first_wrong_one(trained_prm):
    prm, metrics, test = trained_prm
    assert metrics["loss_last_epoch"] < 0.5 * metrics["loss_first_epoch"]
    m = eval_steps(prm, test)
    assert m["step_accuracy"].value >= 0.85
    assert m["step_accuracy"].value > m["majority_class"].value
    assert m["first_wrong_step_match"].value >= 0.7


def test_prm_score_many_product_min_and_first_wrong(trained_prm):
    prm, _, test = trained_prm
    s = test[0]
    probs = prm.score_steps([s.prompt], [s.steps])[0]
    assert len(probs) == len(s.steps) and all(0 < p < 1 for p in probs)
    score = prm.score(s.prompt, "\n".join(s.steps) + "\n\n")  # blank lines are not steps
    assert score.value == pytest.approx(math.prod(probs), rel=1e-5)
    assert score.detail["min"] == pytest.approx(min(probs), rel=1e-5)
    assert score.detail["steps"] == pytest.approx(probs, rel=1e-5)
    assert score.detail["first_wrong_step"] == next((i for i, p in enumerate(probs) if p < 0.5), None)
    assert prm.summary([0.9, 0.8, 0.3, 0.1])["first_wrong_step"] == 2
    assert prm.summary([0.9, 0.8])["first_wrong_step"] is None
    blank = prm.score(s.prompt, "  \n ")
    assert blank.value is None and not blank.valid
    assert prm.score_steps([s.prompt, s.prompt], [[], s.steps])[0] == []


def test_prm_batched_equals_single_and_round_trips(trained_prm, tmp_path):
    prm, _, test = trained_prm
    prompts, steps = [s.prompt for s in test[:6]], [s.steps for s in test[:6]]
    batched = prm.score_steps(prompts, steps)
    single = [prm.score_steps([p], [st])[0] for p, st in zip(prompts, steps)]
    for b, s in zip(batched, single):
        assert b == pytest.approx(s, abs=1e-5)
    prm.save(tmp_path / "prm")
    again = load_verifier("prm", tmp_path / "prm")
    assert again.score_steps(prompts, steps) == batched


def test_prm_trains_on_soft_labels(base):
    sols = toy_step_solutions(60, seed=2)
    soft = [StepSolution(s.prompt, s.steps, [0.9 if t else 0.2 for t in s.labels]) for s in sols]
    prm, metrics = train_process_rm(base, soft[:45], TrainOptions(epochs=25))
    probs = prm.score_steps([s.prompt for s in soft[45:]], [s.steps for s in soft[45:]])
    pos = [p for s, ps in zip(soft[45:], probs) for p, t in zip(ps, s.labels) if t > 0.5]
    neg = [p for s, ps in zip(soft[45:], probs) for p, t in zip(ps, s.labels) if t < 0.5]
    # soft targets pull predictions towards 0.9 and 0.2, not to 1 and 0
    assert 0.6 < sum(pos) / len(pos) < 0.97
    assert 0.05 < sum(neg) / len(neg) < 0.45


# ---- data loading ---------------------------------------------------------------------------------------
def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_preference_formats(tmp_path):
    hh = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: How do I bake bread?\n\nAssistant: "
    path = _write(tmp_path / "p.jsonl", [
        {"prompt": "Q1", "chosen": "good", "rejected": "bad"},
        {"prompt": [{"role": "user", "content": "Q2"}], "chosen": [{"role": "assistant", "content": "g2"}],
         "rejected": [{"role": "assistant", "content": "b2"}]},
        {"chosen": [{"role": "user", "content": "Q3"}, {"role": "assistant", "content": "g3"}],
         "rejected": [{"role": "user", "content": "Q3"}, {"role": "assistant", "content": "b3"}]},
        {"chosen": hh + "Knead flour and water.", "rejected": hh + "No."},
        {"chosen": "\n\nHuman: A?\n\nAssistant: yes", "rejected": "\n\nHuman: B?\n\nAssistant: no"},
    ])
    pairs = load_preferences(path)
    assert [(p.chosen, p.rejected) for p in pairs] == [("good", "bad"), ("g2", "b2"), ("g3", "b3"),
                                                        ("Knead flour and water.", "No."), ("yes", "no")]
    assert pairs[3].rejected_prompt is None and pairs[3].prompt_of_rejected == pairs[3].prompt
    assert pairs[4].prompt_of_rejected == [{"role": "user", "content": "B?"}]  # each side keeps its own turns
    assert pairs[2].prompt == [{"role": "user", "content": "Q3"}]
    assert [m["role"] for m in pairs[3].prompt] == ["user", "assistant", "user"]
    assert pairs[3].prompt[-1]["content"] == "How do I bake bread?"
    assert len(load_preferences(path, limit=2)) == 2


def test_preference_errors_name_file_line_and_field(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [{"prompt": "Q", "chosen": "a", "rejected": "b"}, {"prompt": "Q", "chosen": "a"}])
    with pytest.raises(RefereeError, match=r"bad.jsonl:2: missing field 'rejected'"):
        load_preferences(path)
    path = _write(tmp_path / "bad2.jsonl", [{"chosen": "no turns here", "rejected": "x"}])
    with pytest.raises(RefereeError, match=r"bad2.jsonl:1: field 'chosen'"):
        load_preferences(path)
    with pytest.raises(RefereeError, match="Human"):
        parse_dialogue("plain text", "where")


def test_step_labels_formats_counts_and_errors(tmp_path):
    path = _write(tmp_path / "s.jsonl", [
        {"prompt": "P", "completions": ["a", "b", "c"], "labels": [True, None, False]},
        {"prompt": "P", "completions": "x\n\ny\nz", "labels": [1, 0, -1]},
    ])
    sols, stats = load_steps(path)  # a -1 makes the file ternary: 0 is neutral
    assert stats.scheme == "ternary" and stats.unlabelled == 1 and stats.neutral == 1
    assert sols[0].labels == [1.0, None, 0.0]
    assert sols[1].steps == ["x", "y", "z"] and sols[1].labels == [1.0, 1.0, 0.0]
    assert load_steps(path, neutral="negative")[0][1].labels == [1.0, 0.0, 0.0]
    skipped, st = load_steps(path, neutral="skip")
    assert skipped[1].labels == [1.0, None, 0.0] and st.neutral_skipped == 1
    binary = _write(tmp_path / "b.jsonl", [{"prompt": "P", "completions": ["a", "b"], "labels": [1, 0]},
                                           {"prompt": "P", "completions": ["a"], "labels": [0.75]}])
    sols, stats = load_steps(binary)
    assert stats.scheme == "binary" and sols[0].labels == [1.0, 0.0] and sols[1].labels == [0.75]
    mismatch = _write(tmp_path / "m.jsonl", [{"prompt": "P", "completions": ["a"], "labels": [1]},
                                             {"prompt": "P", "completions": ["a", "b"], "labels": [1]}])
    with pytest.raises(RefereeError, match=r"m.jsonl:2: 2 steps in 'completions' but 1 labels"):
        load_steps(mismatch)
    bad = _write(tmp_path / "x.jsonl", [{"prompt": "P", "completions": ["a"], "labels": [2]}])
    with pytest.raises(RefereeError, match=r"x.jsonl:1: field 'labels' item 0"):
        load_steps(bad)
    with pytest.raises(RefereeError, match="neutral"):
        load_steps(binary, neutral="maybe")
    missing = _write(tmp_path / "n.jsonl", [{"completions": ["a"], "labels": [1]}])
    with pytest.raises(RefereeError, match=r"n.jsonl:1: missing field 'prompt'"):
        load_steps(missing)


def test_unlabelled_steps_are_not_trained_on(base):
    sols = toy_step_solutions(30, seed=4)
    half = [StepSolution(s.prompt, s.steps, [None] * len(s.steps)) for s in sols[:10]] + sols[10:]
    _, metrics = train_process_rm(base, half, TrainOptions(epochs=2))
    assert metrics["solutions_without_labels"] == 10
    assert metrics["labelled_steps"] == sum(len(s.steps) for s in sols[10:])


def test_outcome_labels_and_errors(tmp_path):
    path = _write(tmp_path / "o.jsonl", [{"prompt": "P", "completion": "c", "correct": True},
                                         {"question": "P", "response": "r", "label": 0}])
    sols = load_solutions(path)
    assert [s.label for s in sols] == [1.0, 0.0]
    bad = _write(tmp_path / "ob.jsonl", [{"prompt": "P", "completion": "c"}])
    with pytest.raises(RefereeError, match=r"ob.jsonl:1: missing field 'correct'"):
        load_solutions(bad)
    assert load_solutions(bad, labelled=False)[0].label is None
    bad = _write(tmp_path / "oc.jsonl", [{"prompt": "P", "completion": "c", "correct": "yes"}])
    with pytest.raises(RefereeError, match=r"oc.jsonl:1: field 'correct'"):
        load_solutions(bad)


@pytest.mark.data("hh_rlhf/harmless_base_test.jsonl.gz")
def test_hh_rlhf_file_loads_as_prompt_and_final_answer():
    path = DATA / "hh_rlhf" / "harmless_base_test.jsonl.gz"
    pairs = load_preferences(path, limit=200)
    assert len(pairs) == 200
    with gzip.open(path, "rt") as f:
        first = json.loads(f.readline())
    assert first["chosen"].endswith(pairs[0].chosen)
    for p in pairs:
        assert p.prompt[-1]["role"] == "user" and p.prompt[0]["role"] == "user"
        assert "\n\nHuman:" not in p.chosen and "\n\nAssistant:" not in p.chosen


# ---- CLI --------------------------------------------------------------------------------------------------
def _cli(args, capsys):
    from referee.cli import main

    code = 0
    try:
        main(args)
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_train_score_eval_and_bad_input(base, tmp_path, capsys):
    pairs = toy_pairs(60, seed=7)
    rows = [{"prompt": p.prompt[0]["content"], "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    train = _write(tmp_path / "train.jsonl", rows[:40])
    test = _write(tmp_path / "test.jsonl", rows[40:])
    out = tmp_path / "rm"
    code, stdout, err = _cli(["rm", "train", "--kind", "rm", "--base", base, "--data", str(train), "--out", str(out),
                              "--epochs", "25"], capsys)
    assert code == 0, err
    assert "trained rm on 40 examples" in stdout
    code, stdout, err = _cli(["rm", "eval", "--model", str(out), "--data", str(test), "--out", str(tmp_path / "m.json")],
                             capsys)
    assert code == 0, err
    assert "pairwise accuracy" in stdout and "always-longer baseline" in stdout
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["pairs"] == 20 and metrics["accuracy"]["value"] >= 0.85
    assert metrics["accuracy"]["low"] <= metrics["accuracy"]["value"] <= metrics["accuracy"]["high"]
    sols = _write(tmp_path / "sols.jsonl", [{"prompt": "Q", "completion": "a certainly"}, {"prompt": "Q", "completion": "a maybe"}])
    code, stdout, err = _cli(["rm", "score", "--model", str(out), "--data", str(sols)], capsys)
    assert code == 0, err
    scored = [json.loads(line) for line in stdout.splitlines()]
    assert len(scored) == 2 and scored[0]["score"] > scored[1]["score"]
    # bad input: one line, exit status 2, naming file, line and field
    code, _, err = _cli(["rm", "eval", "--kind", "prm", "--model", str(out), "--data", str(test)], capsys)
    assert code == 2 and "trained as 'rm', not 'prm'" in err
    broken = _write(tmp_path / "steps.jsonl", [{"prompt": "P", "completions": ["a", "b"], "labels": [1, 0, 1]}])
    code, _, err = _cli(["rm", "train", "--kind", "prm", "--base", base, "--data", str(broken), "--out",
                         str(tmp_path / "prm")], capsys)
    assert code == 2 and "steps.jsonl:1: 2 steps in 'completions' but 3 labels" in err
    code, _, err = _cli(["rm", "train", "--kind", "rm", "--base", base, "--data", str(broken), "--out",
                         str(tmp_path / "x")], capsys)
    assert code == 2 and "steps.jsonl:1: missing field 'chosen'" in err
    code, _, err = _cli(["rm", "train", "--kind", "xx", "--base", base, "--data", str(train), "--out", str(out)], capsys)
    assert code == 2 and "--kind 'xx'" in err
    code, _, err = _cli(["rm", "train", "--kind", "rm", "--base", base, "--data", str(train), "--out", str(out),
                         "--epochs", "0"], capsys)
    assert code == 2 and "epochs" in err


def test_cli_prm_train_eval_score(base, tmp_path, capsys):
    sols = toy_step_solutions(60, seed=9)
    rows = [{"prompt": s.prompt[0]["content"], "completions": s.steps,
             "labels": [None if i == 0 else int(t) for i, t in enumerate(s.labels)]} for s in sols]
    train = _write(tmp_path / "train.jsonl", rows[:45])
    test = _write(tmp_path / "test.jsonl", rows[45:])
    code, _, err = _cli(["rm", "train", "--kind", "prm", "--base", base, "--data", str(train), "--out",
                         str(tmp_path / "prm"), "--epochs", "25"], capsys)
    assert code == 0, err
    code, stdout, err = _cli(["rm", "eval", "--model", str(tmp_path / "prm"), "--data", str(test)], capsys)
    assert code == 0, err
    assert "step accuracy" in stdout and "(15 without a label skipped)" in stdout
    code, stdout, err = _cli(["rm", "score", "--kind", "prm", "--model", str(tmp_path / "prm"), "--data", str(test),
                              "--out", str(tmp_path / "scored.jsonl")], capsys)
    assert code == 0, err
    scored = [json.loads(x) for x in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert len(scored) == 15 and all(len(r["steps"]) == len(rows[45 + i]["completions"]) for i, r in enumerate(scored))
    assert all(r["score"] == pytest.approx(math.prod(r["steps"])) for r in scored)


def test_cli_train_folder_repeats_with_referee_run(base, tmp_path, capsys, monkeypatch):
    """The verifier folder holds the config.yaml that trained it: run again unchanged, the verifier is kept
    (not retrained); a changed setting or a changed training record trains it again."""
    import yaml

    from referee import progress
    from referee.rewards.heads import CONFIG_NAME, HEAD_NAME

    monkeypatch.setattr(progress, "_quiet", False)  # the stage runner says what it read back
    rows = [{"prompt": p.prompt[0]["content"], "chosen": p.chosen, "rejected": p.rejected} for p in toy_pairs(30)]
    train = _write(tmp_path / "train.jsonl", rows)
    out = tmp_path / "rm"
    code, first, err = _cli(["rm", "train", "--kind", "rm", "--base", base, "--data", str(train), "--out", str(out),
                             "--epochs", "3"], capsys)
    assert code == 0, err
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["protocol"] == "reward_model" and config["training"]["epochs"] == 3
    head = (out / HEAD_NAME).read_bytes()

    code, again, err = _cli(["run", str(out / "config.yaml")], capsys)
    assert code == 0, err
    assert "train: finished earlier with the same inputs, read back" in err
    assert again == first and (out / HEAD_NAME).read_bytes() == head

    config["training"]["epochs"] = 4
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    code, stdout, err = _cli(["run", str(out / "config.yaml")], capsys)
    assert code == 0, err
    assert "train: its inputs changed since it last ran, recomputing" in err and "(epoch 4)" in stdout
    assert json.loads((out / CONFIG_NAME).read_text())["training"]["epochs"] == 4

    _write(train, rows[:-1] + [{**rows[-1], "chosen": rows[-1]["chosen"] + " indeed"}])
    code, _, err = _cli(["run", str(out / "config.yaml")], capsys)
    assert code == 0, err
    assert "train: its inputs changed since it last ran, recomputing" in err
    assert load_verifier("rm", out).config["data"] == str(train)


# ---- the real embedded model ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.data("hh_rlhf/harmless_base_test.jsonl.gz")
def test_embedded_backbone_trains_on_hh_rlhf_and_round_trips(tmp_path):
    path = DATA / "hh_rlhf" / "harmless_base_test.jsonl.gz"
    pairs = load_preferences(path, limit=4)
    rm, metrics = train_reward_model("embedded", pairs, TrainOptions(epochs=5, batch_size=4), max_length=64)
    assert metrics["examples"] == 4 and metrics["loss_last_epoch"] < metrics["loss_first_epoch"]
    rm.save(tmp_path / "rm")
    again = load_verifier("rm", tmp_path / "rm")
    assert again.net.base_spec == "embedded"
    prompts, answers = [p.prompt for p in pairs[:2]], [p.chosen for p in pairs[:2]]
    values = [s.value for s in again.score_many(prompts, answers)]
    assert values == [s.value for s in rm.score_many(prompts, answers)]
    assert all(math.isfinite(v) for v in values)
