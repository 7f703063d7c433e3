"""Feedback measured against an exact checker: the protocol end to end on a tiny model, and its pieces."""

from __future__ import annotations

import json

import pytest

from referee.config import validate
from referee.draws import seeded_unit
from referee.errors import RefereeError
from referee.feedback.preference_pairs import best_over_reference, best_scored, best_vs_worst, top_pairs
from referee.protocols import verifiable_feedback as vf
from referee.reports import draw_for
from referee.reports.verifiable_feedback import verdict_lines
from referee.runs import Run
from referee.stats import auc
from referee.tasks.arithmetic import Difficulty, check_solution, generate_problems, step_grade

TINY_TRAIN = {"learning_rate": 1e-3, "max_steps": 1, "batch_size": 4, "max_length": 256,
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0}}


def _config(model_path, out, **kw):
    data = {"model": f"hf:{model_path}", "out": str(out), "sft_problems": 4, "eft_problems": 2, "pair_problems": 6,
            "eval_problems": 5, "candidates": 3, "sampling": {"max_new_tokens": 8, "temperature": 1.0},
            "eval_max_new_tokens": 8, "sft": TINY_TRAIN, "dpo": TINY_TRAIN, "verifier": {"epochs": 2}}
    data.update(kw)
    return validate(vf.VerifiableFeedbackConfig, data, "test")


def _coin_checker(problem, text):
    """A tiny random model never solves a problem; this labels its answers by a seeded coin instead, so that
    the judges have right and wrong candidates to tell apart (the real checker is tested on its own)."""
    u = seeded_unit(0, "test-check", problem.id + text)
    return {"correct": u < 0.5, "grade": 5 if u < 0.5 else int(u * 10) % 5, "no_answer": False,
            "first_error": None, "steps": len(text.splitlines())}


