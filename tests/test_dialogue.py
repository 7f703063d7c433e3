"""Transcripts and the dialogue runner: who sees what, one generate call per step, word limits, records,
and turns that do not depend on the batch or on an interruption (on a tiny random model)."""

from __future__ import annotations

import hashlib
import json

import pytest

from referee.cache import Cache
from referee.dialogue import Round, Speaker, Transcript, Turn, View, cut_words, run_dialogue
from referee.errors import RefereeError
from referee.models import load_model
from referee.models.base import Completion, Model, Sampling

ITEMS = [Transcript(f"q{k}", {"question": f"Question {k}?", "passage": f"Secret passage {k}."},
                    meta={"gold": "A"}) for k in range(3)]
DEBATERS = [("alice", "debater_a"), ("bob", "debater_b")]


class Recorder(Model):
    """Replies with text made from a digest of the chat (so every reply is unique and reproducible) and
    records what it was asked: each generate call's chats, each computed request, and which chat
    produced which reply."""

    spec = "recorder"
    fingerprint = "recorder"

    def __init__(self, words: int = 3, cache=None):
        super().__init__(cache=cache)
        self.words = words
        self.calls, self.computed, self.seeds, self.asked = [], [], [], {}

    def generate(self, chats, sampling=None, n=1, desc="generate"):
        self.calls.append([list(c) for c in chats])
        return super().generate(chats, sampling, n, desc)

    def _generate(self, requests):
        out = []
        for r in requests:
            digest = hashlib.sha256(json.dumps(r.chat).encode()).hexdigest()[:8]
            text = " ".join(f"{digest}w{k}" for k in range(self.words))
            self.computed.append(r.chat)
            self.seeds.append(r.seed)
            self.asked[text] = r.chat
            out.append(Completion(text, 10, self.words, "stop"))
        return out

    def prompt_of(self, turn: Turn) -> str:
        """Everything the speaker of ``turn`` was shown, as one text."""
        chat = next(c for reply, c in self.asked.items() if reply.startswith(turn.text))
        return "\n".join(m["content"] for m in chat)


def debaters(model, **kwargs) -> list[Speaker]:
    return [Speaker(name, role, model, system=f"You are {name}; argue.", **kwargs) for name, role in DEBATERS]


def test_a_simultaneous_round_hides_the_same_rounds_turns():
    m = Recorder()
    out = run_dialogue(ITEMS, [Round(("alice", "bob"), simultaneous=True)] * 2, debaters(m))
    for t in out:
        a0, b0, a1, b1 = t.turns
        assert [(x.speaker, x.round) for x in t.turns] == [("alice", 0), ("bob", 0), ("alice", 1), ("bob", 1)]
        assert a0.text not in m.prompt_of(b0) and b0.text not in m.prompt_of(a0)
        assert a1.text not in m.prompt_of(b1) and b1.text not in m.prompt_of(a1)
        for later in (a1, b1):  # the next round sees the whole first round
            assert a0.text in m.prompt_of(later) and b0.text in m.prompt_of(later)
        assert t.context["passage"] in m.prompt_of(a0)


def test_a_sequential_round_shows_every_earlier_turn():
    m = Recorder()
    out = run_dialogue(ITEMS, [Round(("alice", "bob"))] * 2, debaters(m))
    for t in out:
        a0, b0, a1, b1 = t.turns
        assert a0.text in m.prompt_of(b0)
        assert a0.text in m.prompt_of(a1) and b0.text in m.prompt_of(a1)
        assert a1.text in m.prompt_of(b1)
        assert b1.text not in m.prompt_of(a1)


def test_a_blind_judge_reads_the_debate_without_the_passage():
    m, j = Recorder(), Recorder()
    blind = Speaker("judge", "judge", j, system="Judge the debate.", view=View(context=("question",)),
                    instruction="Who is right about: {question}")
    out = run_dialogue(ITEMS, [Round(("alice", "bob"), simultaneous=True), Round(("judge",))], debaters(m) + [blind])
    for t in out:
        seen = j.prompt_of(t.turns[-1])
        assert t.context["passage"] not in seen
        assert t.context["question"] in seen and seen.count(t.context["question"]) == 2
        assert t.turns[0].text in seen and t.turns[1].text in seen
    # the same judge with the passage in view does see it (the check above can tell the difference)
    sighted = Speaker("judge", "judge", Recorder(), system="Judge the debate.")
    t = run_dialogue(ITEMS[:1], [Round(("judge",))], [sighted])[0]
    assert t.context["passage"] in sighted.model.prompt_of(t.turns[0])


