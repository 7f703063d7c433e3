"""Bias audits: answer transformations, baselines, bias metrics, the runner and ``referee audit``."""

import json

import pytest

from referee.audit import biases
from referee.judges.baselines import LongerJudge, RandomJudge
from referee.audit.pairs import assertive_pairs, injection_pairs, verbosity_pairs
from referee.audit.perturb import (assertive_rewrite, inject_instruction, list_items, pad_repetitive_list,
                                   remove_hedges)
from referee.judges.records import combine, order_verdicts, shown, underlying
from referee.audit.runner import parse_checks, run_audit
from referee.errors import RefereeError
from referee.tasks.pairs import Pair

LIST_ANSWER = "Three tips:\n1. Sleep eight hours.\n2) Drink water;\n- Walk daily\n\nThat is all."


def _pair(pid, a, b, label=None, **meta):
    return Pair(str(pid), [{"role": "user", "content": f"question {pid}"}], a, b, label, meta=meta)


# ---- transformations -------------------------------------------------------------------------------------
def test_list_padding_restates_items_and_keeps_the_answer():
    assert list_items(LIST_ANSWER) == ["Sleep eight hours.", "Drink water;", "Walk daily"]
    padded, source = pad_repetitive_list(LIST_ANSWER)
    assert source == "list"
    assert padded.endswith(LIST_ANSWER) and len(padded) > len(LIST_ANSWER)
    head = padded[: -len(LIST_ANSWER)]
    for item in ("Sleep eight hours", "Drink water", "Walk daily"):
        assert item in head
    # nothing but the lead-in lines and the items is added
    added = [ln for ln in head.splitlines() if ln.strip()]
    assert len(added) == 2 + 3


def test_padding_falls_back_to_sentences_or_declines():
    padded, source = pad_repetitive_list("Paris is the capital. It is in France. It is large.")
    assert source == "sentences" and "- It is in France" in padded
    assert pad_repetitive_list("Paris is the capital. It is in France.", fallback_sentences=False) is None
    assert pad_repetitive_list("Just one sentence") is None
    assert pad_repetitive_list("") is None


def test_assertive_rewrite_removes_hedges_keeps_content():
    wrong = "I think the answer might be 12. It seems that the train probably leaves in May 2020."
    out = assertive_rewrite(wrong)
    for hedge in ("I think", "might", "seems", "probably"):
        assert hedge not in out
    assert "The answer is 12." in out and "May 2020" in out
    assert out.startswith("There is no doubt") and "completely certain" in out
    assert remove_hedges("perhaps it works.") == "It works."
    assert assertive_rewrite("")  # empty answers are rewritten, not crashed on


def test_injection_names_the_verdict():
    out = inject_instruction("Answer.", "B")
    assert out.startswith("Answer.") and "[[B]]" in out and "[[A]]" not in out
    with pytest.raises(ValueError):
        inject_instruction("x", "C")


def test_audit_pairs_carry_target_and_source():
    pairs = [_pair(1, "short", LIST_ANSWER, "B"), _pair(2, "long answer here", "x", "A"), _pair(3, "p", "q")]
    inj = injection_pairs(pairs)
    assert [p.meta["target"] for p in inj] == ["A", "B", "B"]  # gold loser, or B when unlabelled
    assert "[[A]]" in inj[0].answer_a and inj[0].answer_b == LIST_ANSWER
    assert inj[0].label == "B" and inj[0].meta["source"] == "1"
    ass = assertive_pairs(pairs)
    assert ass[1].answer_a == "long answer here" and ass[1].answer_b.startswith("There is no doubt")
    vpairs, skipped = verbosity_pairs(pairs, seed=0)
    assert len(vpairs) == 1 and skipped == 5
    vp = vpairs[0]
    padded = vp.answer_a if vp.meta["target"] == "A" else vp.answer_b
    original = vp.answer_b if vp.meta["target"] == "A" else vp.answer_a
    assert original == LIST_ANSWER and padded.endswith(LIST_ANSWER) and vp.label == "tie"
    # the padded side is seeded: over many pairs both sides occur
    many, _ = verbosity_pairs([_pair(i, LIST_ANSWER + str(i), "no") for i in range(40)], seed=1)
    sides = [p.meta["target"] for p in many]
    assert 10 < sides.count("A") < 30


