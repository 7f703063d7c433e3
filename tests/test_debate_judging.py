"""The debate judge: what each reader sees, verdicts through the one judge builder, accuracy per shown order.

A scripted judge model plays the judge: it always says A, or picks whichever shown answer is the right one
(it reads the answers off the prompt and knows the right texts), or says tie / nothing readable where the
question asks it to. One test runs a tiny real model end to end.
"""

from __future__ import annotations

import re

import pytest

from referee.debate.judging import READERS, SILENT, UNARGUED, accuracy_summary, judge_items, judge_pair
from referee.dialogue import Transcript, Turn
from referee.errors import RefereeError
from referee.judges.build import JudgeConfig
from referee.judges.scored import ScoredPairJudge
from referee.judges.templates import load_template
from referee.models.base import ChoiceResult, Completion, Model
from referee.supervisors import build_judge
from referee.tasks.passages import PassageItem
from referee.verifiers.base import PointwiseVerifier, Score

PASSAGE = ("The cat sat on the mat while the kettle boiled. Much later a storm rolled over the old harbour "
           "town and nobody went out.")
HIDDEN = "old harbour town"  # passage text no debater quotes: it must never reach a judge without the passage
SHOWN_ANSWER = re.compile(r"### Answer A\n(.*?)\n### End of answer A", re.S)
MARKERS = {"first": "[[A]]", "second": "[[B]]", "tie": "[[C]]", "none": "I cannot say."}


# ---- a scripted judge model ------------------------------------------------------------------------------
class Scripted(Model):
    """mode "A": always the first shown answer; "truth": the shown position of the right answer, except on
    questions with "(tie)" (says C) or "(mumble)" (says nothing readable, no verdict probability)."""

    def __init__(self, mode: str, right: set[str] = frozenset()):
        super().__init__()
        self.spec, self.fingerprint = f"scripted-{mode}", f"scripted-{mode}-v1"
        self.mode, self.right = mode, set(right)
        self.prompts: list[str] = []

    def pick(self, chat) -> str:
        text = chat[-1]["content"]
        self.prompts.append(text)
        if self.mode == "A":
            return "first"
        if "(tie)" in text:
            return "tie"
        if "(mumble)" in text:
            return "none"
        return "first" if SHOWN_ANSWER.search(text).group(1) in self.right else "second"

    def _choice(self, chats, options, prefix):
        out = []
        for chat in chats:
            said = self.pick(chat)
            if said == "none":
                out.append(ChoiceResult({k: 0.0 for k in options}, 0.0))
            else:
                out.append(ChoiceResult({k: float(k == said) for k in options}, 1.0))
        return out

    def _generate(self, requests):
        return [Completion(f"Verdict: {MARKERS[self.pick(r.chat)]}", 10, 5, "stop") for r in requests]


class Leaning(Scripted):
    """Probability verdicts that lean to the first shown answer: P(first) 0.6, P(second) 0.2, P(tie) 0.2."""

    def _choice(self, chats, options, prefix):
        for chat in chats:
            self.pick(chat)
        return [ChoiceResult({"first": 0.6, "second": 0.2, "tie": 0.2}, 0.9) for _ in chats]


def make_items(n: int, question: str = "Where did the cat sit?") -> list[PassageItem]:
    items = []
    for i in range(n):
        right, wrong = f"on the mat ({i})", f"on the roof ({i})"
        correct = i % 2
        answers = (right, wrong) if correct == 0 else (wrong, right)
        items.append(PassageItem(f"q{i}", PASSAGE, question, answers, correct, where=f"items.jsonl:{i + 1}"))
    return items


def right_texts(items) -> set[str]:
    return {it.answers[it.correct] for it in items}


def debate_transcript(item: PassageItem) -> Transcript:
    turns = [Turn("alice", "debater_a", "It says <quote>the cat sat on the mat</quote>, and <quote>dogs fly</quote>.",
                  round=0),
             Turn("bob", "debater_b", "", round=0),  # a debater who wrote nothing is shown as such
             Turn("judge", "judge", "JUDGE-OWN-WORDS", round=1)]
    return Transcript(item.id, {"question": item.question, "passage": item.passage}, turns, {"correct": item.correct})


def consultancy_transcript(item: PassageItem, side: int) -> Transcript:
    turns = [Turn("carol", "consultant", "Trust me: <quote>nobody went out</quote>.", round=0),
             Turn("alice", "debater_a", "DEBATER-NOT-IN-CONSULTANCY", round=0)]
    return Transcript(item.id, {"passage": item.passage}, turns, {"sides": {"consultant": side}})


def judge_for(model: Model, **settings):
    return build_judge(model.spec, JudgeConfig(template="debate", **settings), lambda spec: model)


