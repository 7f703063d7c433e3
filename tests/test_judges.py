"""Judges: verdict parsing, retries, swap rules, probability verdicts, truncation, references, few-shot,
multi-turn, panels and the ``referee judge`` command.

Most tests drive the judge logic with a scripted model (a real subclass of ``Model`` whose hooks return
chosen outputs), because a tiny random model's verdicts are arbitrary; truncation and the CLI run on a
tiny random hf model, and one slow test on the embedded model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from referee.errors import RefereeError
from referee.judges import GradingJudge, PairwiseJudge, Panel, load_template, parse_pairwise, parse_score, summarize
from referee.models.base import ChoiceResult, Completion, Model
from referee.tasks.pairs import Pair

from conftest import DATA


class Scripted(Model):
    """A model whose replies and choice probabilities come from functions of the prompt text."""

    spec = "scripted"
    fingerprint = "scripted"

    def __init__(self, reply=None, probs=None):
        super().__init__(cache=None)
        self.reply = reply or (lambda text, seed: "")
        self.probs = probs or (lambda text, prefix: {"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})
        self.generate_calls, self.choice_calls, self.seeds, self.prompts = [], [], [], []

    @staticmethod
    def text(chat):
        return "\n".join(m["content"] for m in chat)

    def generate(self, chats, sampling=None, n=1, desc="generate"):
        self.generate_calls.append((len(chats), sampling))
        return super().generate(chats, sampling, n, desc)

    def choice(self, chats, options, prefix="", desc="choice"):
        self.choice_calls.append((len(chats), prefix))
        return super().choice(chats, options, prefix, desc)

    def _generate(self, requests):
        out = []
        for r in requests:
            self.seeds.append(r.seed)
            self.prompts.append(self.text(r.chat))
            t = self.reply(self.text(r.chat), r.seed)
            out.append(Completion(t, 10, 5, "stop"))
        return out

    def _choice(self, chats, options, prefix):
        out = []
        for c in chats:
            self.prompts.append(self.text(c))
            p = self.probs(self.text(c), prefix)
            raw = {name: sum(p.get(s.strip(), 0.0) for s in set(strings)) / max(1, len(set(strings)))
                   for name, strings in options.items()}
            mass = sum(raw.values())
            out.append(ChoiceResult({k: (v / mass if mass else 1 / len(raw)) for k, v in raw.items()}, mass))
        return out


def shown_first_answer(text: str) -> str:
    return re.search(r"### Answer A\n(.*?)\n### End of answer A", text, re.S).group(1)


def pairs(n=4, **kw):
    return [Pair(f"p{i}", [{"role": "user", "content": f"Question {i}?"}], f"GOOD answer {i}", f"bad answer {i}",
                 label="A", **kw) for i in range(n)]


def prefers_good(text, prefix):
    """P(first) high when the answer shown first is the good one."""
    first_good = "GOOD" in shown_first_answer(text)
    return {"A": 0.8, "B": 0.1, "C": 0.1} if first_good else {"A": 0.1, "B": 0.8, "C": 0.1}


def always_first(text, prefix):
    return {"A": 0.7, "B": 0.1, "C": 0.2}


# ---- parsing ------------------------------------------------------------------------------------------
def test_parse_pairwise_markers():
    assert parse_pairwise("After comparing, B is clearer.\n[[B]]") == ("second", None)
    assert parse_pairwise("[[a]]")[0] == "first"
    assert parse_pairwise("It is a draw: [[C]]")[0] == "tie"
    assert parse_pairwise("[[ tie ]]")[0] == "tie"
    # the concluding marker counts, not an earlier one
    assert parse_pairwise("At first [[A]] looked better, but no.\nFinal: [[B]]")[0] == "second"
    # listing the format is not a verdict
    v, why = parse_pairwise("I must answer [[A]], [[B]] or [[C]].")
    assert v is None and "several" in why
    assert parse_pairwise("A is better.") == (None, "no verdict marker")
    assert parse_pairwise("[[D]]")[0] is None


def test_parse_score_range_and_decimals():
    assert parse_score("Good.\n[[7]]", 1, 10) == (7.0, None)
    assert parse_score("[[7.5]]", 1, 10)[0] == 7.5
    assert parse_score("[[10]]", 1, 10)[0] == 10.0
    v, why = parse_score("[[11]]", 1, 10)
    assert v is None and "1..10" in why
    assert parse_score("[[0]]", 0, 5)[0] == 0.0
    assert parse_score("score: 4", 0, 5)[0] is None


# ---- generative verdicts --------------------------------------------------------------------------------
def test_generative_reads_only_the_output_and_counts_invalid_after_retries():
    m = Scripted(reply=lambda text, seed: "Both answers have merits.")
    j = PairwiseJudge(m, verdict="generative", max_retries=2)
    recs = j.judge_pairs(pairs(3))
    # the prompt itself shows [[A]], [[B]], [[C]]; they must not be read as a verdict
    assert all("[[A]]" in p for p in m.prompts)
    assert [r["winner"] for r in recs] == ["invalid"] * 3
    for r in recs:
        (o,) = r["orders"]
        assert o["attempts"] == 3 and o["winner_shown"] == "invalid" and o["why"] == "no verdict marker"
        assert o["raw"] == "Both answers have merits."
    # 3 calls (first try + 2 retries), each retry only with the still-unreadable chats, each with a new seed
    assert [c[0] for c in m.generate_calls] == [3, 3, 3]
    assert len(set(m.seeds)) == 9
    assert m.generate_calls[0][1].temperature == 0 and m.generate_calls[1][1].temperature > 0
    s = summarize(recs)
    assert s["invalid_rate"] == 1.0 and s["invalid"] == 3 and s["tie_rate"] == 0.0


def test_generative_retry_recovers_a_verdict():
    calls = {}

    def reply(text, seed):
        calls[text] = calls.get(text, 0) + 1
        return "hmm" if calls[text] == 1 else "Answer B is better.\n[[B]]"

    j = PairwiseJudge(Scripted(reply=reply), verdict="generative", max_retries=1)
    (r,) = j.judge_pairs(pairs(1))
    assert r["winner"] == "B" and r["orders"][0]["attempts"] == 2 and r["p_a"] is None


def test_generative_conservative_swap_maps_positions_back():
    def reply(text, seed):  # a good judge: names the position of the GOOD answer
        return "[[A]]" if "GOOD" in shown_first_answer(text) else "[[B]]"

    recs = PairwiseJudge(Scripted(reply=reply), verdict="generative", swap="conservative").judge_pairs(pairs(2))
    for r in recs:
        assert r["winner"] == "A"
        assert [(o["order"], o["winner_shown"]) for o in r["orders"]] == [("AB", "first"), ("BA", "second")]
    assert summarize(recs)["position_consistency"] == 1.0


# ---- probability verdicts and swapping ------------------------------------------------------------------
def test_probability_one_choice_call_for_all_pairs_and_orders():
    m = Scripted(probs=prefers_good)
    recs = PairwiseJudge(m, swap="conservative").judge_pairs(pairs(5))
    assert m.choice_calls == [(10, "[[")]
    assert not m.generate_calls
    r = recs[0]
    assert r["winner"] == "A" and r["p_a"] == pytest.approx(0.85)
    ab, ba = r["orders"]
    assert ab["winner_shown"] == "first" and ba["winner_shown"] == "second"
    assert ab["probs"] == pytest.approx({"first": 0.8, "second": 0.1, "tie": 0.1})
    assert ab["p_first"] == pytest.approx(0.85) and ab["mass"] == pytest.approx(1.0)
    for key in ("id", "winner", "p_a", "label", "template", "verdict_mode", "swap", "orders", "truncated", "category"):
        assert key in r
    assert r["template"] == "pairwise" and r["verdict_mode"] == "probability" and r["label"] == "A"


def test_swap_rules_on_a_position_biased_judge():
    ps = pairs(6)
    none = PairwiseJudge(Scripted(probs=always_first), swap="none").judge_pairs(ps)
    assert {r["winner"] for r in none} == {"A"}
    cons = PairwiseJudge(Scripted(probs=always_first), swap="conservative").judge_pairs(ps)
    assert {r["winner"] for r in cons} == {"tie"}
    s = summarize(cons)
    assert s["position_consistency"] == 0.0 and s["first_position_rate"] == 1.0
    avg = PairwiseJudge(Scripted(probs=always_first), swap="average").judge_pairs(ps)
    assert {r["winner"] for r in avg} == {"tie"}
    assert all(r["p_a"] == pytest.approx(0.5) for r in avg)
    rnd = PairwiseJudge(Scripted(probs=always_first), swap="random", seed=3).judge_pairs(pairs(40))
    orders = [r["orders"][0]["order"] for r in rnd]
    assert all(len(r["orders"]) == 1 for r in rnd)
    assert 5 < orders.count("BA") < 35  # both orders drawn
    assert {r["winner"] for r in rnd if r["orders"][0]["order"] == "BA"} == {"B"}
    again = PairwiseJudge(Scripted(probs=always_first), swap="random", seed=3).judge_pairs(pairs(40))
    assert [r["orders"][0]["order"] for r in again] == orders
    other = PairwiseJudge(Scripted(probs=always_first), swap="random", seed=4).judge_pairs(pairs(40))
    assert [r["orders"][0]["order"] for r in other] != orders


def test_average_swap_follows_the_stronger_order():
    def probs(text, prefix):  # strongly prefers GOOD when it is first, weakly prefers first otherwise
        return {"A": 0.9, "B": 0.05, "C": 0.05} if "GOOD" in shown_first_answer(text) else {"A": 0.5, "B": 0.4, "C": 0.1}

    (r,) = PairwiseJudge(Scripted(probs=probs), swap="average").judge_pairs(pairs(1))
    assert r["winner"] == "A"
    assert r["p_a"] == pytest.approx(((0.9 + 0.025) + (1 - (0.5 + 0.05))) / 2)
    (c,) = PairwiseJudge(Scripted(probs=probs), swap="conservative").judge_pairs(pairs(1))
    assert c["winner"] == "tie"  # the orders disagree


def mixed_pairs(n=10):
    """Pairs whose better answer is A in half of them and B in the other half."""
    out = []
    for i in range(n):
        good, bad = f"GOOD answer {i}", f"bad answer {i}"
        a, b, label = (good, bad, "A") if i % 2 == 0 else (bad, good, "B")
        out.append(Pair(f"m{i}", [{"role": "user", "content": f"Question {i}?"}], a, b, label=label))
    return out


def leans_first_but_tells(text, prefix):
    """Always most likely 'first', yet P(first) is higher when the good answer is shown first."""
    shown = shown_first_answer(text)
    if "GOOD" in shown:
        return {"A": 0.85, "B": 0.05, "C": 0.1}
    if "bad" in shown:
        return {"A": 0.6, "B": 0.3, "C": 0.1}
    return {"A": 0.7, "B": 0.2, "C": 0.1}  # content-free placeholders


def test_calibration_removes_a_position_prior_and_keeps_the_signal():
    ps = mixed_pairs(10)
    plain = PairwiseJudge(Scripted(probs=leans_first_but_tells)).judge_pairs(ps)
    assert [r["winner"] for r in plain] == ["A"] * 10  # right only when A is the better answer
    for calibration in ("batch", "content-free"):
        m = Scripted(probs=leans_first_but_tells)
        judge = PairwiseJudge(m, calibration=calibration)
        recs = judge.judge_pairs(ps)
        assert [r["winner"] for r in recs] == [p.label for p in ps], calibration
        r = recs[1]
        assert r["calibration"] == calibration and r["orders"][0]["probs_uncalibrated"]["first"] == pytest.approx(0.6)
        assert sum(r["orders"][0]["probs"].values()) == pytest.approx(1.0)
        prior = r["calibration_prior"]
        expected = 0.7 if calibration == "content-free" else (0.85 + 0.6) / 2
        assert prior["first"] == pytest.approx(expected)
        if calibration == "content-free":  # the placeholder prompts are judged once per judge
            judge.judge_pairs(ps[:2])
            assert [n for n, _ in m.choice_calls] == [10, 3, 2]
    with pytest.raises(RefereeError, match="at least 8"):
        PairwiseJudge(Scripted(probs=leans_first_but_tells), calibration="batch").judge_pairs(ps[:3])
    with pytest.raises(RefereeError, match="probability"):
        PairwiseJudge(Scripted(), verdict="generative", calibration="batch")
    with pytest.raises(RefereeError, match="calibration"):
        PairwiseJudge(Scripted(), calibration="platt")


def test_no_mass_on_the_options_is_invalid_not_a_tie():
    recs = PairwiseJudge(Scripted(probs=lambda t, p: {}), swap="none").judge_pairs(pairs(2))
    assert [r["winner"] for r in recs] == ["invalid", "invalid"]
    assert recs[0]["orders"][0]["mass"] == 0


def test_cot_probability_reads_after_the_reasoning():
    m = Scripted(reply=lambda t, s: "Answer A is wrong about the date. So the verdict is [[",
                 probs=lambda t, prefix: {"A": 0.1, "B": 0.8, "C": 0.1} if prefix.endswith("verdict is [[")
                 else {"A": 1.0})
    (r,) = PairwiseJudge(m, cot=True).judge_pairs(pairs(1))
    assert r["winner"] == "B" and r["orders"][0]["raw"].startswith("Answer A is wrong")
    assert "First compare" in m.prompts[0]  # the reasoning format was asked for


# ---- inputs ----------------------------------------------------------------------------------------------
def test_empty_answers_are_judged():
    m = Scripted(reply=lambda t, s: "[[B]]")
    ps = [Pair("e", [{"role": "user", "content": "Say hi."}], "", "hi")]
    (r,) = PairwiseJudge(m, verdict="generative").judge_pairs(ps)
    assert r["winner"] == "B"
    (g,) = GradingJudge(Scripted(reply=lambda t, s: "[[1]]"), verdict="generative").grade(["Say hi."], [""])
    assert g["score"] == 1.0 and g["valid"]


def test_reference_given_and_self():
    m = Scripted(reply=lambda t, s: "The answer is 42." if "Question" in t and "Answer A" not in t else "[[A]]")
    with pytest.raises(RefereeError, match="no 'reference'"):
        PairwiseJudge(m, reference="given").judge_pairs(pairs(1))
    ps = pairs(2, reference="It is 41.")
    PairwiseJudge(m, reference="given", verdict="generative").judge_pairs(ps)
    assert "It is 41." in m.prompts[-1] and "Reference answer" in m.prompts[-1]
    m2 = Scripted(reply=lambda t, s: "[[A]]" if "Answer A" in t else "The answer is 42.")
    recs = PairwiseJudge(m2, reference="self", template="pairwise_reference", verdict="generative").judge_pairs(pairs(2))
    # first the judge answered the question itself (greedy), then judged with that answer shown
    assert m2.generate_calls[0][1].temperature == 0
    assert recs[0]["reference"] == "The answer is 42." and recs[0]["winner"] == "A"
    assert "The answer is 42." in m2.prompts[-1]


def test_multiturn_pair_shows_the_whole_conversation():
    m = Scripted(probs=always_first)
    conv = [{"role": "user", "content": "Pick a number."}, {"role": "assistant", "content": "SEVEN"},
            {"role": "user", "content": "Double it."}]
    p = Pair("m", conv, "FOURTEEN", "twelve", turns_a=conv + [{"role": "assistant", "content": "FOURTEEN"}],
             turns_b=conv[:1] + [{"role": "assistant", "content": "six"}, conv[2], {"role": "assistant", "content": "twelve"}])
    PairwiseJudge(m).judge_pairs([p])
    prompt = m.prompts[0]
    assert "LAST turn" in prompt and "### Conversation A" in prompt
    assert prompt.index("SEVEN") < prompt.index("FOURTEEN") < prompt.index("### Conversation B") < prompt.index("six")


def test_few_shot_examples_in_the_prompt_and_bad_file(tmp_path):
    m = Scripted(probs=always_first)
    shots = [{"question": "2+2?", "answer_a": "4", "answer_b": "5", "verdict": "A", "explanation": "4 is right."},
             {"input": "Capital of France?", "output_1": "Lyon", "output_2": "Paris", "label": 2}]
    PairwiseJudge(m, few_shot=shots).judge_pairs(pairs(1))
    prompt = m.prompts[0]
    assert "4 is right.\n[[A]]" in prompt and "Lyon" in prompt and "[[B]]" in prompt
    assert prompt.index("Capital of France?") < prompt.index("Question 0?")
    bad = tmp_path / "shots.jsonl"
    bad.write_text(json.dumps(shots[0]) + "\n" + json.dumps({"question": "q", "answer_a": "x", "verdict": "A"}) + "\n")
    with pytest.raises(RefereeError, match=r"shots.jsonl:2: missing field 'answer_b'"):
        PairwiseJudge(m, few_shot=str(bad))
    with pytest.raises(RefereeError, match="verdict"):
        PairwiseJudge(m, few_shot=[{**shots[0], "verdict": "maybe"}])


def test_templates_by_name_and_path(tmp_path):
    with pytest.raises(RefereeError, match="unknown judge template 'nope'.*pairwise"):
        load_template("nope")
    own = tmp_path / "mine.txt"
    own.write_text("=== user ===\nQ: {question}\n1: {answer_a}\n2: {answer_b}\nJSON like {\"k\": 1} stays.\n{format}\n"
                   "=== format_direct ===\nSay [[A]] or [[B]].\n=== format_cot ===\nThink, then [[A]] or [[B]].\n")
    m = Scripted(probs=always_first)
    (r,) = PairwiseJudge(m, template=str(own)).judge_pairs(pairs(1))
    assert r["template"] == "mine"
    assert m.prompts[0] == "Q: Question 0?\n1: GOOD answer 0\n2: bad answer 0\nJSON like {\"k\": 1} stays.\nSay [[A]] or [[B]]."
    broken = tmp_path / "broken.txt"
    broken.write_text("=== user ===\n{question}\n=== format_direct ===\nx\n=== format_cot ===\ny\n")
    with pytest.raises(RefereeError, match=r"broken.txt: section 'user' must contain \{format\}"):
        load_template(str(broken))
    typo = tmp_path / "typo.txt"
    typo.write_text("=== usr ===\n{format}\n")
    with pytest.raises(RefereeError, match=r"typo.txt:1: unknown section 'usr'"):
        load_template(str(typo))
    with pytest.raises(RefereeError, match="reference-guided judge needs"):
        PairwiseJudge(m, template=str(own), reference="self")
    with pytest.raises(RefereeError, match="swap"):
        PairwiseJudge(m, swap="sometimes")


# ---- grading ---------------------------------------------------------------------------------------------
def test_grading_probability_on_1_to_10_reads_two_digit_scores():
    def probs(text, prefix):
        if prefix.endswith("[[1"):  # after a "1": closing now means 1, a "0" means 10
            return {"]]": 0.25, "0": 0.75}
        return {"1": 0.4, "7": 0.6}

    m = Scripted(probs=probs)
    (g,) = GradingJudge(m, template="single_1to10").grade(["Q?"], ["ans"])
    assert g["probs"]["10"] == pytest.approx(0.3) and g["probs"]["1"] == pytest.approx(0.1)
    assert g["probs"]["7"] == pytest.approx(0.6) and g["probs"]["5"] == pytest.approx(0.0)
    assert g["expected_score"] == pytest.approx(0.1 * 1 + 0.3 * 10 + 0.6 * 7)
    assert g["score"] == 7.0 and g["valid"] and g["scale"] == [1, 10]
    assert [c[1] for c in m.choice_calls] == ["[[", "[[1"]
    (s,) = GradingJudge(m).score_many(["Q?"], ["ans"])
    assert s.value == pytest.approx(7.3) and s.valid


def test_grading_additive_generative_and_invalid():
    replies = iter(["Relevant, covers most.\n[[3]]", "[[9]]", "[[8]]", "no idea"])
    m = Scripted(reply=lambda t, s: next(replies))
    recs = GradingJudge(m, template="additive_0to5", verdict="generative", max_retries=1).grade(["a", "b"], ["x", "y"])
    assert recs[0]["score"] == 3.0 and recs[0]["valid"]
    assert recs[1]["score"] is None and not recs[1]["valid"] and recs[1]["attempts"] == 2
    assert "add points" in m.prompts[0] and "0 to 5" in m.prompts[0]


def test_grading_with_given_and_self_references_and_multiturn():
    m = Scripted(reply=lambda t, s: "[[2]]" if "### Answer" in t or "Conversation" in t else "Paris.")
    g = GradingJudge(m, template="additive_0to5", verdict="generative", reference="given")
    with pytest.raises(RefereeError, match="reference"):
        g.grade(["Capital of France?"], ["Lyon"])
    (r,) = g.grade(["Capital of France?"], ["Lyon"], references=["Paris is the capital."])
    assert r["score"] == 2.0 and "Paris is the capital." in m.prompts[-1]
    (r,) = GradingJudge(m, verdict="generative", reference="self").grade(["Capital of France?"], ["Lyon"])
    assert r["reference"] == "Paris." and "Paris." in m.prompts[-1] and "Reference answer" in m.prompts[-1]
    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Capital of France?"}]
    GradingJudge(m, verdict="generative").grade([conv], ["Lyon"])
    assert "LAST turn" in m.prompts[-1] and m.prompts[-1].index("Hello!") < m.prompts[-1].index("Lyon")


# ---- panels ----------------------------------------------------------------------------------------------
def test_panel_majority_and_mean():
    good = PairwiseJudge(Scripted(probs=prefers_good))
    biased = PairwiseJudge(Scripted(probs=lambda t, p: {"A": 0.1, "B": 0.6, "C": 0.3}))
    broken = PairwiseJudge(Scripted(reply=lambda t, s: "?"), verdict="generative", max_retries=0)
    ps = pairs(2)
    maj = Panel([good, good, biased], "majority").judge_pairs(ps)
    assert [r["winner"] for r in maj] == ["A", "A"] and maj[0]["votes"] == ["A", "A", "B"]
    split = Panel([good, biased, broken], "majority").judge_pairs(ps)
    assert split[0]["winner"] == "tie" and split[0]["votes"] == ["A", "B", "invalid"]
    mean = Panel([good, biased], "mean").judge_pairs(ps)
    assert mean[0]["p_a"] == pytest.approx((0.85 + 0.25) / 2) and mean[0]["winner"] == "A"
    assert Panel([broken], "majority").judge_pairs(ps)[0]["winner"] == "invalid"
    g1 = GradingJudge(Scripted(reply=lambda t, s: "[[4]]"), verdict="generative")
    g2 = GradingJudge(Scripted(reply=lambda t, s: "[[8]]"), verdict="generative")
    (s,) = Panel([g1, g2]).score_many(["q"], ["a"])
    assert s.value == 6.0 and s.valid
    (c,) = Panel([good]).compare_many(["q"], ["GOOD x"], ["y"])
    assert c.winner == "A"


def test_judges_are_verifiers():
    (c,) = PairwiseJudge(Scripted(probs=prefers_good), swap="conservative").compare_many(["Why?"], ["nope"], ["GOOD"])
    assert c.winner == "B" and c.p_a == pytest.approx(0.15) and c.detail["orders"]


# ---- truncation (tiny hf model) --------------------------------------------------------------------------
def test_truncation_cuts_answers_middle_and_keeps_instructions(tiny_model):
    long_a = "START-A " + "alpha beta gamma " * 1500 + " END-A"
    long_b = "START-B " + "delta " * 3000 + " END-B"
    j = PairwiseJudge(tiny_model, verdict="generative", sampling=None, max_retries=0)
    p = Pair("long", [{"role": "user", "content": "Which is better?"}], long_a, long_b)
    chat, cut = j.build_chat(p, "AB", None)
    assert cut
    text = tiny_model.render(chat)
    n_tokens = len(tiny_model.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n_tokens <= tiny_model.context_length - j.sampling.max_new_tokens
    for kept in ("Which is better?", "START-A", "END-A", "START-B", "END-B", "tokens cut", "[[A]]", "[[C]]",
                 "Give only your verdict", "### End of answer B"):
        assert kept in text
    short = Pair("s", [{"role": "user", "content": "Hi?"}], "a", "b")
    assert j.build_chat(short, "AB", None)[1] is False
    rec = PairwiseJudge(tiny_model).judge_pairs([p, short])
    assert [r["truncated"] for r in rec] == [True, False]
    assert rec[0]["winner"] in ("A", "B", "tie")


def test_truncation_with_a_character_budget():
    m = Scripted(probs=always_first)
    j = PairwiseJudge(m, max_prompt_chars=2000)
    p = Pair("long", [{"role": "user", "content": "Q?"}], "x" * 5000, "y" * 100)
    (r,) = j.judge_pairs([p])
    assert r["truncated"] and len(m.prompts[0]) <= 2000
    assert "characters cut" in m.prompts[0] and "y" * 100 in m.prompts[0] and "[[C]]" in m.prompts[0]
    with pytest.raises(RefereeError, match="budget"):
        PairwiseJudge(m, max_prompt_chars=300).judge_pairs([p])


# ---- the CLI ---------------------------------------------------------------------------------------------
def _cli(args):
    from referee.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
        raise SystemExit(0)
    return e.value.code


def test_cli_judge_end_to_end(tiny_model_path, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    rows = [{"input": f"Question {i}?", "output_1": f"first {i}", "output_2": "" if i == 2 else f"second {i}",
             "label": 1 + i % 2} for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    code = _cli(["judge", "--judge", f"hf:{tiny_model_path}", "--pairs", str(data), "--swap", "conservative",
                 "--out", str(out), "--run", str(tmp_path / "run")])
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4 and all(len(r["orders"]) == 2 for r in records)
    assert all(r["winner"] in ("A", "B", "tie") for r in records)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["judge"]
    assert metrics["pairs"] == 4 and "position_consistency" in metrics and metrics["labelled"] == 4
    assert (tmp_path / "run" / "records" / "judgments.jsonl").exists()
    assert json.loads(capsys.readouterr().out)["pairs"] == 4
    code = _cli(["judge", "--judge", f"hf:{tiny_model_path}", "--pairs", str(data), "--calibration", "content-free",
                 "--out", str(out), "--run", str(tmp_path / "run-cal")])
    assert code == 0
    calibrated = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["calibration"] == "content-free" and "probs_uncalibrated" in r["orders"][0] for r in calibrated)
    # single-answer grading of both answers, generative, one retry
    code = _cli(["judge", "--judge", f"hf:{tiny_model_path}", "--mode", "single", "--pairs", str(data),
                 "--verdict", "generative", "--max-retries", "1", "--max-new-tokens", "4", "--limit", "2",
                 "--run", str(tmp_path / "run2")])
    assert code == 0
    metrics = json.loads((tmp_path / "run2" / "metrics.json").read_text())["judge"]
    assert metrics["pairs"] == 2 and metrics["grades"]["answers"] == 4


def test_cli_judge_config_repeats_the_run_and_changes_recompute(tiny_model_path, tmp_path, capsys):
    """A judge run's config.yaml is a protocol config: `referee run` on it reads the judgments back without
    a model call; another setting in the same folder judges again instead of returning stale records."""
    import yaml

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"input": f"Q{i}?", "output_1": f"a{i}", "output_2": f"b{i} longer",
                                        "label": 1}) + "\n" for i in range(3)))
    run = tmp_path / "run"
    assert _cli(["judge", "--judge", "baseline:longer", "--pairs", str(data), "--run", str(run)]) == 0
    assert [json.loads(x)["winner"] for x in (run / "records" / "judgments.jsonl").read_text().splitlines()] == ["B"] * 3
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["protocol"] == "judge" and config["judge"]["swap"] == "none"
    assert _cli(["judge", "--judge", f"hf:{tiny_model_path}", "--pairs", str(data), "--run", str(run)]) == 0
    judged = [json.loads(x) for x in (run / "records" / "judgments.jsonl").read_text().splitlines()]
    assert all(r["verdict_mode"] == "probability" for r in judged)  # the model judged, not the stale baseline
    before = (run / "records" / "judgments.jsonl").read_bytes()
    capsys.readouterr()
    assert _cli(["run", str(run / "config.yaml")]) == 0
    assert (run / "records" / "judgments.jsonl").read_bytes() == before
    assert json.loads((run / "ledger.json").read_text())["totals"]["calls"] == 0
    assert "judge" in capsys.readouterr().out
    # one answer's text changed, ids the same: judged again, not read back
    data.write_text(data.read_text().replace("b1 longer", "b1"))
    assert _cli(["run", str(run / "config.yaml")]) == 0
    assert json.loads((run / "ledger.json").read_text())["totals"]["calls"] > 0
    assert (run / "records" / "judgments.jsonl").read_bytes() != before


def test_cli_bad_input_names_file_line_and_field(tiny_model_path, tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"input": "q", "output_1": "a", "output_2": "b", "label": 1}) + "\n"
                    + json.dumps({"input": "q", "output_1": "a", "label": 1}) + "\n")
    assert _cli(["judge", "--judge", f"hf:{tiny_model_path}", "--pairs", str(data), "--run", str(tmp_path / "r")]) == 2
    assert f"{data}:2: missing field 'output_2'" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"input": "q", "output_1": "a", "output_2": "b"}) + "\n")
    assert _cli(["judge", "--judge", f"hf:{tiny_model_path}", "--pairs", str(good), "--swap", "both",
                 "--run", str(tmp_path / "r")]) == 2
    assert "swap should be one of" in capsys.readouterr().err
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"prompt": "q"}) + "\n")
    assert _cli(["judge", "--judge", f"hf:{tiny_model_path}", "--mode", "single", "--answers", str(answers),
                 "--run", str(tmp_path / "r")]) == 2
    assert f"{answers}:1: missing field 'response'" in capsys.readouterr().err


# ---- the real embedded model -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.data("llmbar/natural.json")
def test_embedded_probability_judge_on_llmbar():
    from referee.models import load_model
    from referee.tasks.pairs import load_pairs

    ps = sorted(load_pairs(DATA / "llmbar" / "natural.json"),
                key=lambda p: len(p.answer_a) + len(p.answer_b) + len(p.question[0]["content"]))[:2]
    recs = PairwiseJudge(load_model("embedded"), swap="conservative").judge_pairs(ps)
    for r in recs:
        assert r["winner"] in ("A", "B", "tie") and r["label"] in ("A", "B")
        for o in r["orders"]:
            # an instruction-tuned model puts most of its next-token mass on the verdict letters
            assert o["mass"] > 0.5
            assert sum(o["probs"].values()) == pytest.approx(1.0)
