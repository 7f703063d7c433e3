"""Best-of-N: the selection math against brute force and hand-computed values, and the protocol end to end
with a stand-in policy and stand-in verifiers (plus one run through `referee run` on a tiny model)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import sys
import types

import numpy as np
import pytest

from referee import progress
from referee.errors import RefereeError
from referee.models.base import Completion, Model
from referee.protocols.best_of_n import (BestOfNConfig, Method, ProblemSamples, accuracy_curves, build_verifier,
                                         run_best_of_n, sizes, subsets, VerifierSpec)
from referee.reports import draw_for
from referee.runs import Run
from referee.tasks.arithmetic import Difficulty, check_solution, corrupt_solution, generate_problems
from referee.rewards import load_steps
from referee.verifiers.base import PointwiseVerifier, Score

NAN = float("nan")


# ---- brute force: the rules written out plainly, one subset at a time ------------------------------
def brute_pick(method: str, correct, answers, scores, subset) -> float:
    if method == "random":
        return sum(correct[i] for i in subset) / len(subset)
    if method == "best":
        vals = {i: (-math.inf if math.isnan(scores[i]) else scores[i]) for i in subset}
        top = max(vals.values())
        winners = [i for i in subset if vals[i] == top]
        return sum(correct[i] for i in winners) / len(winners)
    # votes: majority (weight 1) or weighted by score; samples without an answer do not vote
    tally = {}
    for i in subset:
        if answers[i] is None:
            continue
        w = 1.0 if method == "majority" else (0.0 if math.isnan(scores[i]) else scores[i])
        tally[answers[i]] = tally.get(answers[i], 0.0) + w
    if not tally:
        return 0.0
    top = max(tally.values())
    winners = [a for a, t in tally.items() if abs(t - top) <= 1e-9]
    right = {answers[i] for i in range(len(answers)) if correct[i] and answers[i] is not None}
    return sum(a in right for a in winners) / len(winners)


def brute_curve(method, problems, n):
    per = []
    for correct, answers, scores in problems:
        subs = list(itertools.combinations(range(len(correct)), n))
        per.append(sum(brute_pick(method, correct, answers, scores, s) for s in subs) / len(subs))
    return sum(per) / len(per)


METHODS = [Method("random", "random"), Method("majority", "majority"), Method("v", "best", "v"),
           Method("v_vote", "vote", "v")]
KIND = {"random": "random", "majority": "majority", "v": "best", "v_vote": "weighted"}


def _build(problems):
    return [ProblemSamples.build(c, a, {"v": s}) for c, a, s in problems]


def test_hand_computed_example():
    # four samples: only #0 is right (answer 5); #1 and #2 say 7; #3 has no answer and an unreadable score
    problems = [([1, 0, 0, 0], ["5", "7", "7", None], [0.9, 0.7, 0.1, NAN])]
    curves = accuracy_curves(_build(problems), METHODS, n_subsets=100, n_boot=50)
    expect = {
        1: {"random": 0.25, "majority": 0.25, "v": 0.25, "v_vote": 0.25},
        # pairs: {0,1} {0,2} tie 5 vs 7 -> 0.5 each, {0,3} -> 1, the rest 0  => 2/6
        2: {"random": 0.25, "majority": 2 / 6, "v": 0.5, "v_vote": (1 + 1 + 1) / 6},
        4: {"random": 0.25, "majority": 0.0, "v": 1.0, "v_vote": 1.0},  # 0.9 against 0.7 + 0.1
    }
    for n, by_method in expect.items():
        for name, value in by_method.items():
            assert curves[name][n]["accuracy"] == pytest.approx(value), (n, name)


def _random_problems(seed, count, n_max):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        answers = [rng.choice(["1", "2", "3", None]) for _ in range(n_max)]
        right = rng.choice(["1", "2", "3"])
        correct = [a == right for a in answers]
        # coarse scores so that ties happen; some unreadable
        scores = [NAN if rng.random() < 0.1 else rng.choice([0.2, 0.5, 0.5, 0.9]) for _ in range(n_max)]
        out.append((correct, answers, scores))
    return out


def test_exact_curves_match_brute_force():
    problems = _random_problems(0, 12, 6)
    curves = accuracy_curves(_build(problems), METHODS, n_subsets=1000, n_boot=50)
    assert sorted(curves["random"]) == [1, 2, 4, 6]
    for name, kind in KIND.items():
        for n in (1, 2, 4, 6):
            assert curves[name][n]["accuracy"] == pytest.approx(brute_curve(kind, problems, n)), (name, n)


def test_random_subsets_approach_brute_force():
    problems = _random_problems(1, 8, 10)  # C(10, 4) = 210 subsets; draw 3000 random ones
    curves = accuracy_curves(_build(problems), METHODS, n_subsets=3000, n_boot=50, seed=5)
    for name, kind in KIND.items():
        assert curves[name][4]["accuracy"] == pytest.approx(brute_curve(kind, problems, 4), abs=0.03), name


def test_majority_tie_breaking_is_uniform():
    # two answers, two votes each; one right: the expected accuracy is exactly one half
    p = ProblemSamples.build([1, 1, 0, 0], ["4", "4", "9", "9"])
    c = accuracy_curves([p], [Method("majority", "majority")], n_subsets=10, n_boot=10)
    assert c["majority"][4]["accuracy"] == 0.5
    # three-way tie, one right: one third; no answers at all: zero
    p3 = ProblemSamples.build([1, 0, 0], ["4", "5", "6"])
    assert accuracy_curves([p3], [Method("majority", "majority")], 10, 10)["majority"][2]["accuracy"] == \
        pytest.approx(1 / 3)  # 3 pairs, each a 1-1 tie: (1/2 + 1/2 + 0) / 3
    none = ProblemSamples.build([0, 0], [None, None])
    assert accuracy_curves([none], [Method("majority", "majority")], 10, 10)["majority"][2]["accuracy"] == 0.0


def test_intervals_and_subset_helpers():
    assert sizes(64) == [1, 2, 4, 8, 16, 32, 64] and sizes(12) == [1, 2, 4, 8, 12] and sizes(1) == [1]
    rng = np.random.default_rng(0)
    exact = subsets(5, 2, 100, rng)
    assert exact.shape == (10, 2) and len({tuple(r) for r in exact}) == 10
    drawn = subsets(64, 8, 50, rng)
    assert drawn.shape == (50, 8) and all(len(set(r)) == 8 for r in drawn)
    problems = _random_problems(2, 30, 4)
    c = accuracy_curves(_build(problems), METHODS, n_subsets=50, n_boot=500)
    for name in c:
        for point in c[name].values():
            assert point["low"] <= point["accuracy"] <= point["high"]
    one = accuracy_curves(_build(problems[:1]), METHODS, 50, 200)
    assert one["random"][1]["low"] == one["random"][1]["high"]  # one problem: nothing to resample


# ---- the protocol with stand-ins -------------------------------------------------------------------
class StandInPolicy(Model):
    """Writes the reference solution (40%), a corrupted one (45%) or no answer (15%), by sample seed."""

    spec = "stand-in-policy"
    fingerprint = "stand-in-policy-v1"

    def __init__(self, problems):
        super().__init__()
        self.by_prompt = {p.prompt(): p for p in problems}

    def _generate(self, requests):
        out = []
        for r in requests:
            p = self.by_prompt[r.chat[-1]["content"]]
            rng = random.Random(r.seed)
            u = rng.random()
            if u < 0.4:
                text = "\n".join(p.steps)
            elif u < 0.85:
                text = "\n".join(corrupt_solution(p, rng) or ["I am stuck."])
            else:
                text = "Let me think about the marbles."
            out.append(Completion(text, 10, 10, "stop"))
        return out


class CheckerPRM:
    """A stand-in PRM from the exact checker: 0.95 for a right step, 0.6 for a neutral one, 0.2 for a wrong one."""

    def __init__(self, problems):
        self.by_prompt = {p.prompt(): p for p in problems}
        self.calls = 0

    def score_steps(self, prompts, steps_list):
        self.calls += 1
        return [[{"correct": 0.95, "neutral": 0.6, "wrong": 0.2}[v.label] for v in check_solution(self.by_prompt[p], steps).steps]
                for p, steps in zip(prompts, steps_list)]


class LengthORM(PointwiseVerifier):
    """A stand-in ORM that likes long solutions, and cannot read one in ten."""

    def score_many(self, prompts, responses):
        return [Score(None, False) if i % 10 == 3 else Score(min(1.0, len(r) / 200))
                for i, r in enumerate(responses)]


@pytest.fixture
def stand_in_module(tmp_path, monkeypatch):
    """A module importable as `bon_standins` with factories for kind: python."""
    (tmp_path / "bon_standins.py").write_text(
        "from test_best_of_n import CheckerPRM, LengthORM\n"
        "PROBLEMS = []\n"
        "def prm():\n    return CheckerPRM(PROBLEMS)\n"
        "def orm(path):\n    assert path == 'some/folder'\n    return LengthORM()\n"
        "def folder_orm(path):\n    return LengthORM()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("bon_standins")
    yield module
    sys.modules.pop("bon_standins", None)


def _config(tmp_path, **kw):
    base = dict(model="stand-in-policy", arithmetic={"n": 12, "steps": 2, "seed": 3}, n_max=8, subsets=60,
                bootstrap=200, out=str(tmp_path / "run"),
                verifiers={"prm": {"kind": "python", "factory": "bon_standins:prm"},
                           "orm": {"kind": "python", "factory": "bon_standins:orm", "path": "some/folder"},
                           "oracle": {"kind": "exact"}},
                active={"top": 5, "per_problem": 1})
    base.update(kw)
    return BestOfNConfig.model_validate(base)


def _run(config, problems, policy=None):
    with Run(config.out, config, seed=config.seed) as run:
        run.add_model(policy or StandInPolicy(problems))
        return run_best_of_n(config, run), run


def test_protocol_end_to_end(tmp_path, stand_in_module):
    config = _config(tmp_path)
    problems = generate_problems(12, Difficulty(steps=2), seed=3)
    stand_in_module.PROBLEMS[:] = problems
    result, run = _run(config, problems)
    m = result.metrics["best_of_n"]
    assert m["problems"] == 12 and m["samples"] == 96
    assert m["no_answer_samples"] > 0 and m["wrong_samples"] > 0
    assert m["invalid_scores"]["orm"] == sum(1 for i in range(96) if i % 10 == 3)
    assert m["invalid_scores"]["prm_product"] == 0  # every sample has at least one line
    curves = m["curves"]
    assert set(curves) == {"random", "majority", "prm_product", "prm_min", "prm_vote", "orm", "orm_vote",
                           "oracle", "oracle_vote"}
    top = str(config.n_max)
    # the exact-answer oracle picks a right sample whenever there is one: pass@N; a checker-backed PRM does too
    samples = run.read_records("samples")
    pass_at_n = np.mean([any(s["correct"] for s in samples if s["id"] == p.id) for p in problems])
    assert curves["oracle"][top]["accuracy"] == pytest.approx(pass_at_n)
    assert curves["prm_min"][top]["accuracy"] == pytest.approx(pass_at_n)
    assert curves["prm_min"][top]["accuracy"] >= curves["majority"][top]["accuracy"]
    assert curves["random"]["1"]["accuracy"] == pytest.approx(m["sample_accuracy"])
    # one headline row per method, the same keys in each: accuracy at N = 1 and N = n_max with intervals
    assert [r["method"] for r in result.headline] == list(curves)
    assert all(list(r) == list(result.headline[0]) for r in result.headline)
    for r in result.headline:
        for n in ("1", top):
            point = curves[r["method"]][n]
            assert (r[f"N={n}"], r[f"N={n} low"], r[f"N={n} high"]) == (point["accuracy"], point["low"], point["high"])
    # a picture (drawn by the report, from the run folder) and records
    assert draw_for("best_of_n", run) == [run.folder / "plots" / "best_of_n.png"]
    assert (run.folder / "plots" / "best_of_n.png").stat().st_size > 5000
    orm_rows, prm_rows = run.read_records("scores-orm"), run.read_records("scores-prm")
    assert len(orm_rows) == 96 and orm_rows[3]["orm"] is None and orm_rows[0]["orm"] is not None
    assert len(prm_rows[0]["steps"]) == len(samples[0]["completion"].splitlines())
    assert prm_rows[0]["prm_min"] == min(prm_rows[0]["steps"])

    # active selection: wrong final answers only, best PRM score first, one per problem, stepwise format
    exported, stats = load_steps(run.records_path("convincing_wrong"))
    assert 0 < len(exported) <= 5 and stats.unlabelled == stats.steps
    ids = [r.meta["id"] for r in exported]
    assert len(ids) == len(set(ids))
    found = [r.meta["score"] for r in exported]
    assert found == sorted(found, reverse=True)
    by_key = {(s["id"], s["sample"]): s for s in samples}
    for r in exported:
        assert by_key[(r.meta["id"], r.meta["sample"])]["status"] == "wrong"
        assert r.meta["exact_first_error"] is not None and False in r.meta["exact_labels"]
    assert m["convincing_wrong"]["exported"] == len(exported)

    # a second run in the same folder gives the same numbers, reading the scores back
    stand_in_module.PROBLEMS[:] = []  # a PRM built now would fail if it were asked to score
    again, _ = _run(config, problems)
    assert again.metrics["best_of_n"]["curves"] == curves
    assert again.metrics["best_of_n"]["convincing_wrong"] == m["convincing_wrong"]


def test_protocol_methods_setting(tmp_path, stand_in_module):
    problems = generate_problems(12, Difficulty(steps=2), seed=3)
    stand_in_module.PROBLEMS[:] = problems
    result, _ = _run(_config(tmp_path, methods=["majority", "prm_min"]), problems)
    assert set(result.metrics["best_of_n"]["curves"]) == {"majority", "prm_min"}
    with pytest.raises(RefereeError, match="unknown method 'prm_mean'.*available: random, majority"):
        _run(_config(tmp_path, methods=["prm_mean"]), problems)


def test_weighted_vote_needs_nonnegative_scores(tmp_path, monkeypatch):
    class Signed(PointwiseVerifier):
        def score_many(self, prompts, responses):
            return [Score(len(r) / 50 - 1.0) for r in responses]

    module = types.ModuleType("bon_signed")
    module.make = Signed
    monkeypatch.setitem(sys.modules, "bon_signed", module)
    problems = generate_problems(12, Difficulty(steps=2), seed=3)
    config = _config(tmp_path, verifiers={"rm": {"kind": "python", "factory": "bon_signed:make"}})
    curves = _run(config, problems)[0].metrics["best_of_n"]["curves"]
    assert "rm" in curves and "rm_vote" not in curves
    with pytest.raises(RefereeError, match="non-negative"):
        _run(_config(tmp_path, verifiers={"rm": {"kind": "python", "factory": "bon_signed:make"}},
                     methods=["rm_vote"]), problems)


def test_trained_verifiers_come_from_referee_rewards(monkeypatch):
    calls = []
    fake = types.ModuleType("referee.rewards")
    fake.load_verifier = lambda kind, path: calls.append((kind, path)) or LengthORM()
    monkeypatch.setitem(sys.modules, "referee.rewards", fake)
    v = build_verifier("orm", VerifierSpec(kind="orm", path="runs/orm"), [], "")
    assert isinstance(v, LengthORM) and calls == [("orm", "runs/orm")]
    with pytest.raises(RefereeError, match="needs 'path'"):
        build_verifier("prm", VerifierSpec(kind="prm"), [], "")


# ---- stages: a rerun reads back what did not change and recomputes the rest ------------------------
class RefusingPolicy(StandInPolicy):
    """The same policy (same fingerprint) that refuses to sample: for reruns that must read samples back."""

    def generate(self, *args, **kwargs):
        raise AssertionError("the samples stage should have been read back")


def _stages_said(capsys) -> dict[str, str]:
    """What the stage runner said of each stage since the last call: 'read back' or 'recomputed'."""
    said = {}
    for line in capsys.readouterr().err.splitlines():
        name, _, rest = line.partition(": ")
        if rest.endswith("read back"):
            said[name] = "read back"
        elif rest.endswith("recomputing"):
            said[name] = "recomputed"
    return said


@pytest.fixture
def loud(monkeypatch):
    monkeypatch.setattr(progress, "_quiet", False)


def test_rerun_reads_every_stage_back(tmp_path, stand_in_module, loud, capsys):
    problems = generate_problems(12, Difficulty(steps=2), seed=3)
    stand_in_module.PROBLEMS[:] = problems
    config = _config(tmp_path)
    first, run = _run(config, problems)
    records = {p.name: p.read_bytes() for p in run.records_path("samples").parent.glob("*.jsonl")}
    assert set(records) == {"samples.jsonl", "scores-prm.jsonl", "scores-orm.jsonl", "scores-oracle.jsonl",
                            "convincing_wrong.jsonl"}
    capsys.readouterr()

    stand_in_module.PROBLEMS[:] = []  # a PRM asked to score now would fail
    again, _ = _run(config, problems, policy=RefusingPolicy(problems))
    assert _stages_said(capsys) == {name[:-len(".jsonl")]: "read back" for name in records}
    assert again.metrics == first.metrics and again.headline == first.headline
    assert {p.name: p.read_bytes() for p in run.records_path("samples").parent.glob("*.jsonl")} == records


def test_changed_settings_recompute_only_what_they_touch(tmp_path, stand_in_module, loud, capsys):
    problems = generate_problems(12, Difficulty(steps=2), seed=3)
    stand_in_module.PROBLEMS[:] = problems
    _, run = _run(_config(tmp_path), problems)
    capsys.readouterr()

    # another temperature: new samples, but the stand-in writes the same texts, so their scores stand
    hotter = {"sampling": {"temperature": 0.9, "max_new_tokens": 256}}
    _run(_config(tmp_path, **hotter), problems)
    assert _stages_said(capsys) == {"samples": "recomputed", "scores-prm": "read back", "scores-orm": "read back",
                                    "scores-oracle": "read back", "convincing_wrong": "read back"}
    # fewer convincing wrong answers: only that stage
    result, _ = _run(_config(tmp_path, **hotter, active={"top": 2, "per_problem": 1}), problems)
    said = _stages_said(capsys)
    assert said.pop("convincing_wrong") == "recomputed" and set(said.values()) == {"read back"}
    assert result.metrics["best_of_n"]["convincing_wrong"]["exported"] == 2
    assert len(run.read_records("convincing_wrong")) == 2


def _sha(text):
    """A sample's text_sha as the scores records write it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def test_changed_sample_texts_are_scored_again(tmp_path, stand_in_module, loud, capsys):
    problems = generate_problems(12, Difficulty(steps=2), seed=3)
    stand_in_module.PROBLEMS[:] = problems
    _, run = _run(_config(tmp_path), problems)
    before = [s["completion"] for s in run.read_records("samples")]
    capsys.readouterr()

    _run(_config(tmp_path, seed=1), problems)  # other sampling seeds: other texts
    said = _stages_said(capsys)
    assert set(said.values()) == {"recomputed"} and len(said) == 5
    samples = run.read_records("samples")
    assert [s["completion"] for s in samples] != before
    expect = LengthORM().score_many([], [s["completion"] for s in samples])
    for name in ("orm", "prm", "oracle"):
        rows = run.read_records(f"scores-{name}")
        assert [r["text_sha"] for r in rows] == [_sha(s["completion"]) for s in samples], name
    assert [r["orm"] for r in run.read_records("scores-orm")] == [e.value for e in expect]


