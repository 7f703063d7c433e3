"""Evidence debaters (issue 36): arguers of known strength that quote one passage sentence per turn, by a
fixed rule: at random, or the sentence that speaks most for their answer. Their quotes are verbatim, so the
judge sees them verified; the scripted judge of test_debate_protocol.py reads them like any debater's."""

from __future__ import annotations

import json
import re

import pytest
from test_debate_protocol import N, Judge, make_config, play, records

from referee.config import validate
from referee.debate.evidence import EvidenceWriter, argument, choose, expert_choices, request_chat, sentences, support
from referee.errors import RefereeError
from referee.protocols.debate import ConsultancyConfig, DebateConfig
from referee.tasks.quotes import check_quotes

PASSAGE = ("Mia missed the bus on Monday. She walked to school in the rain and arrived late. "
           "Her teacher was kind about it! The lesson was on volcanoes.")
REQUEST = {"passage": PASSAGE, "question": "Why was Mia late for school?", "own": "She missed the bus",
           "other": "Her teacher kept her", "quoted": [], "word_limit": 120}


def test_sentences_are_exact_pieces_of_the_passage():
    parts = sentences(PASSAGE)
    assert parts == ["Mia missed the bus on Monday.", "She walked to school in the rain and arrived late.",
                     "Her teacher was kind about it!", "The lesson was on volcanoes."]
    assert all(p in PASSAGE for p in parts) and sentences("  ") == []
    spaced = 'Dad . " Like me , he had no car . Sam yelled " HEY ! ! ! )'  # spaced punctuation, as CosmosQA's
    assert sentences(spaced) == ["Dad .", '" Like me , he had no car .', 'Sam yelled " HEY ! ! ! )']
    assert sentences('" Hi there . Bye !') == ['" Hi there .', "Bye !"]  # a leading piece joins the next


def test_overlap_quotes_the_sentence_for_its_answer_and_a_new_one_in_later_rounds():
    assert choose("overlap", REQUEST, seed=0) == "Mia missed the bus on Monday."
    assert support("Her teacher was kind about it!", REQUEST["own"], REQUEST["other"], REQUEST["question"]) < 0
    other_side = {**REQUEST, "own": REQUEST["other"], "other": REQUEST["own"]}
    assert choose("overlap", other_side, seed=0) == "Her teacher was kind about it!"
    later = {**REQUEST, "quoted": ["Mia missed the bus on Monday."]}
    assert choose("overlap", later, seed=0) != "Mia missed the bus on Monday."


def test_random_draws_differ_by_seed_and_repeat_for_the_same_seed():
    draws = {choose("random", REQUEST, seed=s) for s in range(30)}
    assert draws == set(sentences(PASSAGE))
    assert choose("random", REQUEST, seed=7) == choose("random", REQUEST, seed=7)


def test_an_argument_cut_to_the_word_limit_still_quotes_verbatim():
    long = "Mia walked " + " ".join(f"step{i}" for i in range(60)) + " to school."
    text = argument(long, "She missed the bus", word_limit=20)
    assert len(text.split()) <= 20
    quotes = check_quotes(text, long)
    assert len(quotes) == 1 and quotes[0].verified


def test_an_evidence_writer_is_not_a_chat_model():
    writer = EvidenceWriter("evidence:overlap")
    with pytest.raises(RefereeError, match="not the structured one an evidence arguer writes"):
        writer.generate([[{"role": "user", "content": "Argue that the sky is green."}]])
    with pytest.raises(RefereeError, match="evidence debaters are evidence:random, evidence:overlap"):
        EvidenceWriter("evidence:clever")


class LateExpert:
    """A stand-in reward model that believes "she missed the bus" only on reading that Mia arrived late:
    a judgement no word overlap makes (the bus sentence shares the answer's words). Keeps what it read."""

    def __init__(self):
        self.read = []

    def score_many(self, prompts, answers):
        from referee.verifiers.base import Score

        self.read += [p[-1]["content"] for p in prompts]
        return [Score(2.0 if "arrived late" in p[-1]["content"] and "bus" in a else 0.0)
                for p, a in zip(prompts, answers)]


