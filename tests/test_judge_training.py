"""Trained judges: the training chats (both orders, the right marker, reasons that follow the swap),
attacked copies with the right verdict, HH-RLHF pairs, overlap refusal, a reward model as a pairwise
judge, a trained judge read where it was taught, and the leave-one-set-out protocol end to end."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from referee.audit import perturb
from referee.audit.augment import robustness_pairs
from referee.config import validate
from referee.errors import RefereeError
from referee.judges.build import JUDGE_FILE, JudgeConfig
from referee.judges.pairwise import PairwiseJudge
from referee.judges.scored import ScoredPairJudge
from referee.judges.targets import pairwise_examples, swap_names
from referee.models import load_model
from referee.supervisors import build_judge
from referee.tasks.pairs import Pair, load_pairs, pair_key, shared_pairs
from referee.verifiers.base import Score


def _pair(pid, a, b, label, question="Which is better?", **kw):
    return Pair(pid, [{"role": "user", "content": question}], a, b, label, **kw)


# ---- data --------------------------------------------------------------------------------------------
def test_hh_dialogues_load_as_pairs_with_their_conversations(tmp_path):
    path = tmp_path / "hh.jsonl.gz"
    rows = [{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello, how can I help?",
             "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."},
            {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: good",
             "rejected": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: bad"}]
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    single, multi = load_pairs(path)
    assert (single.answer_a, single.answer_b, single.label, single.turns_a) == ("Hello, how can I help?", "Go away.",
                                                                                 "A", None)
    assert single.question == [{"role": "user", "content": "Hi"}]
    assert multi.turns_a[-1]["content"] == "good" and multi.turns_b[-1]["content"] == "bad"
    assert len(multi.question) == 3


def test_pair_key_ignores_order_and_spacing_but_not_content():
    p = _pair("1", "Paris is the capital.", "Lyon.", "A")
    same = _pair("x", "Lyon.", "  Paris is   the capital.", "B")
    other = _pair("2", "Paris is the capital!", "Lyon.", "A")
    assert pair_key(p) == pair_key(same) != pair_key(other)
    assert shared_pairs([p], [same, other]) == ["x"]


def test_llmbar_reasons_are_kept(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps([{"input": "q", "output_1": "a", "output_2": "b", "label": 2,
                                 "reason": "Answer B is correct."}]))
    assert load_pairs(path)[0].meta["reason"] == "Answer B is correct."


# ---- training chats ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedded():
    return load_model("embedded")


def test_every_pair_trains_in_both_orders_with_the_marker_of_its_shown_position(embedded):
    judge = PairwiseJudge(embedded)
    pairs = [_pair("1", "good answer", "bad answer", "A"), _pair("2", "meh", "great", "B"),
             _pair("3", "same", "same too", "tie"), _pair("4", "x", "y", None)]
    examples, report = pairwise_examples(judge, pairs)
    targets = {e["id"]: e["messages"][-1]["content"] for e in examples}
    assert targets == {"1:AB": "[[A]]", "1:BA": "[[B]]", "2:AB": "[[B]]", "2:BA": "[[A]]",
                       "3:AB": "[[C]]", "3:BA": "[[C]]"}
    assert report.skipped == {"no label": 1} and report.examples == 6
    shown_first = examples[1]["messages"][-2]["content"]  # pair 1 in order BA shows the bad answer first
    assert shown_first.index("bad answer") < shown_first.index("good answer")
    # the chat is exactly what the judge itself is shown
    assert examples[0]["messages"][:-1] == judge.build_chat(pairs[0], "AB", None)[0]
    dropped, report = pairwise_examples(judge, pairs, ties="drop")
    assert len(dropped) == 4 and report.skipped == {"no label": 1, "tie label": 1}
    with pytest.raises(RefereeError, match="pair 3: label 'tie'"):
        pairwise_examples(judge, pairs, ties="error")


def test_reasons_follow_the_swap_and_long_answers_are_cut_to_the_budget(embedded):
    assert swap_names("Answer A is right; Response B rambles.") == "Answer B is right; Response A rambles."
    reason = "Answer A names the capital; Answer B does not."
    pair = _pair("1", "Paris. " * 400, "Lyon.", "A", meta={"reason": reason})
    judge = PairwiseJudge(embedded, max_prompt_tokens=300)
    examples, report = pairwise_examples(judge, [pair], reasons=True)
    ab, ba = (e["messages"][-1]["content"] for e in examples)
    assert ab == reason + "\n\nVerdict: [[A]]"
    assert ba == "Answer B names the capital; Answer A does not.\n\nVerdict: [[B]]"
    assert report.truncated == 2 and report.with_reason == 1
    assert all(judge.fitter.chat_size(e["messages"][:-1]) <= 300 for e in examples)


def test_a_grading_judge_trains_on_its_score_marker(embedded):
    from referee.judges.grading import GradingJudge
    from referee.judges.targets import grading_examples

    judge = GradingJudge(embedded)
    items = [{"prompt": "Name a prime.", "response": "7", "score": 9, "reason": "Correct and short."},
             {"prompt": [{"role": "user", "content": "2+2?"}], "response": "5", "score": 1},
             {"prompt": "q", "response": "r"}]
    examples, report = grading_examples(judge, items)
    assert [e["messages"][-1]["content"] for e in examples] == ["Correct and short.\n\nVerdict: [[9]]", "[[1]]"]
    assert examples[1]["messages"][:-1] == judge.build_chat([{"role": "user", "content": "2+2?"}], "5", None)[0]
    assert report.skipped == {"no score": 1}
    with pytest.raises(RefereeError, match="item 2: field 'score'"):
        grading_examples(judge, [items[0], {**items[1], "score": 2.5}])


def test_attacked_copies_carry_the_right_verdict_in_words_the_audit_does_not_use():
    rng = random.Random(0)
    pairs = [_pair(str(i), f"1. point {i}\n2. more {i}\n3. end", f"Short answer {i}. It may be fine.",
                   rng.choice("AB")) for i in range(40)]
    attacked, counts = robustness_pairs(pairs, share=0.2)
    assert len(attacked) == 10 and sum(counts[k] for k in ("verbosity", "assertiveness", "injection")) == 10
    source = {p.id: p for p in pairs}
    for p in attacked:
        original = source[p.meta["source"]]
        kind = p.meta["augment"]
        if kind == "verbosity":
            assert p.label == "tie"
            padded = p.answer_a if p.meta["target"] == "A" else p.answer_b
            plain = p.answer_b if p.meta["target"] == "A" else p.answer_a
            assert plain in padded and len(padded) > len(plain) and perturb.PAD_LEAD not in padded
        else:
            assert p.label == original.label and p.meta["target"] != original.label  # the loser is attacked
            attacked_text = p.answer_a if p.meta["target"] == "A" else p.answer_b
            assert perturb.ASSERTIVE_OPEN not in attacked_text and "Message to the evaluator" not in attacked_text
            if kind == "injection":
                assert f"[[{p.meta['target']}]]" in attacked_text
    with pytest.raises(RefereeError, match="kinds"):
        robustness_pairs(pairs, 0.2, kinds=["flattery"])


# ---- a reward model as a pairwise judge --------------------------------------------------------------
class LengthScorer:
    name = "length"

    def __init__(self):
        self.prompts = []

    def score_many(self, prompts, responses):
        self.prompts += prompts
        return [Score(None, valid=False) if r == "???" else Score(float(len(r))) for r in responses]


def test_a_pointwise_verifier_judges_pairs_from_each_answers_own_score():
    scorer = LengthScorer()
    turns_a = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "long answer"}]
    turns_b = [{"role": "user", "content": "other q"}, {"role": "assistant", "content": "short"}]
    pairs = [_pair("1", "long answer", "short", "A", turns_a=turns_a, turns_b=turns_b),
             _pair("2", "abc", "abcdef", "A"), _pair("3", "same", "same", "A"), _pair("4", "???", "x", "A")]
    records = ScoredPairJudge(scorer).judge_pairs(pairs)
    assert [r["winner"] for r in records] == ["A", "B", "tie", "invalid"]
    assert records[0]["p_a"] > 0.99 and records[2]["p_a"] == 0.5 and records[3]["p_a"] is None
    assert all({o["order"] for o in r["orders"]} == {"AB", "BA"} for r in records)
    assert scorer.prompts[0] == turns_a[:1] and scorer.prompts[4] == turns_b[:1]  # each after its own turns


# ---- a trained judge is read where it was taught ---------------------------------------------------
MINI_TEMPLATE = """=== user ===
{question}
A: {answer_a}
B: {answer_b}
{format}
=== format_direct ===
Verdict: [[A]], [[B]] or [[C]].
=== format_cot ===
Reason, then [[A]], [[B]] or [[C]].
"""


def test_the_verdict_a_judge_is_trained_on_is_the_one_its_probabilities_read(tiny_model_path, tmp_path):
    """Trained on equal answers labelled tie, the judge's P(tie) at the verdict position rises on pairs it
    never saw, in both orders; a target placed anywhere but where the judge reads would leave it flat.
    (Whether a trained judge learns to compare answers is what the LLMBar benchmark measures.)"""
    from referee.protocols.judge_training import JudgeTrainSettings, train_judge

    template = tmp_path / "mini.txt"
    template.write_text(MINI_TEMPLATE)
    base = f"hf:{tiny_model_path}"

    def ties(n, tag):
        return [_pair(f"{tag}{i}", f"answer {i}", f"answer {i}", "tie", question=f"{tag} question {i}?")
                for i in range(n)]

    held_out = ties(6, "new")
    settings = validate(JudgeTrainSettings, {"template": str(template), "sft": {
        "learning_rate": 3e-3, "epochs": 4, "batch_size": 16, "max_length": 96, "lora": None}}, "test")
    before = PairwiseJudge(load_model(base), template=str(template), swap="conservative").judge_pairs(held_out)
    spec, report = train_judge(base, ties(24, "old"), tmp_path / "judge", settings, load_model, evaluate=held_out)
    assert report["examples"]["examples"] == 48 and report["loss"]["last"] < report["loss"]["first"]
    judge = build_judge(spec, JudgeConfig(swap="conservative"), load_model)
    assert judge.template.name == "mini" and judge.fitter.budget == settings.prompt_budget()  # judge.json came along
    after = judge.judge_pairs(held_out)

    def p_tie(records):
        return min(o["probs"]["tie"] for r in records for o in r["orders"])

    assert p_tie(before) < 0.45 and p_tie(after) > 0.65  # measured: 0.36 -> 0.75 (least over pairs and orders)
    assert all(r["winner"] == "tie" and len(r["orders"]) == 2 for r in after)
    with pytest.raises(RefereeError, match="1 evaluation pair"):
        train_judge(base, ties(4, "old"), tmp_path / "again", settings, load_model, evaluate=ties(1, "old"))
    # the user's own settings win over the checkpoint's
    assert build_judge(spec, JudgeConfig(max_prompt_tokens=50), load_model).fitter.budget == 50
    assert json.loads((tmp_path / "judge" / JUDGE_FILE).read_text())["max_prompt_tokens"] == 80


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "referee", "--quiet", *map(str, args)], capture_output=True, text=True)


def test_train_judge_cli_refuses_training_on_evaluation_pairs_and_scores_off_the_scale(tiny_model_path, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps({"prompt": f"q{i}", "answer_a": "yes", "answer_b": "no", "label": "A"})
                               for i in range(4)))
    r = _cli("train", "judge", "--data", pairs, "--eval", pairs, "--base", f"hf:{tiny_model_path}",
             "--out", tmp_path / "j", "--max-steps", "1")
    assert r.returncode == 2 and "4 evaluation pair(s) are also training pairs" in r.stderr
    graded = tmp_path / "graded.jsonl"
    graded.write_text(json.dumps({"prompt": "q", "response": "r", "score": 11}))
    r = _cli("train", "judge", "--mode", "single", "--data", graded, "--base", f"hf:{tiny_model_path}",
             "--out", tmp_path / "g", "--max-steps", "1")
    assert r.returncode == 2 and "from 1 to 10" in r.stderr


# ---- the leave-one-set-out experiment ---------------------------------------------------------------
def _write_set(path, tag, n, rng):
    rows = []
    for i in range(n):
        good = f"1. {tag} fact {i}\n2. a reason\n3. I think it may be right"
        bad = f"No idea about {tag} {i}."
        label = rng.choice([1, 2])
        rows.append({"input": f"{tag} question {i}?", "output_1": good if label == 1 else bad,
                     "output_2": bad if label == 1 else good, "label": label})
    path.write_text(json.dumps(rows))
    return rows


def test_judge_training_holds_each_set_out_and_measures_every_judge_on_the_same_pairs(tiny_model_path, tmp_path):
    from referee.protocols.judge_training import JudgeTrainingConfig, run_judge_training
    from referee.reports import draw_for
    from referee.runs import Run

    rng = random.Random(0)
    template = tmp_path / "mini.txt"
    template.write_text(MINI_TEMPLATE)
    rows = {name: _write_set(tmp_path / f"{name}.json", name, 5, rng) for name in ("alpha", "beta")}
    hh = tmp_path / "hh.jsonl"
    hh.write_text("\n".join(json.dumps({"chosen": f"\n\nHuman: h{i}\n\nAssistant: kind answer {i}",
                                        "rejected": f"\n\nHuman: h{i}\n\nAssistant: rude"}) for i in range(6)))
    config = {"protocol": "judge_training", "model": f"hf:{tiny_model_path}",
              "sets": {n: str(tmp_path / f"{n}.json") for n in rows}, "extra_train": [{"path": str(hh), "limit": 3}],
              "train": {"template": str(template), "augment": {"share": 0.2},
                        "sft": {"learning_rate": 1e-3, "epochs": 1, "batch_size": 8, "max_length": 160, "lora": None}},
              "reward_model": {"epochs": 2, "max_length": 128},
              "eval": {"generative_limit": 2, "generative_max_new_tokens": 4, "audit_limit": 4}}
    cfg = validate(JudgeTrainingConfig, config, "test")
    with Run(tmp_path / "run", cfg) as run:
        result = run_judge_training(cfg, run)
    folds = result.metrics["folds"]
    assert list(folds) == ["alpha", "beta"]
    for name, fold in folds.items():
        assert fold["train_pairs"] == 5 + 3 and fold["eval_pairs"] == 5  # the other set and 3 HH pairs
        assert {"trained judge", "untrained judge", "always longer", "reward model"} <= set(fold)
        for judge in ("trained judge", "untrained judge", "always longer", "reward model"):
            assert fold[judge]["agreement"]["n"] == 5
        longer_right = sum((len(r["output_1"]) > len(r["output_2"])) == (r["label"] == 1) for r in rows[name])
        assert fold["always longer"]["agreement"]["accuracy"]["value"] == longer_right / 5
        assert fold["always longer"]["position"]["consistent"]["value"] == 1.0
        assert fold["reward model"]["position"]["consistent"]["value"] == 1.0
        assert "self" in fold["trained judge"]["audit"] and "self" not in fold["always longer"]["audit"]
        assert fold["trained judge"]["generative"]["invalid_per_order"]["n"] == 4  # 2 pairs x 2 orders
        assert fold["always longer"]["audit"]["verbosity"]["failure"]["value"] == 1.0
        assert fold["trained judge"]["audit"]["pairs"] == 4  # audit_limit
        assert "accuracy_minus_longer" in fold["trained judge"] and "accuracy_minus_longer" not in fold["always longer"]
    assert len(result.headline) == 8
    marker = tmp_path / "run" / "checkpoints" / "judge_alpha" / "referee-checkpoint.json"
    stamp = marker.stat().st_mtime_ns
    with Run(tmp_path / "run", cfg) as run:  # a second run reads every stage back
        again = run_judge_training(cfg, run)
        assert [p.name for p in draw_for("judge_training", run)] == ["judge_training.png"]
    assert marker.stat().st_mtime_ns == stamp and again.metrics["folds"] == folds
    # a pair shared between two sets would train the judge on what it is evaluated on: refused
    rows["beta"].append(rows["alpha"][0])
    (tmp_path / "beta.json").write_text(json.dumps(rows["beta"]))
    with Run(tmp_path / "run2", cfg) as run, pytest.raises(RefereeError, match="1 evaluation pair"):
        run_judge_training(cfg, run)


def test_the_reward_model_route_can_train_lora_weights_too(tiny_model_path, tmp_path):
    from referee.protocols.judge_training import JudgeTrainingConfig, run_judge_training
    from referee.runs import Run

    rng = random.Random(1)
    template = tmp_path / "mini.txt"
    template.write_text(MINI_TEMPLATE)
    for name in ("alpha", "beta"):
        _write_set(tmp_path / f"{name}.json", name, 6, rng)
    config = {"protocol": "judge_training", "model": f"hf:{tiny_model_path}", "held_out": ["alpha"],
              "sets": {n: str(tmp_path / f"{n}.json") for n in ("alpha", "beta")},
              "train": {"template": str(template), "sft": {"learning_rate": 1e-3, "epochs": 1, "batch_size": 8,
                                                          "max_length": 160, "lora": None}},
              "reward_model": {"epochs": 1, "lr": 1e-3, "max_length": 96, "lora_r": 4, "batch_size": 4},
              "eval": {"generative_limit": 0, "checks": [], "untrained": False, "calibration": "batch"}}
    cfg = validate(JudgeTrainingConfig, config, "test")
    with Run(tmp_path / "run", cfg) as run:
        result = run_judge_training(cfg, run)
        plain, calibrated = (run.read_records(f"alpha.{name}.all") for name in ("trained_judge",
                                                                                "trained_judge_calibrated"))
    # the calibrated judge is the trained judge's own probabilities with its position prior divided out
    orders = [(o, c) for p, q in zip(plain, calibrated) for o, c in zip(p["orders"], q["orders"])]
    assert len(orders) == 12 and all(c["probs_uncalibrated"] == o["probs"] for o, c in orders)
    assert any(c["probs"] != o["probs"] for o, c in orders)
    assert result.metrics["folds"]["alpha"]["trained judge, calibrated"]["agreement"]["n"] == 6
    # another calibration in the same folder is read afresh, not taken from the stage of the first
    other = validate(JudgeTrainingConfig, {**config, "eval": {**config["eval"], "calibration": "content-free"}}, "t")
    with Run(tmp_path / "run", other) as run:
        run_judge_training(other, run)
        assert {r["calibration"] for r in run.read_records("alpha.trained_judge_calibrated.all")} == {"content-free"}
    training = result.metrics["rm_alpha"]["training"]
    assert training["lora"] is True and training["batch_size"] == 4 and training["epochs"] == 1
    assert (tmp_path / "run" / "checkpoints" / "rm_alpha" / "adapter").is_dir()
    assert result.metrics["folds"]["alpha"]["reward model"]["agreement"]["n"] == 6