def test_a_prompt_cannot_leak_a_hidden_field():
    leaky = Speaker("judge", "judge", Recorder(), view=View(context=("question",)),
                    instruction="Recall {passage}; keep {braces} and {\"json\": 1} as they are")
    with pytest.raises(RefereeError, match=r"\{passage\}, which its view hides"):
        run_dialogue(ITEMS, [Round(("judge",))], [leaky])
    fine = Speaker("judge", "judge", Recorder(), view=View(context=("question",)),
                   instruction="Round {round} of {rounds}, {name} the {role}; keep {braces} and {\"json\": 1}")
    t = run_dialogue(ITEMS[:1], [Round(("judge",))], [fine])[0]
    assert fine.model.prompt_of(t.turns[0]).endswith('Round 1 of 1, judge the judge; keep {braces} and {"json": 1}')


def test_one_generate_call_per_step_and_model_across_items():
    m, j = Recorder(), Recorder()
    judge = Speaker("judge", "judge", j)
    schedule = [Round(("alice", "bob"), simultaneous=True), Round(("alice", "bob")), Round(("judge",))]
    out = run_dialogue(ITEMS, schedule, debaters(m) + [judge])
    assert [len(call) for call in m.calls] == [6, 3, 3]  # both debaters at once, then one after the other
    assert [len(call) for call in j.calls] == [3]
    assert [[x.speaker for x in t.turns] for t in out] == [["alice", "bob", "alice", "bob", "judge"]] * 3
    # different sampling on one model cannot share a call
    m2 = Recorder()
    split = [Speaker(name, role, m2, sampling=Sampling(seed=k)) for k, (name, role) in enumerate(DEBATERS)]
    run_dialogue(ITEMS, schedule[:1], split)
    assert [len(call) for call in m2.calls] == [3, 3]


def test_every_turn_of_every_item_has_its_own_seed():
    m = Recorder()
    run_dialogue(ITEMS, [Round(("alice", "bob"), simultaneous=True)] * 2, debaters(m, sampling=Sampling(seed=5)))
    assert len(m.seeds) == 12 and len(set(m.seeds)) == 12


def test_the_word_limit_cuts_a_turn_and_says_so():
    m = Recorder(words=10)
    speakers = [Speaker("alice", "debater_a", m, system="A", word_limit=4),
                Speaker("bob", "debater_b", m, system="B", word_limit=50)]
    out = run_dialogue(ITEMS, [Round(("alice", "bob")), Round(("alice",))], speakers)
    for t in out:
        alice, bob, _ = t.turns
        full = next(reply for reply in m.asked if reply.startswith(alice.text))
        assert alice.text.split() == full.split()[:4] and alice.truncated
        assert len(bob.text.split()) == 10 and not bob.truncated
        assert full.split()[4] not in m.prompt_of(bob)  # the others see only what was kept
        assert alice.completion_tokens == 10 and alice.finish_reason == "stop"


def test_cut_words_keeps_the_text_up_to_the_last_word():
    assert cut_words("a  b\nc d", 3) == ("a  b\nc", True)
    assert cut_words("a b c", 3) == ("a b c", False)
    assert cut_words("a b c", None) == ("a b c", False)


def test_transcripts_round_trip_through_jsonl_records():
    m = Recorder()
    out = run_dialogue(ITEMS, [Round(("alice", "bob"), simultaneous=True)], debaters(m, word_limit=2))
    for t in out:
        back = Transcript.from_record(json.loads(json.dumps(t.to_record())))
        assert back == t and back.meta == {"gold": "A"}
    with pytest.raises(RefereeError, match="turn 0: missing text"):
        Transcript.from_record({"id": "x", "turns": [{"speaker": "a", "role": "r"}]})
    with pytest.raises(RefereeError, match="unknown colour"):
        Transcript.from_record({"id": "x", "turns": [{"speaker": "a", "role": "r", "text": "", "colour": 1}]})


def test_items_are_left_as_they_were_and_their_turns_are_seen():
    m = Recorder()
    start = Transcript("s", {"question": "Q?"}, [Turn("ann", "answerer", "It is 4.")])
    out = run_dialogue([start], [Round(("alice",))], debaters(m))
    assert len(start.turns) == 1 and len(out[0].turns) == 2
    assert "ann (answerer):\nIt is 4." in m.prompt_of(out[0].turns[1])