def test_the_expert_debater_quotes_the_sentence_its_reward_model_finds_most_for_its_answer():
    expert = LateExpert()
    later = {**REQUEST, "quoted": ["She walked to school in the rain and arrived late."]}
    assert expert_choices(expert, [REQUEST, later]) == ["She walked to school in the rain and arrived late.",
                                                        "Mia missed the bus on Monday."]  # fresh; the earliest tie
    assert choose("overlap", REQUEST, seed=0) == "Mia missed the bus on Monday."  # overlap would quote the bus
    # the expert reads each sentence alone in the expert reader's frame, after each answer
    assert "Passage:\nHer teacher was kind about it!\n\nQuestion: Why was Mia late for school?" in expert.read
    assert len(expert.read) == 2 * 4  # each sentence after each answer, once: the later round asks nothing new
    memo = {}
    expert_choices(expert, [REQUEST], memo)
    flipped = {**REQUEST, "own": REQUEST["other"], "other": REQUEST["own"]}
    assert expert_choices(expert, [flipped], memo) == ["Mia missed the bus on Monday."]  # all margins 0 or less
    assert len(expert.read) == 2 * 4 + 2 * 4  # the flipped side was answered from the memo
    writer = EvidenceWriter("evidence:expert", expert=LateExpert(), expert_key="rm-1")
    from referee.dialogue import Transcript

    chat = request_chat(Transcript("mia", context={"passage": PASSAGE, "question": REQUEST["question"],
                                                   "a": REQUEST["own"], "b": REQUEST["other"]}),
                        "debater_a", "a", "b", 0, 120)
    text = writer.generate([chat])[0][0].text
    assert "<quote>She walked to school in the rain and arrived late</quote>" in text
    assert check_quotes(text, PASSAGE)[0].verified
    assert EvidenceWriter("evidence:expert", expert=LateExpert(), expert_key="rm-2").fingerprint != writer.fingerprint
    for bad in (lambda: EvidenceWriter("evidence:expert"), lambda: EvidenceWriter("evidence:random", expert=expert)):
        with pytest.raises(RefereeError, match="evidence:expert needs one"):
            bad()


def test_the_expert_debaters_reward_model_learns_on_a_split_nobody_is_judged_on(tmp_path, tiny_model_path):
    """``debater: evidence:expert``: a reward model is trained on validation items as the expert reader
    (stage evidence-expert-training), and each turn quotes the sentence it scores most for the arguer's
    answer: recomputed here from the saved model, quote by quote. The evaluated split is refused as its split."""
    from referee.supervisors import build_verifier

    expert = {"base": f"hf:{tiny_model_path}", "items": 6, "reward_model": {"epochs": 2, "batch_size": 8}}
    config = make_config(tmp_path, debater="evidence:expert", debater_b="evidence:overlap", shares=[0.4, 0.3, 0.3],
                         limit=5, evidence_expert=expert)
    result, run = play(config, Judge())
    folder = run.folder / "checkpoints" / "evidence-expert-training"
    assert "evidence-expert-training" in run.state["stages"] and folder.is_dir()
    assert run.metrics()["evidence-expert-training"]["pairs"] == 6
    transcripts = records(run, "transcripts")
    assert len(transcripts) == 5 and result.metrics["quotes"]["all"]["verified_share"] == 1.0
    rm = build_verifier(f"rm:{folder}")
    for record in transcripts:
        turn = next(t for t in record["turns"] if t["role"] == "debater_a")
        ctx = record["context"]
        request = {"passage": ctx["passage"], "question": ctx["question"], "own": ctx["answer_a"],
                   "other": ctx["answer_b"], "quoted": []}
        assert argument(expert_choices(rm, [request])[0], ctx["answer_a"], config.word_limit) == turn["text"]
    assert "evidence:expert" in (run.folder / "manifest.json").read_text()
    with pytest.raises(RefereeError, match="should not be the evaluated split"):
        make_config(tmp_path, debater="evidence:expert", split="validation")
    # a tournament player names it the same way, and its games quote what the debate's did (same expert)
    from referee.protocols.debate_tournament import TournamentConfig, run_tournament
    from referee.runs import Run

    tournament = validate(TournamentConfig, {
        "items": config.items, "shares": [0.4, 0.3, 0.3], "limit": 5, "judge": "scripted-judge", "bootstrap": 50,
        "out": str(tmp_path / "tournament"), "baselines": [], "consultancy": False, "evidence_expert": expert,
        "players": [{"name": "random", "model": "evidence:random"}, {"name": "expert", "model": "evidence:expert"}]},
        "test")
    with Run(tournament.out, tournament) as run:
        run.add_model(CaseFreeJudge())
        run_tournament(tournament, run)
        games = run.read_records("transcripts-expert-vs-random")
    said = {r["id"]: next(t["text"] for t in r["turns"] if t["role"] == "debater_a") for r in transcripts}
    assert {r["id"]: next(t["text"] for t in r["turns"] if t["role"] == "debater_a") for r in games} == said