def test_multiturn_pairs_keep_the_conversation():
    turns_a = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
               {"role": "user", "content": "q2"}, {"role": "assistant", "content": "A2"}]
    turns_b = turns_a[:3] + [{"role": "assistant", "content": "B2"}]
    p = Pair("m", turns_a[:3], "A2", "B2", "A", turns_a=turns_a, turns_b=turns_b)
    inj = injection_pairs([p])[0]
    assert inj.turns_b[-1]["content"] == inj.answer_b and "[[B]]" in inj.answer_b
    assert inj.turns_a == turns_a and inj.turns_b[:3] == turns_a[:3]


# ---- records and baselines -------------------------------------------------------------------------------
def test_order_mapping_round_trip_and_combine():
    assert underlying("AB", "first") == "A" and underlying("BA", "first") == "B"
    assert underlying("BA", "second") == "A" and underlying("BA", "tie") == "tie"
    for order in ("AB", "BA"):
        for v in ("A", "B", "tie", "invalid"):
            assert underlying(order, shown(order, v)) == v
    assert combine({"AB": "A", "BA": "A"}, "conservative") == "A"
    assert combine({"AB": "A", "BA": "B"}, "conservative") == "tie"
    assert combine({"AB": "A", "BA": "invalid"}, "conservative") == "invalid"


def test_average_rule_reads_the_orders_probabilities_and_otherwise_is_conservative():
    # AB says A .6, B .3; BA (B shown first) says B .5, A .4: on average A .5 over B .4
    probs = {"AB": {"first": 0.6, "second": 0.3, "tie": 0.1}, "BA": {"first": 0.5, "second": 0.4, "tie": 0.1}}
    assert combine({"AB": "A", "BA": "B"}, "average", probs) == "A"
    assert combine({"AB": "A", "BA": "B"}, "conservative", probs) == "tie"
    assert combine({"AB": "A", "BA": "B"}, "average") == "tie"  # generative verdicts carry no probabilities
    even = {"AB": {"first": 0.6, "second": 0.4, "tie": 0.0}, "BA": {"first": 0.6, "second": 0.4, "tie": 0.0}}
    assert combine({"AB": "A", "BA": "B"}, "average", even) == "tie"  # the orders cancel out


def test_longer_judge():
    pairs = [_pair(1, "aaaa", "bb", "A"), _pair(2, "a", "bbb", "A"), _pair(3, "same", "same", None)]
    recs = LongerJudge().judge_pairs(pairs)
    assert [r["winner"] for r in recs] == ["A", "B", "tie"]
    assert [r["p_a"] for r in recs] == [1.0, 0.0, 0.5]
    assert order_verdicts(recs[1]) == {"AB": "B", "BA": "B"}
    assert recs[0]["label"] == "A" and recs[0]["id"] == "1"
    assert len(LongerJudge(swap="none").judge_pairs(pairs)[0]["orders"]) == 1
    with pytest.raises(RefereeError, match="swap"):
        LongerJudge(swap="average")


def test_random_judge_is_seeded_and_fair():
    pairs = [_pair(i, "a", "b") for i in range(400)]
    recs = RandomJudge(seed=5).judge_pairs(pairs)
    share_a = sum(r["winner"] == "A" for r in recs) / len(recs)
    assert 0.4 < share_a < 0.6
    # the verdict of a pair depends on the seed and its id only, not on what else is judged
    assert RandomJudge(seed=5).judge_pairs(pairs[10:20]) == recs[10:20]
    assert [r["winner"] for r in RandomJudge(seed=6).judge_pairs(pairs)] != [r["winner"] for r in recs]
    both = RandomJudge(seed=5, swap="conservative").judge_pairs(pairs)
    consistent = biases.position_bias(both)["consistent"].value
    assert 0.4 < consistent < 0.6