def test_views_filter_turns_and_name_missing_fields():
    t = Transcript("x", {"question": "Q?", "passage": "P."},
                   [Turn("a", "debater_a", "one", round=0), Turn("b", "debater_b", "two", round=0)])
    assert t.text(View(context=("question",), roles=("debater_b",))) == "Question:\nQ?\n\nb (debater_b), round 1:\ntwo"
    assert "P." in t.text() and "one" in t.text()
    with pytest.raises(RefereeError, match="lacks"):
        t.text(View(context=("answer_a",)))


def test_bad_schedules_and_speakers_are_refused():
    m = Recorder()
    with pytest.raises(RefereeError, match="unknown speaker"):
        run_dialogue(ITEMS, [Round(("carol",))], debaters(m))
    with pytest.raises(RefereeError, match="twice at the same time"):
        Round(("alice", "alice"), simultaneous=True)
    with pytest.raises(RefereeError, match="unique"):
        run_dialogue([ITEMS[0], ITEMS[0]], [Round(("alice",))], debaters(m))
    with pytest.raises(RefereeError, match="two speakers"):
        run_dialogue(ITEMS, [Round(("alice",))], debaters(m) + debaters(m))
    with pytest.raises(RefereeError, match="word_limit"):
        Speaker("a", "r", m, word_limit=0)


def test_a_killed_dialogue_resumes_turn_by_turn_from_the_cache(tmp_path):
    schedule = [Round(("alice", "bob"), simultaneous=True), Round(("alice", "bob"))]
    whole = run_dialogue(ITEMS, schedule, debaters(Recorder()))
    cache = Cache(tmp_path / "calls.sqlite")
    run_dialogue(ITEMS, schedule[:1], debaters(Recorder(cache=cache)))  # killed after the first round
    again = Recorder(cache=cache)
    assert run_dialogue(ITEMS, schedule, debaters(again)) == whole
    assert len(again.computed) == 6  # only the second round's turns were drawn


def _hf_run(path, items, schedule, cache=None, batch_size=4):
    model = load_model(f"hf:{path}?batch_size={batch_size}", cache=cache)
    speakers = debaters(model, sampling=Sampling(temperature=1.0, max_new_tokens=6, seed=3), word_limit=3)
    return [t.to_record() for t in run_dialogue(items, schedule, speakers)]


def test_turns_do_not_depend_on_the_batch_or_an_interruption(tiny_model_path, tmp_path):
    schedule = [Round(("alice", "bob"), simultaneous=True), Round(("alice", "bob"))]
    whole = _hf_run(tiny_model_path, ITEMS, schedule)
    texts = [x["text"] for r in whole for x in r["turns"]]
    assert len(set(texts)) > 1, "a random model at temperature 1 should not say the same thing every turn"
    assert _hf_run(tiny_model_path, ITEMS[1:2], schedule, batch_size=1) == whole[1:2]
    cache = Cache(tmp_path / "calls.sqlite")
    _hf_run(tiny_model_path, ITEMS, schedule[:1], cache)  # killed after the first round
    assert _hf_run(tiny_model_path, ITEMS, schedule, cache) == whole


class Drawer(Recorder):
    """Each sample is 1 to 5 words, by its seed, so the samples of one request differ."""

    def _generate(self, requests):
        return [Completion(" ".join(["word"] * (1 + r.seed % 5)), 10, 1, "stop") for r in requests]


def test_best_of_n_keeps_the_turn_its_preference_ranks_highest_and_records_every_candidate():
    asked = []

    def prefer(candidates):  # longer is better; three words cannot be read
        asked.append([len(transcript.turns) for transcript, _ in candidates])
        return [None if len(turn.text.split()) == 3 else float(len(turn.text.split())) for _, turn in candidates]

    speakers = debaters(Drawer(), best_of=4, prefer=prefer)
    out = run_dialogue(ITEMS, [Round(("alice", "bob"), simultaneous=True), Round(("alice",))], speakers)
    assert [len(c) for c in asked] == [3 * 4, 3 * 4, 3 * 4]  # one call per speaker and step, all items at once
    assert asked[0] == [0] * 12 and asked[2] == [2] * 12  # scored on the transcript it joins
    for t in out:
        for turn in t.turns:
            scores = [a["score"] for a in turn.alternatives]
            assert len(scores) == 4 and turn.text in [a["text"] for a in turn.alternatives]
            assert turn.score == max((s for s in scores if s is not None), default=None)
    assert Transcript.from_record(json.loads(json.dumps(out[0].to_record()))).turns[0].score == out[0].turns[0].score
    with pytest.raises(RefereeError, match="needs a 'prefer'"):
        Speaker("x", "y", Drawer(), best_of=2)