def test_every_path_to_the_expert_debater_refuses_a_split_it_would_be_fit_on(tmp_path):
    """Checked when the config loads, not when the run reaches the player: a tournament player, the quoter's
    teacher, and the judges' training split; a reward-model judge is not a model to train judges from."""
    from test_debate_protocol import write_items

    from referee.protocols.debate_tournament import TournamentConfig

    base = {"items": str(write_items(tmp_path / "items.jsonl")), "judge": "scripted-judge", "split": "validation",
            "players": [{"name": "a", "model": "evidence:random"}, {"name": "b", "model": "evidence:expert"}]}
    taught = {**base, "players": [{"name": "a", "model": "evidence:random"}, {"name": "q", "model": "quoter"}],
              "quoter": {"teacher": "evidence:expert"}}
    for bad, message in [(base, "should not be the evaluated split"), (taught, "should not be the evaluated split"),
                         ({**base, "split": "test", "evidence_expert": {"split": "train"}, "train_judge": {}},
                          "holds the items the judges or the quoter learn from"),
                         ({**base, "split": "test", "judge": "rm:runs/x", "train_judge": {}}, "set train_judge.base")]:
        with pytest.raises(RefereeError, match=message):
            validate(TournamentConfig, bad, "test config")
    fine = validate(TournamentConfig, {**base, "split": "test", "judge": "rm:runs/x",
                                       "train_judge": {"base": "embedded"}}, "test config")
    assert fine.train_judge.base == "embedded"


def test_the_rule_debaters_fingerprints_name_only_their_rule_and_its_version():
    import hashlib

    from referee.debate.evidence import VERSION

    for spec in ("evidence:random", "evidence:overlap"):  # no expert key in theirs
        assert EvidenceWriter(spec).fingerprint == hashlib.sha256(f"{spec}/v{VERSION}".encode()).hexdigest()[:24]


def test_evidence_debaters_argue_a_whole_debate_with_only_verified_quotes(tmp_path):
    """On the rooms data the overlap debater of the right answer quotes the sentence with its colour, so the
    scripted judge, who reads verified quotes, is right; every quote of either debater is verified."""
    config = make_config(tmp_path, debater="evidence:overlap", debater_b="evidence:random", rounds=2)
    result, run = play(config, Judge())
    transcripts = records(run, "transcripts")
    quotes = result.metrics["quotes"]["all"]
    assert quotes["quotes"] == 2 * 2 * len(transcripts) and quotes["verified_share"] == 1.0
    overlap_turns = [t for r in transcripts for t in r["turns"] if t["speaker"] == "debater_a"]
    assert all("The passage says <quote>" in t["text"] for t in overlap_turns)
    rounds = {r["id"]: [t["text"] for t in r["turns"] if t["speaker"] == "debater_a"] for r in transcripts}
    assert all(a != b for a, b in rounds.values())  # round 2 quotes a sentence round 1 did not
    manifest = run.folder / "manifest.json"
    assert "evidence:overlap" in manifest.read_text() and "evidence:random" in manifest.read_text()
    again, _ = play(config, Judge())  # read back: the writers' answers come from the run's cache
    assert again.metrics["readers"] == result.metrics["readers"]


def test_an_evidence_consultant_and_the_settings_it_refuses(tmp_path):
    config = make_config(tmp_path, cls=ConsultancyConfig, consultant="evidence:overlap")
    result, _ = play(config, Judge())
    assert result.metrics["quotes"]["all"]["verified_share"] == 1.0
    base = dict(items=str(tmp_path / "items.jsonl"), judge="scripted-judge")
    for bad, message in [({"debater": "evidence:clever"}, "evidence debaters are"),
                         ({"debater": "evidence:overlap", "refine": {}}, "quotes by a fixed rule"),
                         ({"debater": "evidence:random", "best_of": 2, "train_arguers": {}}, "quotes by a fixed rule")]:
        with pytest.raises(RefereeError, match=message):
            validate(DebateConfig, {**base, **bad}, "test config")