# ---- metrics ---------------------------------------------------------------------------------------------
def _rec(pid, ab, ba=None, winner=None, p_a=None):
    orders = [{"order": "AB", "winner_shown": ab}] + ([{"order": "BA", "winner_shown": ba}] if ba else [])
    if winner is None:
        winner = combine({o["order"]: underlying(o["order"], o["winner_shown"]) for o in orders}, "conservative")
    return {"id": str(pid), "winner": winner, "p_a": p_a, "orders": orders}


def test_position_classes_by_hand():
    recs = [_rec(1, "first", "second"),   # A both times: consistent
            _rec(2, "first", "first"),    # first both times
            _rec(3, "first", "first"),
            _rec(4, "second", "second"),  # second both times
            _rec(5, "tie", "second"),     # tie vs A: inconsistent
            _rec(6, "invalid", "first"),  # unreadable
            _rec(7, "tie", "tie"),        # tie both: consistent
            _rec(8, "first")]             # one order only: left out of the classes
    assert [biases.position_class(r) for r in recs] == [
        "consistent", "biased_first", "biased_first", "biased_second", "inconsistent", "invalid", "consistent", None]
    pb = biases.position_bias(recs)
    assert pb["pairs_both_orders"] == 7
    assert pb["consistent"].value == pytest.approx(2 / 7)
    assert pb["biased_first"].value == pytest.approx(2 / 7)
    assert sum(pb[c].value for c in biases.POSITION_CLASSES) == pytest.approx(1.0)
    # prefers_first per record over readable orders: 1/2, 1, 1, 0, 0, 1, 0, 1 -> 4.5 / 8
    assert pb["prefers_first"].value == pytest.approx(4.5 / 8)


def test_verbosity_failure_by_hand():
    vpairs, _ = verbosity_pairs([_pair(i, LIST_ANSWER + f" {i}", "x") for i in range(4)], seed=0)
    targets = {p.id: p.meta["target"] for p in vpairs}
    other = {"A": "B", "B": "A"}
    ids = list(targets)
    recs = [{"id": ids[0], "winner": targets[ids[0]], "p_a": None},
            {"id": ids[1], "winner": other[targets[ids[1]]], "p_a": None},
            {"id": ids[2], "winner": "tie", "p_a": None},
            {"id": ids[3], "winner": "invalid", "p_a": None}]
    m = biases.verbosity_failure(recs, vpairs)
    assert m["failure"].value == pytest.approx(1 / 3) and m["failure"].n == 3
    assert m["invalid"].value == pytest.approx(0.25)
    # the longer judge always falls for it
    assert biases.verbosity_failure(LongerJudge().judge_pairs(vpairs), vpairs)["failure"].value == 1.0


def test_flip_audit_by_hand():
    pairs = [_pair(i, "a", "b", "A") for i in range(4)]  # gold A, so B is attacked
    apairs = injection_pairs(pairs)
    before = [{"id": str(i), "winner": w, "p_a": p} for i, (w, p) in enumerate(
        [("A", 0.8), ("A", 0.7), ("B", 0.4), ("A", 0.9)])]
    after = [{"id": f"{i}:injection", "winner": w, "p_a": p} for i, (w, p) in enumerate(
        [("B", 0.3), ("A", 0.6), ("B", 0.2), ("invalid", None)])]
    m = biases.flip_audit(before, after, apairs)
    # pairs judged A before: 0, 1, 3; pair 3 is unreadable after -> flips over 0, 1 = 1/2
    assert m["flip_rate"].value == pytest.approx(0.5) and m["flip_rate"].n == 2
    # shift in P(B): (0.7-0.2) + (0.4-0.3) + (0.8-0.6), pair 3 unknown -> 0.8 / 3
    assert m["shift"].value == pytest.approx(0.8 / 3)
    assert m["target_win_after"].value == pytest.approx(2 / 3)
    assert m["invalid_after"].value == pytest.approx(0.25)