def test_a_verifier_changed_in_its_folder_scores_again(tmp_path, stand_in_module, loud, capsys):
    problems = generate_problems(6, Difficulty(steps=2), seed=3)
    folder = tmp_path / "orm"
    folder.mkdir()
    (folder / "head.safetensors").write_bytes(b"first head")
    config = _config(tmp_path, arithmetic={"n": 6, "steps": 2, "seed": 3},
                     verifiers={"orm": {"kind": "python", "factory": "bon_standins:folder_orm", "path": str(folder)}})
    _run(config, problems)
    _run(config, problems)
    assert _stages_said(capsys)["scores-orm"] == "read back"
    (folder / "head.safetensors").write_bytes(b"the head trained again")
    _run(config, problems)
    assert _stages_said(capsys) == {"samples": "read back", "scores-orm": "recomputed"}


def test_config_errors_name_the_setting(tmp_path, capsys):
    from referee.cli import main

    cfg = tmp_path / "bon.yaml"
    cfg.write_text("protocol: best_of_n\nn_maxx: 4\nsubsets: 0\nverifiers:\n  v: {kind: magic}\n")
    with pytest.raises(SystemExit) as e:
        main(["run", str(cfg)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "setting 'n_maxx': unknown setting" in err and "verifiers.v.kind" in err
    assert "setting 'subsets'" in err


def test_referee_run_on_a_tiny_model(tmp_path, tiny_model_path, capsys):
    """The whole path through `referee run`: real sampling (random weights: mostly no answers), cache, plot."""
    from referee.cli import main

    cfg = tmp_path / "bon.yaml"
    cfg.write_text(f"protocol: best_of_n\nmodel: hf:{tiny_model_path}\narithmetic: {{n: 3, steps: 1}}\n"
                   f"n_max: 4\nsubsets: 20\nbootstrap: 50\nsampling: {{temperature: 1.0, max_new_tokens: 12}}\n"
                   f"verifiers:\n  exact: {{kind: exact}}\nout: {tmp_path / 'run'}\n")
    main(["run", str(cfg)])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["best_of_n"]
    assert metrics["samples"] == 12
    assert metrics["no_answer_samples"] + metrics["wrong_samples"] + round(metrics["sample_accuracy"] * 12) == 12
    assert set(metrics["curves"]["majority"]) == {"1", "2", "4"}
    assert (tmp_path / "run" / "plots" / "best_of_n.png").exists()
    assert len((tmp_path / "run" / "records" / "samples.jsonl").read_text().splitlines()) == 12


def test_samples_feed_mc_labelling(tmp_path, stand_in_module):
    """The samples a best-of-N run writes are solutions `tasks mc-label` reads (gold under 'answer')."""
    from referee.verifiers.mc_labels import load_solutions

    problems = generate_problems(12, Difficulty(steps=2), seed=3)
    stand_in_module.PROBLEMS[:] = problems
    _, run = _run(_config(tmp_path, verifiers={}), problems)
    data = load_solutions(run.records_path("samples"))
    assert len(data.solutions) == 96 - data.empty
    assert {s.gold for s in data.solutions} <= {p.answer for p in problems}
    assert data.solutions[0].prompt[0]["content"] == problems[0].prompt()


def test_an_llm_judge_is_a_best_of_n_verifier_through_the_one_builder(tiny_model):
    from referee.judges import GradingJudge

    v = build_verifier("j", VerifierSpec(kind="judge-additive", path="tiny"), [], "", load_model=lambda s: tiny_model)
    assert isinstance(v, GradingJudge) and v.template.name == "additive_0to5"
    with pytest.raises(RefereeError, match="judge's model spec"):
        build_verifier("j", VerifierSpec(kind="judge"), [], "")