class CaseFreeJudge(Judge):
    """The scripted judge, reading a verified quote whatever its case (a quoted sentence keeps its capital)."""

    def pick(self, text: str) -> str:
        return super().pick(re.sub(r"<v_quote>(.*?)</v_quote>", lambda m: f"<v_quote>{m.group(1).lower()}</v_quote>",
                                   text))


def test_in_a_tournament_the_overlap_debater_out_persuades_the_random_one(tmp_path):
    """Debater skill as a knob: the sentence that speaks for one's answer beats a random sentence, for the
    scripted judge who believes the colour in the first verified quote."""
    from test_debate_protocol import write_items

    from referee.protocols.debate_tournament import TournamentConfig, run_tournament
    from referee.runs import Run

    config = validate(TournamentConfig, {
        "items": str(write_items(tmp_path / "items.jsonl")), "shares": [0, 0, 1], "judge": "scripted-judge",
        "bootstrap": 200, "out": str(tmp_path / "run"), "baselines": [],
        "players": [{"name": "random", "model": "evidence:random"}, {"name": "overlap", "model": "evidence:overlap"}]},
        "test")
    with Run(config.out, config) as run:
        run.add_model(CaseFreeJudge())
        m = run_tournament(config, run).metrics
    assert m["elo"]["overlap"]["value"] > m["elo"]["random"]["value"]
    assert m["persuasiveness"]["overlap"]["value"] > 0.5 > m["persuasiveness"]["random"]["value"]
    assert m["debate_accuracy"]["overlap"]["accuracy"]["value"] == 1.0  # self-play: the right side quotes its colour
    for player in ("random", "overlap"):  # every evidence turn carries a verified quote
        assert m["quotes"][player]["debate"]["turns_with_verified_share"] == 1.0
        assert m["quotes"][player]["consultancy"]["turns_with_verified_quote"] == N


QUICK_SFT = {"learning_rate": 1e-3, "max_steps": 2, "batch_size": 4, "max_length": 512}


def test_quoter_rows_are_the_language_model_arguers_prompts_with_the_teachers_turns(tmp_path):
    """The quoter learns what an evidence debater writes, shown what a language-model debater is shown: the
    system prompt asking for quotes, the passage, and in round 2 the turns it may see (sequential: the
    other debater's turn of the same round too)."""
    from referee.protocols.debate_training import quoter_rows

    config = make_config(tmp_path, debater="evidence:overlap", rounds=2, style="sequential")
    _, run = play(config, Judge())
    transcripts = records(run, "transcripts")
    rows = quoter_rows("debate", config, transcripts)
    assert len(rows) == 2 * 2 * len(transcripts)  # two debaters, two rounds, every turn
    first, later = rows[0]["messages"], rows[3]["messages"]
    assert first[0]["role"] == "system" and first[0]["content"].startswith("You are a debater")
    assert "Passage:\nThe ball in room" in first[-2]["content"]
    assert first[-1]["role"] == "assistant" and first[-1]["content"].startswith("The passage says <quote>")
    said = [t["text"] for t in transcripts[0]["turns"]]
    assert first[-1]["content"] == said[0] and later[-1]["content"] == said[3]
    assert said[0] in later[-2]["content"] and said[2] in later[-2]["content"]  # debater_b, round 2, sees all three