def test_self_enhancement_by_hand():
    pairs = [_pair(1, "a", "b", "A", model_a="me", model_b="gpt"),
             _pair(2, "a", "b", "A", model_a="gpt", model_b="me"),   # people prefer the other model
             _pair(3, "a", "b", "B", model_a="gpt", model_b="me"),
             _pair(4, "a", "b", "A", model_a="gpt", model_b="claude"),  # not about self
             _pair(5, "a", "b", None, model_a="me", model_b="claude")]
    recs = [{"id": "1", "winner": "A", "p_a": None}, {"id": "2", "winner": "B", "p_a": None},
            {"id": "3", "winner": "B", "p_a": None}, {"id": "4", "winner": "B", "p_a": None},
            {"id": "5", "winner": "tie", "p_a": None}]
    m = biases.self_enhancement(recs, pairs, ["me"])
    assert m["n"] == 4
    assert m["self_win_rate"].value == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    assert m["gold_self_win_rate"].value == pytest.approx(2 / 3)
    assert m["self_bias"].value == pytest.approx(1 / 3) and m["self_bias"].n == 3
    assert m["wrongly_prefers_self"].value == 1.0 and m["wrongly_prefers_self"].n == 1
    assert m["wrongly_prefers_other"].value == 0.0 and m["wrongly_prefers_other"].n == 2
    with pytest.raises(RefereeError, match="own model"):
        biases.self_enhancement(recs, pairs, [])


def test_grade_shift():
    m = biases.grade_shift([3, 5, None, 7], [5, 5, 8, 6])
    assert m["shift"].value == pytest.approx(1 / 3) and m["raised"].value == pytest.approx(1 / 3)


# ---- runner and CLI --------------------------------------------------------------------------------------
def test_parse_checks():
    assert parse_checks("all") == ["position", "verbosity", "injection", "assertiveness", "self"]
    assert parse_checks("position, verbosity") == ["position", "verbosity"]
    with pytest.raises(RefereeError, match="nonsense"):
        parse_checks("position,nonsense")


def test_run_audit_with_baseline_writes_run_and_resumes(tmp_path):
    from referee.runs import Run

    pairs = [_pair(i, LIST_ANSWER + " extra" * (i % 3), "Short answer. Second sentence.", "A" if i % 2 else "B",
                   model_a="me" if i % 2 else "other", model_b="other" if i % 2 else "me") for i in range(12)]
    make = lambda swap: LongerJudge(swap={"average": "conservative", "random": "none"}.get(swap, swap))  # noqa: E731
    with Run(tmp_path / "run") as run:
        m = run_audit(make("none"), pairs, ["position", "verbosity", "injection", "assertiveness", "self"],
                      make_judge=make, self_names=["me"], run=run, n_boot=200)
    assert m["position"]["consistent"].value == 1.0  # the position check got both orders from make_judge
    assert m["verbosity"]["failure"].value == 1.0
    assert m["injection"]["target_win_after"].value == 1.0  # the injection makes the loser longer
    assert m["self"]["n"] == 12
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["audit"]
    assert saved["verbosity"]["failure"]["value"] == 1.0
    recs = [json.loads(x) for x in (tmp_path / "run" / "records" / "injection.jsonl").read_text().splitlines()]
    assert len(recs) == 12 and recs[0]["audit"]["check"] == "injection"
    # a rerun in the same folder reads the finished stages back instead of judging again

    class Exploding:
        def judge_pairs(self, pairs):
            raise AssertionError("should have been read from the run folder")

    with Run(tmp_path / "run") as run:
        again = run_audit(Exploding(), pairs, ["position", "verbosity"], make_judge=lambda s: Exploding(), run=run,
                          n_boot=200)
    assert again["position"]["consistent"].value == 1.0
    # other pairs in the same folder are judged afresh, not read back from the old stage
    with Run(tmp_path / "run") as run:
        fewer = run_audit(make("none"), pairs[:5], ["position"], make_judge=make, run=run, n_boot=100)
    assert fewer["position"]["pairs_both_orders"] == 5
    assert len(run.read_records("base")) == 5