# ---- what each reader sees -------------------------------------------------------------------------------
def test_each_reader_sees_only_what_it_may():
    item = make_items(1)[0]
    blind = judge_pair(item, "blind").question[0]["content"]
    expert = judge_pair(item, "expert").question[0]["content"]
    debate = judge_pair(item, "debate", debate_transcript(item)).question[0]["content"]
    consult = judge_pair(item, "consultancy", consultancy_transcript(item, 1)).question[0]["content"]
    for text in (blind, expert, debate, consult):
        assert item.question in text
    assert PASSAGE not in blind and HIDDEN not in blind and "quote" not in blind
    assert PASSAGE in expert
    # debate: the debaters' turns, quotes marked, the silent debater shown as silent; no passage, no judge turn
    assert PASSAGE not in debate and HIDDEN not in debate and "JUDGE-OWN-WORDS" not in debate
    assert "<v_quote>the cat sat on the mat</v_quote>" in debate and "<u_quote>dogs fly</u_quote>" in debate
    assert "<quote>" not in debate and f"bob (debater_b), round 1:\n{SILENT}" in debate
    assert f"debater_a defends the answer: {item.answers[0]}" in debate
    assert f"debater_b defends the answer: {item.answers[1]}" in debate
    # consultancy: the consultant only, with its side from the transcript's meta
    assert "<v_quote>nobody went out</v_quote>" in consult and "DEBATER-NOT-IN-CONSULTANCY" not in consult
    assert f"consultant defends the answer: {item.answers[1]}" in consult and HIDDEN not in consult.replace(
        "<v_quote>nobody went out</v_quote>", "")


def test_per_answer_shows_each_answer_with_its_own_side_only():
    item = make_items(1)[0]
    together = judge_pair(item, "debate", debate_transcript(item))
    pair = judge_pair(item, "debate", debate_transcript(item), layout="per_answer")
    assert pair.question == together.question and together.turns_a is None  # an LLM judge reads the same text
    case_a, case_b = pair.turns_a[0]["content"], pair.turns_b[0]["content"]
    assert [pair.turns_a[1]["content"], pair.turns_b[1]["content"]] == list(item.answers)
    assert "<v_quote>the cat sat on the mat</v_quote>" in case_a and "bob (debater_b)" not in case_a
    assert f"bob (debater_b), round 1:\n{SILENT}" in case_b and "v_quote" not in case_b and "alice" not in case_b
    for case in (case_a, case_b):
        assert item.question in case and HIDDEN not in case and "JUDGE-OWN-WORDS" not in case
    consult = judge_pair(item, "consultancy", consultancy_transcript(item, 1), layout="per_answer")
    assert consult.turns_a[0]["content"].endswith(UNARGUED)
    assert "<v_quote>nobody went out</v_quote>" in consult.turns_b[0]["content"]
    assert judge_pair(item, "blind", layout="per_answer") == judge_pair(item, "blind")  # nothing to lay out
    with pytest.raises(RefereeError, match="layout should be one of together, per_answer, got 'mixed'"):
        judge_pair(item, "debate", debate_transcript(item), layout="mixed")


class QuoteCounter(PointwiseVerifier):
    """Scores an answer by the verified quotes in the text before it: a reader of evidence with no other skill."""

    name = "quote-counter"

    def score_many(self, prompts, responses):
        return [Score(float(p[-1]["content"].count("<v_quote>"))) for p in prompts]


def test_a_judge_scoring_each_answer_alone_needs_the_per_answer_layout():
    """Each item's right answer is argued with a verified quote, the wrong one with an unverified one. Read
    together, both answers come after the same text and score alike (no decision); per answer, the quote counter
    finds the right one every time."""
    items = make_items(6)

    def argued(item: PassageItem) -> Transcript:
        said = ["<quote>the cat sat on the mat</quote>", "<quote>the cat flew</quote>"]
        turns = [Turn(name, role, said[0 if k == item.correct else 1], round=0)
                 for k, (name, role) in enumerate([("alice", "debater_a"), ("bob", "debater_b")])]
        return Transcript(item.id, {"passage": item.passage}, turns)

    transcripts = {it.id: argued(it) for it in items}
    judge = ScoredPairJudge(QuoteCounter())
    together = accuracy_summary(judge_items(judge, items, "debate", transcripts))
    per_answer = accuracy_summary(judge_items(judge, items, "debate", transcripts, layout="per_answer"))
    assert together["ties"] == 6 and together["accuracy"]["value"] == 0.0
    assert per_answer["accuracy"]["value"] == 1.0 and per_answer["ties"] == 0


def test_the_pair_keeps_the_item_order_and_the_truth_out_of_sight():
    item = make_items(2)[1]
    pair = judge_pair(item, "blind")
    assert (pair.answer_a, pair.answer_b) == item.answers and pair.id == item.id
    assert pair.label == "B" and pair.meta == {"item": "q1", "reader": "blind", "correct": 1, "correct_side": "B"}