@pytest.mark.parametrize("evaluate_on", ["dev", "test"])  # the report shows the problems of either set
def test_three_arms_end_to_end_report_and_resume(tiny_model_path, tmp_path, monkeypatch, evaluate_on):
    monkeypatch.setattr(vf, "checked", _coin_checker)
    cfg = _config(tiny_model_path, tmp_path / "run", evaluate_on=evaluate_on)
    with Run(cfg.out, cfg) as run:
        metrics = vf.run_verifiable_feedback(cfg, run).metrics
    draw_for("verifiable_feedback", run)
    folder = tmp_path / "run"
    assert set(metrics["evaluation"]) == {"M0", "M1", "M2-self", "M2-checker", "M2-verifier"}
    for arm in vf.ARMS:
        marker = json.loads((folder / "checkpoints" / f"m2_{arm}" / "referee-checkpoint.json").read_text())
        assert marker["base"] == metrics["models"]["M1"] and marker["kind"] == "dpo"
        pairs = [json.loads(x) for x in (folder / "records" / f"pairs_{arm}.jsonl").read_text().splitlines()]
        assert pairs and all(p["chosen_score"] > p["rejected_score"] for p in pairs)
        assert metrics["arms"][arm]["pairs"]["pairs"] == len(pairs)
    # the checker arm's pairs are right by construction; its judge is the ground truth
    assert metrics["arms"]["checker"]["pairs"]["chosen_really_better"]["value"] == 1.0
    assert metrics["arms"]["checker"]["judge"]["auc"]["value"] == 1.0
    # every verifier score comes from a head trained on the other fold's problems
    folds = {r["id"]: r["fold"] for r in (json.loads(x) for x in
                                          (folder / "records" / "judge_verifier.jsonl").read_text().splitlines())}
    assert set(folds.values()) == {1, 2}
    training = metrics["verifier_training"]
    assert [t["train"] + t["scored"] for t in training] == [6 * 3] * 2
    m1 = metrics["evaluation"]["M1"]
    assert m1["problems"] == 5 and m1["change_vs_m1"] is None
    change = metrics["evaluation"]["M2-checker"]["change_vs_m1"]
    assert change["n"] == 5 and change["low"] <= change["value"] <= change["high"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(metrics["models"].values()) <= set(manifest["models"])  # released models are still named
    html = (folder / "report.html").read_text()
    assert "a change of" in html and "How to read this" in html and "plots/accuracy.png" in html
    assert (folder / "plots" / "accuracy.png").stat().st_size > 1000

    with Run(cfg.out, cfg) as run:  # run again: every stage and checkpoint is read back, no model is called
        again = vf.run_verifiable_feedback(cfg, run).metrics
    assert again["evaluation"] == metrics["evaluation"]
    totals = json.loads((folder / "ledger.json").read_text())["totals"]
    assert totals["calls"] == 0 and totals["cached_calls"] == 0


def test_a_verifier_with_one_kind_of_candidate_stops_with_a_clear_error(tiny_model_path, tmp_path):
    # the real checker: a tiny random model gets nothing right, so the verifier has no right answer to learn
    cfg = _config(tiny_model_path, tmp_path / "run", arms=["verifier"])
    with pytest.raises(RefereeError, match="only wrong candidates to learn from"):
        with Run(cfg.out, cfg) as run:
            vf.run_verifiable_feedback(cfg, run)
    assert (tmp_path / "run" / "records" / "candidates.jsonl").exists()  # nothing computed is lost


def test_problem_sets_are_disjoint_fixed_and_refused_when_too_small(tmp_path):
    cfg = validate(vf.VerifiableFeedbackConfig, {"sft_problems": 50, "eft_problems": 10, "pair_problems": 20,
                                                 "eval_problems": 30}, "test")
    with Run(tmp_path / "a", cfg) as run:
        sets = vf._problem_sets(run, cfg)
    questions = [p.question for s in sets.values() for p in s]
    assert len(questions) == len(set(questions)) == 110
    bigger = cfg.model_copy(update={"sft_problems": 80})
    with Run(tmp_path / "b", bigger) as run:
        assert [p.id for p in vf._problem_sets(run, bigger)["eval"]] == [p.id for p in sets["eval"]]
    # one step, numbers up to 3: 20 names x 12 things x 2 starts x 3 amounts x 3 wordings = 4,320 questions
    tiny = validate(vf.VerifiableFeedbackConfig, {"task": {"steps": 1, "max_number": 3, "ops": ["add"]},
                                                  "eval_problems": 5000}, "test")
    with pytest.raises(RefereeError, match="distinct problems left for the eval set"):
        with Run(tmp_path / "c", tiny) as run:
            vf._problem_sets(run, tiny)


def test_test_problems_come_from_a_namespace_no_tuning_set_reaches_and_training_sets_stay_the_same(tmp_path):
    """evaluate_on: test scores problems drawn after the others from TEST_NAMESPACE + seed: none is a
    question of this run's sets, nor of any dev or training set of seeds 0-4 (the sets recipes are tuned
    on); the training sets are those of the dev run, so a test run reuses its M1."""
    base = {"sft_problems": 50, "eft_problems": 10, "pair_problems": 20, "eval_problems": 30}
    dev = validate(vf.VerifiableFeedbackConfig, base, "test")
    test = validate(vf.VerifiableFeedbackConfig, {**base, "evaluate_on": "test"}, "test")
    with Run(tmp_path / "dev", dev) as run:
        dev_sets = vf._problem_sets(run, dev)
    with Run(tmp_path / "test", test) as run:
        test_sets = vf._problem_sets(run, test)
    for name in ("sft", "eft", "pairs"):
        assert [p.id for p in test_sets[name]] == [p.id for p in dev_sets[name]]
    held_out = {p.question for p in test_sets["eval"]}
    assert len(held_out) == 30 and all("seed1000000" in p.id for p in test_sets["eval"])
    tuned_on = {p.question for seed in range(5) for s in vf.distinct_problem_sets(dev.task, {
        "eval": 256, "sft": 96, "eft": 24, "pairs": 192}, seed, "t").values() for p in s}
    assert not held_out & {p.question for s in dev_sets.values() for p in s}
    assert not held_out & tuned_on


def test_step_grade_follows_the_first_wrong_step():
    p = generate_problems(1, Difficulty(steps=3), seed=4)[0]
    assert step_grade(check_solution(p, p.steps)) == 5
    wrong_last = p.steps[:-1] + [f"The answer is {int(p.answer) + 1}."]
    assert step_grade(check_solution(p, wrong_last)) == 3  # 3 of 4 lines right before the slip
    wrong_first = [p.steps[0].split("=")[0] + f"= {10 ** 6}."] + p.steps[1:]
    assert step_grade(check_solution(p, wrong_first)) == 0
    assert step_grade(check_solution(p, p.steps[:2])) == 4  # right so far, but it stops before the end
    assert step_grade(check_solution(p, "")) == 0


def test_eft_examples_pair_references_with_corrupted_solutions():
    problems = generate_problems(6, Difficulty(steps=3), seed=5)
    examples = vf.eft_examples(problems, seed=0)
    assert [e["score"] == 5 for e in examples] == [True, False] * 3
    assert examples == vf.eft_examples(problems, seed=0)


def test_top_pairs_widest_margins_first_and_best_vs_worst_unchanged():
    scores = [3.0, None, 5.0, 1.0, 5.0]
    pairs = top_pairs("q", ["a", "b", "c", "d", "e"], scores, k=3)
    assert [(p["chosen"], p["rejected"], p["margin"]) for p in pairs] == [("c", "d", 4.0), ("e", "d", 4.0),
                                                                         ("a", "d", 2.0)]
    single = best_vs_worst("q", ["a", "b", "c", "d", "e"], scores)
    assert single == {"prompt": "q", "chosen": "c", "rejected": "d", "chosen_score": 5.0, "rejected_score": 1.0,
                      "margin": 4.0}
    assert top_pairs("q", ["a", "b"], [2.0, 2.0], k=2) == []


def test_auc_counts_ties_half_and_is_undefined_with_one_class():
    assert auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert auc([0.5, 0.5], [1, 0]) == 0.5
    assert auc([0.2, 0.9], [1, 0]) == 0.0
    assert auc([0.2, 0.9], [1, 1]) != auc([0.2, 0.9], [1, 1])  # nan


def test_verdict_lines_say_whether_the_interval_excludes_zero():
    def model(acc, change=None):
        return {"accuracy": {"value": acc}, "problems": 100, "change_vs_m1": change}

    metrics = {"evaluation": {"M0": model(0.02), "M1": model(0.3),
                              "M2-checker": model(0.4, {"value": 0.1, "low": 0.03, "high": 0.17, "n": 100}),
                              "M2-self": model(0.29, {"value": -0.01, "low": -0.08, "high": 0.06, "n": 100})}}
    lines = verdict_lines(metrics)
    assert lines[0].startswith("M0 (no training) answers 2.0% of 100")
    assert "+10.0 points [+3.0, +17.0]" in lines[1] and "an improvement" in lines[1]
    assert "not distinguishable from no change" in lines[2]


def test_the_quick_start_and_every_shipped_config_are_valid():
    from pathlib import Path

    from referee import protocols
    from referee.cli.quickstart import QUICK
    from referee.config import load_config_file

    validate(vf.VerifiableFeedbackConfig, QUICK, "quickstart")
    shipped = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
    assert any(p.name == "verifiable_feedback_arithmetic.yaml" for p in shipped)
    for path in shipped:
        data = load_config_file(path)
        validate(protocols.get(data["protocol"]).config, data, str(path))


def test_a_right_number_counts_only_when_stated_as_the_answer():
    p = generate_problems(1, Difficulty(steps=2), seed=6)[0]
    right = vf.checked(p, "\n".join(p.steps))
    assert right["correct"] and right["grade"] == 5 and not right["no_answer"]
    lucky = vf.checked(p, f"7: 1 = 2: {p.answer}")  # a degenerate answer whose last number is right
    assert not lucky["correct"] and lucky["no_answer"] and lucky["grade"] == 0
    assert check_solution(p, f"7: 1 = 2: {p.answer}").correct  # the plain checker would have taken it


def test_a_model_key_is_the_model_s_own_key_and_never_reloads_a_released_model(tiny_model_path, tmp_path,
                                                                               monkeypatch):
    from referee import models
    from referee.runs import fingerprint

    spec = f"hf:{tiny_model_path}"
    with Run(tmp_path / "r") as run:
        key = run.model_key(spec)  # never loaded before: loaded for its key, then let go
        assert spec not in run.models
        assert fingerprint({"m": key}) == fingerprint({"m": run.model(spec)})  # the same key as the model itself
        run.release(spec)
        monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("reloaded a released model"))
        assert run.model_key(spec) == key and spec not in run.models