def test_run_audit_errors():
    pairs = [_pair(1, "a", "b", "A")]
    with pytest.raises(RefereeError, match="both"):
        run_audit(LongerJudge(swap="none"), pairs, ["position"])
    with pytest.raises(RefereeError, match="self"):
        run_audit(LongerJudge(), pairs, ["self"])
    with pytest.raises(RefereeError, match="exactly one answer"):
        run_audit(LongerJudge(), pairs, ["self"], self_names=["nobody"])


def _write_pairs(path, n=10):
    rows = [{"input": f"Name {i + 2} fruits.", "output_1": "\n".join(f"{k}. fruit {k}" for k in range(i + 2)),
             "output_2": "apple", "label": 1 + i % 2} for i in range(n)]
    path.write_text(json.dumps(rows))
    return path


def test_cli_audit_with_baseline(tmp_path, capsys):
    from referee.cli import main

    pairs = _write_pairs(tmp_path / "pairs.json")
    main(["audit", "--judge", "baseline:longer", "--pairs", str(pairs), "--checks", "position,verbosity,injection",
          "--out", str(tmp_path / "run"), "--n-boot", "200"])
    out = capsys.readouterr().out
    assert "consistent" in out and "failure" in out and "flip_rate" in out
    assert (tmp_path / "run" / "plots" / "audit.png").stat().st_size > 1000
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["audit"]
    assert metrics["verbosity"]["failure"]["value"] == 1.0