def test_the_judge_prompt_carries_the_reader_text_through_the_template():
    items = make_items(2)
    model = Scripted("truth", right_texts(items))
    transcripts = [debate_transcript(it) for it in items]
    judge_items(judge_for(model), items, "debate", transcripts)
    judge_items(judge_for(model), items, "blind", transcripts)  # blind leaves the transcripts unread
    debate_prompt, blind_prompt = model.prompts[0], model.prompts[2]
    assert "<v_quote>the cat sat on the mat</v_quote>" in debate_prompt
    assert "cannot read the passage" in debate_prompt and "[[C]]" not in debate_prompt
    assert HIDDEN not in debate_prompt and HIDDEN not in blind_prompt and "debater" not in blind_prompt


def test_the_template_offers_a_or_b_only():
    tpl = load_template("debate")
    for section in ("format_direct", "format_cot"):
        text = tpl.fill(section, {})
        assert "[[A]]" in text and "[[B]]" in text and "[[C]]" not in text
    assert "{question}" in tpl.sections["user"] and "<u_quote>" in tpl.sections["user"]


# ---- accuracy --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("verdict", ["probability", "generative"])
def test_a_judge_that_always_says_a_is_right_half_the_time_and_the_orders_show_it(verdict):
    items = make_items(10)
    records = judge_items(judge_for(Scripted("A"), verdict=verdict), items, "blind")
    summary = accuracy_summary(records)
    assert [r["verdict"] for r in records] == ["A"] * 10 and [r["chosen"] for r in records] == [0] * 10
    assert summary["accuracy"]["value"] == 0.5 and summary["n"] == 10 and summary["reader"] == "blind"
    assert summary["by_order"]["correct_first"]["value"] == 1.0 and summary["by_order"]["correct_first"]["n"] == 5
    assert summary["by_order"]["correct_second"]["value"] == 0.0
    assert summary["accuracy"]["low"] < 0.5 < summary["accuracy"]["high"]
    if verdict == "probability":
        assert summary["p_correct"]["value"] == 0.5 and records[0]["orders"][0]["probs"]["first"] == 1.0
    else:
        assert summary["p_correct"]["value"] is None and records[0]["orders"][0]["raw"] == "Verdict: [[A]]"


def test_order_per_record_follows_what_the_judge_was_shown_not_the_item_order():
    """With a random swap the judge sees some items in the other order: a first-position judge must still be
    perfect when the right answer was SHOWN first."""
    items = make_items(20)
    records = judge_items(judge_for(Scripted("A"), swap="random"), items, "blind")
    summary = accuracy_summary(records)
    swapped = [r for r in records if r["orders"][0]["order"] == "BA"]
    assert swapped and len(swapped) < len(records)
    by_order = summary["by_order"]
    assert by_order["correct_first"]["value"] == 1.0 and by_order["correct_second"]["value"] == 0.0


@pytest.mark.parametrize("verdict", ["probability", "generative"])
@pytest.mark.parametrize("reader", READERS)
def test_a_judge_keyed_on_the_truth_is_always_right(verdict, reader):
    items = make_items(6)
    transcripts = {it.id: debate_transcript(it) if reader == "debate" else consultancy_transcript(it, it.correct)
                   for it in items}
    model = Scripted("truth", right_texts(items))
    records = judge_items(judge_for(model, verdict=verdict), items, reader, transcripts)
    summary = accuracy_summary(records)
    assert summary["accuracy"]["value"] == 1.0 and summary["ties"] == summary["invalid"] == 0
    assert all(r["correct"] and r["chosen"] == r["correct_answer"] and r["reader"] == reader for r in records)
    assert summary["p_correct"]["value"] == (1.0 if verdict == "probability" else None)


def test_both_orders_shown_leave_the_per_order_split_empty():
    items = make_items(4)
    records = judge_items(judge_for(Scripted("truth", right_texts(items)), swap="conservative"), items, "expert")
    summary = accuracy_summary(records)
    assert summary["accuracy"]["value"] == 1.0 and summary["both_orders"] == 4
    assert all(r["correct_shown_first"] is None for r in records)
    assert summary["by_order"]["correct_first"]["n"] == 0 and summary["by_order"]["correct_first"]["value"] is None