def test_a_quoter_is_trained_once_on_train_items_and_argues_as_a_debater_and_a_player(tmp_path, tiny_model_path):
    """``debater: quoter``: the base model fine-tuned on the overlap debater's turns over train items only
    (debate and consultancy), then arguing the test items; a tournament player names it the same way."""
    from referee.protocols.debate_tournament import TournamentConfig, run_tournament
    from referee.runs import Run

    quoter = {"base": f"hf:{tiny_model_path}", "sft": QUICK_SFT}
    config = make_config(tmp_path, debater="quoter", quoter=quoter, shares=[0.5, 0, 0.5], train_items=6, limit=6,
                         sampling={"temperature": 0.0, "max_new_tokens": 12})
    result, run = play(config, Judge())
    trained = run.folder / "checkpoints" / "quoter"
    assert (trained / "referee-checkpoint.json").is_file()
    report = json.loads((run.folder / "metrics.json").read_text())["quoter_training"]
    assert report["demonstrations"] == {"debate": 2 * 6, "consultancy": 6} and report["examples"] == 18
    assert report["longer_than_max_length"] == 0 and report["teacher"] == "evidence:overlap"
    taught = {r["id"] for p in ("debate", "consultancy") for r in records(run, f"transcripts-quoter-{p}")}
    argued = {r["id"] for r in records(run, "transcripts")}
    assert len(taught) == 6 and not taught & argued  # trained on train items, argues test items
    assert str(trained) in (run.folder / "manifest.json").read_text()  # the debaters are the trained model
    assert result.metrics["arguers"] == ["quoter", "quoter"]
    tournament = validate(TournamentConfig, {
        "items": config.items, "shares": [0.5, 0, 0.5], "limit": 6, "judge": "scripted-judge", "bootstrap": 50,
        "out": str(tmp_path / "tournament"), "baselines": [], "consultancy": False, "train_items": 6,
        "quoter": quoter, "sampling": {"temperature": 0.0, "max_new_tokens": 12},
        "players": [{"name": "random", "model": "evidence:random"}, {"name": "sft", "model": "quoter"}]}, "test")
    with Run(tournament.out, tournament) as run:
        run.add_model(CaseFreeJudge())
        m = run_tournament(tournament, run).metrics
    assert set(m["elo"]) == {"random", "sft"} and (tmp_path / "tournament/checkpoints/quoter").is_dir()
    with pytest.raises(RefereeError, match="the teacher is an evidence debater"):
        make_config(tmp_path, debater="quoter", quoter={"teacher": "embedded"})


def test_a_tournament_trains_a_judge_per_player_on_its_own_train_games_and_reads_its_test_games(
        tmp_path, tiny_model_path):
    """train_judge in a tournament: per player (and protocol) a judge fine-tuned on that player's train-split
    transcripts reads its test transcripts; the blind judge is trained once; each player gets
    trained accuracy and trained-minus-blind, paired on the same test items, and the plot draws them."""
    from test_debate_protocol import write_items

    from referee.protocols.debate_tournament import TournamentConfig, run_tournament
    from referee.reports import draw_for
    from referee.runs import Run

    config = validate(TournamentConfig, {
        "items": str(write_items(tmp_path / "items.jsonl")), "shares": [0.5, 0, 0.5], "limit": 4, "train_items": 4,
        "judge": f"hf:{tiny_model_path}", "judge_config": {"template": "debate", "verdict": "probability"},
        "bootstrap": 50, "out": str(tmp_path / "run"), "baselines": ["blind"], "consultancy": False,
        "train_judge": {"train": {"template": "debate", "sft": {
            "max_steps": 1, "batch_size": 4, "max_length": 640, "lora": None}}},
        "players": [{"name": "random", "model": "evidence:random"}, {"name": "overlap", "model": "evidence:overlap"}]},
        "test")
    with Run(config.out, config) as run:
        m = run_tournament(config, run).metrics
        stages = set(run.state["stages"])
        metrics = run.metrics()
        drawn = draw_for("debate_tournament", run)
        taught = {r["id"] for r in run.read_records("transcripts-train-overlap-vs-overlap")}
        tested = {r["id"] for r in run.read_records("judge-trained-overlap-vs-overlap")}
    trained = {s for s in stages if s.startswith("judge-training-")}
    assert trained == {"judge-training-debate-random", "judge-training-debate-overlap", "judge-training-blind"}
    assert len(taught) == len(tested) == 4 and not taught & tested
    for x in ("random", "overlap"):
        for protocol in ("debate",):  # consultancy goes the same way (off here: each judge trained costs time)
            diff = m["trained_minus_blind"][x][protocol]
            assert diff["n"] == 4 and diff["low"] <= diff["value"] <= diff["high"]
            assert m[f"trained_{protocol}_accuracy"][x]["n"] == 4
            assert metrics[f"judge_training_{protocol}-{x}"]["examples"]["examples"] == 8  # 4 items, both orders
    assert set(m["trained_baselines"]) == {"blind"}  # trained once for both players
    assert m["trained_baselines"]["blind"]["truncated"] == 0 and "truncated" in m["debate_accuracy"]["overlap"]
    assert drawn and drawn[0].stat().st_size > 10_000