def test_cli_audit_bad_input(tmp_path, capsys):
    from referee.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input": "q", "output_1": "a", "output_2": "b", "label": 1}) + "\n"
                   + json.dumps({"input": "q", "output_1": "a", "label": 1}) + "\n")
    with pytest.raises(SystemExit) as e:
        main(["audit", "--judge", "baseline:longer", "--pairs", str(bad), "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "output_2" in err
    with pytest.raises(SystemExit) as e:
        main(["audit", "--judge", "baseline:longer", "--pairs", str(_write_pairs(tmp_path / "p.json")),
              "--checks", "speed", "--out", str(tmp_path / "r2")])
    assert e.value.code == 2 and "speed" in capsys.readouterr().err


def test_audit_with_real_judge_on_tiny_model(tiny_model_path, tmp_path):
    """The runner drives the real PairwiseJudge: both verdict modes, records in the shared shape."""
    from referee.judges import PairwiseJudge
    from referee.runs import Run

    pairs = [_pair(i, f"{i} apples.\n1. red\n2. green", "No idea.", "A") for i in range(3)]
    with Run(tmp_path / "run") as run:
        model = run.model(f"hf:{tiny_model_path}")
        make = lambda swap: PairwiseJudge(model, verdict="probability", swap=swap)  # noqa: E731
        m = run_audit(make("none"), pairs, ["position", "verbosity", "injection"], make_judge=make, run=run,
                      n_boot=100)
        gen = PairwiseJudge(model, verdict="generative", swap="none", max_retries=0,
                            sampling=None).judge_pairs(pairs[:1])
    assert m["position"]["pairs_both_orders"] == 3
    assert sum(m["position"][c].value for c in biases.POSITION_CLASSES) == pytest.approx(1.0)
    assert m["verbosity"]["n"] == 3 and m["injection"]["n"] == 3
    base = run.read_records("base")
    assert {r["winner"] for r in base} <= {"A", "B", "tie", "invalid"}
    assert all(r["p_a"] is not None for r in base)
    # a tiny random model writes nonsense: counted as invalid, never turned into a verdict
    assert gen[0]["winner"] in ("A", "B", "tie", "invalid")
    if gen[0]["winner"] == "invalid":
        assert gen[0]["orders"][0]["winner_shown"] == "invalid"


def test_self_answer_pairs_with_tiny_model(tiny_model):
    """Without model names the self check pits the judge model's own answer against a given one."""
    from referee.audit.runner import SELF_NAME, self_answer_pairs

    pairs = [_pair(i, f"given A {i}", f"given B {i}", "B" if i % 2 else "A") for i in range(6)]
    spairs = self_answer_pairs(tiny_model, pairs, seed=0, max_new_tokens=4)
    assert len(spairs) == 6
    for src, sp in zip(pairs, spairs):
        side = biases.self_side(sp, {SELF_NAME})
        assert side in ("A", "B")
        given = sp.answer_b if side == "A" else sp.answer_a
        assert given == (src.answer_b if src.label == "B" else src.answer_a)  # faces the gold winner
        assert sp.label is None and sp.meta["source"] == src.id
    assert {biases.self_side(sp, {SELF_NAME}) for sp in spairs} == {"A", "B"}  # seeded sides, both occur
    recs = LongerJudge().judge_pairs(spairs)
    m = biases.self_enhancement(recs, spairs, [SELF_NAME], n_boot=100)
    assert m["n"] == 6 and m["gold_self_win_rate"].value is None


@pytest.mark.slow
@pytest.mark.data("llmbar/natural.json")
def test_position_audit_with_embedded_judge_on_real_pairs():
    """The real embedded judge on the three shortest real LLMBar pairs: every verdict readable in probability mode, the
    position classes cover every pair, and P(A) is a probability."""
    from conftest import DATA
    from referee.judges import PairwiseJudge
    from referee.models import load_model
    from referee.tasks.pairs import load_pairs

    pairs = sorted(load_pairs(DATA / "llmbar" / "natural.json"),
                   key=lambda p: len(p.question[-1]["content"]) + len(p.answer_a) + len(p.answer_b))[:3]
    model = load_model("embedded")
    m = run_audit(PairwiseJudge(model, verdict="probability", swap="conservative"), pairs, ["position"], n_boot=100)
    assert m["position"]["pairs_both_orders"] == 3
    assert m["invalid"].value == 0.0
    assert sum(m["position"][c].value for c in biases.POSITION_CLASSES) == pytest.approx(1.0)
    assert 0.0 <= m["position"]["prefers_first"].value <= 1.0


def test_cli_audit_rerun_never_returns_stale_verdicts(tmp_path, capsys):
    """The same folder, the same pair ids: another judge, or swapped answer texts, are judged afresh; the
    same command again reads every stage back; and the folder's config.yaml repeats the run."""
    from referee.cli import main

    pairs = _write_pairs(tmp_path / "pairs.json")
    run = tmp_path / "run"

    def audit(judge, path=pairs):
        main(["audit", "--judge", judge, "--pairs", str(path), "--checks", "position", "--out", str(run),
              "--n-boot", "50"])
        return [json.loads(x)["winner"] for x in (run / "records" / "base.jsonl").read_text().splitlines()]

    longer = audit("baseline:longer")
    assert longer == ["A"] * 10  # output_1 (a list of fruits) is always the longer answer
    random_verdicts = audit("baseline:random")
    assert random_verdicts != longer  # a coin over 10 pairs: not the longer answer's ten verdicts
    rows = json.loads(pairs.read_text())
    for r in rows:
        r["output_1"], r["output_2"] = r["output_2"], r["output_1"]
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(rows))
    flipped = audit("baseline:longer", swapped)
    assert flipped == [{"A": "B", "B": "A", "tie": "tie"}[v] for v in longer]
    # config.yaml names the protocol: `referee run` on it repeats the last audit, reading its stages back
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["protocol"] == "audit" and config["judge_spec"] == "baseline:longer"
    before = (run / "records" / "base.jsonl").read_bytes()
    capsys.readouterr()
    main(["run", str(run / "config.yaml")])
    assert (run / "records" / "base.jsonl").read_bytes() == before
    assert "position" in capsys.readouterr().out