def _fake_run(folder, seed, m1, m2):
    """A verifiable_feedback run folder holding only what pooling reads."""
    (folder / "records").mkdir(parents=True)
    (folder / "config.yaml").write_text(f"protocol: verifiable_feedback\nseed: {seed}\n")
    for stage, flags in (("eval_m1", m1), ("eval_m2_checker", m2)):
        (folder / "records" / f"{stage}.jsonl").write_text(
            "".join(json.dumps({"id": f"s{seed}-{k}", "correct": c}) + "\n" for k, c in enumerate(flags)))
    return folder


def test_pooling_runs_narrows_the_interval_and_refuses_shared_problems(tmp_path):
    from referee.feedback.pooled import pooled_change

    one = _fake_run(tmp_path / "a", 0, [False] * 40 + [True] * 40, [True] * 10 + [False] * 30 + [True] * 40)
    two = _fake_run(tmp_path / "b", 1, [False] * 40 + [True] * 40, [True] * 6 + [False] * 34 + [True] * 40)
    result = pooled_change([one, two])
    assert [r["change"]["value"] for r in result["runs"]] == [pytest.approx(10 / 80), pytest.approx(6 / 80)]
    pooled = result["pooled"]
    assert pooled["value"] == pytest.approx(16 / 160) and pooled["n"] == 160
    assert pooled["low"] > 0 and result["flipped_right"] == 16 and result["flipped_wrong"] == 0
    width = lambda e: e["high"] - e["low"]  # noqa: E731
    assert width(pooled) < min(width(r["change"]) for r in result["runs"])
    with pytest.raises(RefereeError, match="share 80 held-out problems"):
        pooled_change([one, one])
    (two / "config.yaml").write_text("protocol: verifiable_feedback\nseed: 1\nevaluate_on: test\n")
    with pytest.raises(RefereeError, match="scored on its test problems.*pool runs of one split"):
        pooled_change([one, two])
    (two / "config.yaml").write_text("protocol: verifiable_feedback\nseed: 1\n")
    (one / "records" / "eval_m2_checker.jsonl").unlink()
    with pytest.raises(RefereeError, match="has this run evaluated M2-checker"):
        pooled_change([one, two])


def test_best_over_reference_only_when_the_best_beats_the_reference():
    pair = best_over_reference("q", ["a", "b", "c"], [0.2, None, 0.9], "mine", 0.5)
    assert pair == {"prompt": "q", "chosen": "c", "rejected": "mine", "margin": pytest.approx(0.4)}
    assert best_over_reference("q", ["a", "c"], [0.2, 0.5], "mine", 0.5) is None  # a tie teaches nothing
    assert best_over_reference("q", ["a"], [None], "mine", 0.1) is None  # nothing scored
    assert best_over_reference("q", ["a"], [0.9], "mine", None) is None  # the reference unscored
    assert best_over_reference("q", ["mine"], [0.9], "mine", 0.1) is None  # never a pair of one text
    assert best_scored(["a", "b", "c"], [0.7, None, 0.7]) == (0.7, "a") and best_scored(["a"], [None]) is None