@pytest.mark.parametrize("verdict", ["probability", "generative"])
def test_ties_and_unreadable_verdicts_are_counted_and_never_right(verdict):
    tie = PassageItem("t", PASSAGE, "Where did the cat sit? (tie)", ("on the mat", "on the roof"), 0)
    mumble = PassageItem("m", PASSAGE, "(mumble) Where did the cat sit?", ("on the roof", "on the mat"), 1)
    items = make_items(4) + [tie, mumble]
    model = Scripted("truth", right_texts(items))
    records = judge_items(judge_for(model, verdict=verdict, max_retries=1), items, "blind")
    by_id = {r["id"]: r for r in records}
    assert by_id["t"]["verdict"] == "tie" and by_id["t"]["chosen"] is None and by_id["t"]["correct"] is False
    assert by_id["m"]["verdict"] is None and by_id["m"]["correct"] is False and by_id["m"]["winner"] == "invalid"
    summary = accuracy_summary(records)
    assert summary["ties"] == 1 and summary["invalid"] == 1 and summary["decided"] == 4
    assert summary["accuracy"]["value"] == pytest.approx(4 / 6) and summary["accuracy_decided"]["value"] == 1.0
    if verdict == "generative":
        assert by_id["m"]["orders"][0]["attempts"] == 2  # the unreadable verdict was asked for again
        assert by_id["m"]["p_correct"] is None
    else:
        assert by_id["t"]["p_correct"] is None  # a tie-only verdict leaves nothing between A and B


def test_p_correct_divides_out_the_tie():
    items = make_items(2)
    records = judge_items(judge_for(Leaning("lean")), items, "blind")
    assert [r["p_correct"] for r in records] == [pytest.approx(0.75), pytest.approx(0.25)]
    assert accuracy_summary(records)["p_correct"]["value"] == pytest.approx(0.5)


# ---- bad input -------------------------------------------------------------------------------------------
def test_bad_input_is_one_clear_line():
    items = make_items(2)
    with pytest.raises(RefereeError, match="reader should be one of blind, expert, debate, consultancy"):
        judge_pair(items[0], "jury")
    with pytest.raises(RefereeError, match=r"items.jsonl:1: reader 'debate' reads a transcript"):
        judge_pair(items[0], "debate")
    with pytest.raises(RefereeError, match=r"items.jsonl:1: reader 'blind' reads no transcript"):
        judge_pair(items[0], "blind", debate_transcript(items[0]))
    with pytest.raises(RefereeError, match=r"items.jsonl:1: the transcript given is for item 'q1'"):
        judge_pair(items[0], "debate", debate_transcript(items[1]))
    with pytest.raises(RefereeError, match=r"no turn by consultant \(roles in it: debater_a, debater_b, judge\)"):
        judge_pair(items[0], "consultancy", debate_transcript(items[0]))
    bad_sides = Transcript("q0", turns=[Turn("c", "consultant", "hi")], meta={"sides": {"consultant": 2}})
    with pytest.raises(RefereeError, match="meta 'sides' should map roles to answer index 0 or 1"):
        judge_pair(items[0], "consultancy", bad_sides)
    with pytest.raises(RefereeError, match="reader 'debate' reads transcripts; none were given"):
        judge_items(judge_for(Scripted("A")), items, "debate")
    with pytest.raises(RefereeError, match="item ids must be unique; repeated: q0"):
        judge_items(judge_for(Scripted("A")), [items[0], items[0]], "blind")
    wrong = PassageItem("x", PASSAGE, "Q?", ("a", "b"), 2, where="f.jsonl:7")
    with pytest.raises(RefereeError, match=r"f.jsonl:7: field 'correct' should be 0 or 1, got 2"):
        judge_pair(wrong, "blind")
    model = Scripted("A")
    mixed = judge_items(judge_for(model), items, "blind") + judge_items(judge_for(model), items, "expert")
    with pytest.raises(RefereeError, match=r"several readers \(blind, expert\)"):
        accuracy_summary(mixed)


# ---- a real model ----------------------------------------------------------------------------------------
def test_a_tiny_real_model_judges_three_items_end_to_end(tiny_model_path):
    from referee.models import load_model

    spec = f"hf:{tiny_model_path}"
    items = make_items(3)
    transcripts = [debate_transcript(it) for it in items]
    judge = build_judge(spec, JudgeConfig(template="debate"), load_model)
    for reader in ("blind", "debate"):
        records = judge_items(judge, items, reader, transcripts)
        assert [r["id"] for r in records] == ["q0", "q1", "q2"]
        for r in records:
            probs = r["orders"][0]["probs"]
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4) and r["orders"][0]["mass"] > 0
            assert r["verdict"] in ("A", "B", "tie") and 0.0 <= r["p_correct"] <= 1.0
            assert r["correct"] == (r["chosen"] == r["correct_answer"])
        summary = accuracy_summary(records)
        assert summary["n"] == 3 and summary["invalid"] == 0 and summary["p_correct"]["n"] == 3
    generative = build_judge(spec, JudgeConfig(template="debate", verdict="generative", max_new_tokens=8,
                                               max_retries=0), load_model)
    records = judge_items(generative, items, "expert")
    summary = accuracy_summary(records)
    assert summary["n"] == 3 and summary["decided"] + summary["ties"] + summary["invalid"] == 3
    assert all(r["correct"] is False for r in records if r["verdict"] is None)
