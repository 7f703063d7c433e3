"""The debate and consultancy protocols: scripted arguers and a scripted judge so that expert > debate > blind
is checkable, who sees what in simultaneous and sequential rounds, the consultant's halves apart, silent
arguers recorded, stages read back or recomputed, bad settings in one line, and one run of a tiny real model
through ``referee run``.

The story of every item: "The ball in room I was COLOUR." An arguer quotes that sentence with its own
answer's colour, which the passage holds only for the right answer; the arguer defending the right answer
on every fifth item writes nothing. A consultant defending the wrong answer quotes a real but beside-the-
point sentence on every third item. The judge reads only what it is shown: the passage (expert), verified
quotes (debate), whether the consultant's quotes were verified (consultancy), or nothing (blind: always A).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import DATA

from referee import progress
from referee.config import validate
from referee.debate.debaters import consultant_side, schedule_for, sides_for
from referee.debate.judging import INTRO, SILENT
from referee.errors import RefereeError
from referee.models.base import ChoiceResult, Completion, Model
from referee.protocols.debate import ConsultancyConfig, DebateConfig, load_items, run_consultancy, run_debate
from referee.reports import draw_for
from referee.runs import Run
from referee.tasks.passages import load_passage_items

COSMOSQA = DATA / "cosmosqa" / "valid_half.jsonl"
needs_cosmosqa = pytest.mark.data("cosmosqa/valid_half.jsonl")
COLOURS = ("red", "blue", "green", "yellow", "purple")
ROOM = re.compile(r"The ball in room (\d+) was (\w+)\.")
ANSWER = {side: re.compile(rf"### Answer {side}\n(.*?)\n### End of answer {side}", re.S) for side in "AB"}
N = 40


# ---- data ------------------------------------------------------------------------------------------------
def write_items(path: Path, n: int = N) -> Path:
    rows = []
    for i in range(n):
        right, wrong = COLOURS[i % 5], COLOURS[(i + 2) % 5]
        passage = f"The ball in room {i} was {right}. It was a sunny day in town {i}."
        rows.append({"id": f"room-{i}", "passage": passage, "question": f"What colour was the ball in room {i}?",
                     "answers": [right, wrong], "correct": 0})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def room_of(item_id: str) -> int:
    return int(item_id.split("-")[1])


# ---- scripted models -------------------------------------------------------------------------------------
class Arguer(Model):
    """Plays debaters and consultants from what the prompt shows: the passage, the assigned answer, the round."""

    def __init__(self, name: str = "scripted-arguer", silent_every: int | None = 5):
        super().__init__()
        self.spec, self.fingerprint, self.silent_every = name, f"{name}-v1", silent_every
        self.calls: Counter = Counter()
        self.prompt_of: dict[str, str] = {}  # reply -> the user message that produced it

    def generate(self, chats, sampling=None, n=1, desc="generate"):
        self.calls["generate"] += 1
        return super().generate(chats, sampling, n, desc)

    def _generate(self, requests):
        out = []
        for r in requests:
            text = self.argue(r.chat[0]["content"], r.chat[-1]["content"])
            self.prompt_of[text] = r.chat[-1]["content"]
            out.append(Completion(text, 10, len(text.split()), "stop"))
        return out

    def argue(self, system: str, prompt: str) -> str:
        room, truth = ROOM.search(prompt).groups()
        own = re.search(r"The answer you defend: (\w+)", prompt).group(1)
        rnd = re.search(r"[Rr]ound (\d+) of", prompt).group(1)
        room = int(room)
        if own == truth and self.silent_every and room % self.silent_every == 0:
            return ""
        tag = f"[{room}:{own}:r{rnd}]"
        if "consultant" in system and own != truth and room % 3 == 0:
            return f"{tag} I say {own}: <quote>it was a sunny day in town {room}</quote>."
        return f"{tag} My answer is {own}, for the text says <quote>the ball in room {room} was {own}</quote>."


class Judge(Model):
    """Picks a shown answer from what it reads (module doc); never sees the truth any other way."""

    spec, fingerprint = "scripted-judge", "scripted-judge-v1"

    def __init__(self):
        super().__init__()
        self.calls: Counter = Counter()
        self.prompts: list[str] = []

    def choice(self, chats, options, prefix="", desc="choice"):
        self.calls["choice"] += 1
        return super().choice(chats, options, prefix, desc)

    def pick(self, text: str) -> str:
        shown = {side: ANSWER[side].search(text).group(1) for side in "AB"}
        position = {shown["A"]: "first", shown["B"]: "second"}
        if "Passage:\n" in text:  # expert
            return position[ROOM.search(text).group(2)]
        if INTRO["debate"] in text:
            found = re.search(r"<v_quote>the ball in room \d+ was (\w+)</v_quote>", text)
            return position[found.group(1)] if found else "first"
        if INTRO["consultancy"] in text:
            defended = re.search(r"consultant defends the answer: (\w+)", text).group(1)
            other = shown["B"] if defended == shown["A"] else shown["A"]
            said = text.split("### Question, and what you have of the passage")[1].split("### End of that section")[0]
            return position[defended if "<v_quote>" in said else other]
        return "first"  # blind

    def _choice(self, chats, options, prefix):
        out = []
        for chat in chats:
            self.prompts.append(chat[-1]["content"])
            said = self.pick(chat[-1]["content"])
            out.append(ChoiceResult({k: float(k == said) for k in options}, 1.0))
        return out


def make_config(tmp_path, cls=DebateConfig, **kw):
    base = dict(items=str(write_items(tmp_path / "items.jsonl")), shares=[0, 0, 1], judge="scripted-judge",
                bootstrap=200, out=str(tmp_path / "run"))
    base.update({"debater": "scripted-arguer"} if cls is DebateConfig else {"consultant": "scripted-arguer"})
    base.update(kw)
    return validate(cls, base, "test config")


def play(config, *models):
    models = models or (Arguer(), Judge())
    runner = run_debate if isinstance(config, DebateConfig) else run_consultancy
    with Run(config.out, config, seed=config.seed) as run:
        for m in models:
            run.add_model(m)
        return runner(config, run), run


def records(run: Run, stage: str) -> list[dict]:
    return run.read_records(stage)


# ---- debate ----------------------------------------------------------------------------------------------
def test_expert_beats_debate_beats_blind_and_every_number_is_reported(tmp_path):
    result, run = play(make_config(tmp_path))
    m = result.metrics
    acc = {r: s["accuracy"]["value"] for r, s in m["readers"].items()}
    assert list(acc) == ["blind", "expert", "debate"]
    items = load_passage_items(tmp_path / "items.jsonl")
    first = sum(it.correct == 0 for it in items) / N
    silenced_second = sum(room_of(it.id) % 5 == 0 and it.correct == 1 for it in items)
    assert 0 < first < 1 and silenced_second > 0
    assert acc["blind"] == pytest.approx(first)  # always A: right exactly when the right answer is first
    assert acc["expert"] == 1.0
    assert acc["debate"] == pytest.approx(1 - silenced_second / N)
    assert acc["expert"] > acc["debate"] > acc["blind"]
    blind = m["readers"]["blind"]["by_order"]
    assert blind["correct_first"]["value"] == 1.0 and blind["correct_second"]["value"] == 0.0
    for s in m["readers"].values():
        assert s["accuracy"]["low"] <= s["accuracy"]["value"] <= s["accuracy"]["high"] and s["n"] == N
    assert m["ties"] == m["invalid"] == {"blind": 0, "expert": 0, "debate": 0}
    assert m["dropped_by_loader"] == {"correct_is_catch_all": 0, "only_catch_all_distractors": 0}
    # the debater of the right answer wins whenever the judge is right; the other when it is wrong
    wins = m["win_rates"]
    assert wins["correct_side"]["value"] == acc["debate"]
    assert wins["incorrect_side"]["value"] == pytest.approx(1 - acc["debate"]) and wins["no_decision"] == 0
    verdicts = records(run, "judge-debate")
    a_wins = sum(r["chosen"] == 0 for r in verdicts) / N
    assert wins["by_role"]["debater_a"]["value"] == pytest.approx(a_wins)
    assert all(r["sides"] == {"debater_a": 0, "debater_b": 1} for r in verdicts)
    # headline: one row per reader with the same keys
    assert [row["reader"] for row in result.headline] == ["blind", "expert", "debate"]
    assert len({tuple(row) for row in result.headline}) == 1
    assert set(result.headline[0]) == {"reader", "accuracy", "low", "high", "n", "correct shown first",
                                       "correct shown second", "P(right)", "ties", "invalid"}
    assert json.loads((run.folder / "metrics.json").read_text())["debate"]["readers"]["debate"]["n"] == N


def test_quotes_are_checked_and_silent_debaters_recorded_not_dropped(tmp_path):
    judge = Judge()
    _, run = play(make_config(tmp_path), Arguer(), judge)
    transcripts = records(run, "transcripts")
    assert len(transcripts) == N and all(len(t["turns"]) == 2 for t in transcripts)
    silent = [t for t in transcripts if room_of(t["id"]) % 5 == 0]
    for t in silent:
        honest = "debater_a" if t["meta"]["correct"] == 0 else "debater_b"
        assert t["speakers"][honest]["wrote_nothing"] and t["speakers"][honest]["quotes"] == 0
        assert [q["silent"] for q in t["quotes"] if q["role"] == honest] == [True]
    for t in transcripts:
        liar = "debater_b" if t["meta"]["correct"] == 0 else "debater_a"
        assert t["speakers"][liar]["only_unverified"] and not t["speakers"][liar]["defends_correct"]
        assert t["meta"]["sides"] == {"debater_a": 0, "debater_b": 1}
        assert t["context"]["answer_a"] != t["context"]["answer_b"]
    quotes = json.loads((run.folder / "metrics.json").read_text())["debate"]["quotes"]
    assert quotes["by_side"]["correct"]["verified_share"] == 1.0
    assert quotes["by_side"]["correct"]["wrote_nothing"] == len(silent) == quotes["all"]["wrote_nothing"]
    assert quotes["by_side"]["incorrect"]["verified_share"] == 0.0
    assert quotes["by_side"]["incorrect"]["only_unverified"] == N
    assert quotes["by_side"]["correct"]["speakers"] == quotes["by_side"]["incorrect"]["speakers"] == N
    by_role = quotes["by_role"]
    assert set(by_role) == {"debater_a", "debater_b"} and by_role["debater_a"]["turns"] == N
    assert by_role["debater_a"]["verified"] + by_role["debater_b"]["verified"] == N - len(silent)
    # a silent debater reaches the judge as silent; the debaters' quotes reach it marked
    debate_prompts = [p for p in judge.prompts if INTRO["debate"] in p]
    assert len(debate_prompts) == N and sum(SILENT in p for p in debate_prompts) == len(silent)
    assert all("<u_quote>the ball in room" in p and "<quote>" not in p for p in debate_prompts)
    assert not any(f"in town {room_of(t['id'])}" in p for t in transcripts for p in debate_prompts)


def test_sequential_debaters_see_the_same_rounds_earlier_turns_and_simultaneous_ones_do_not(tmp_path):
    for style in ("sequential", "simultaneous"):
        arguer = Arguer(silent_every=None)
        _, run = play(make_config(tmp_path, style=style, rounds=2, out=str(tmp_path / style)), arguer, Judge())
        for t in records(run, "transcripts"):
            a1, b1, a2, b2 = (turn["text"] for turn in t["turns"])
            assert [(x["role"], x["round"]) for x in t["turns"]] == [("debater_a", 0), ("debater_b", 0),
                                                                      ("debater_a", 1), ("debater_b", 1)]
            prompt = arguer.prompt_of
            assert (a1 in prompt[b1]) == (style == "sequential") and b1 not in prompt[a1]
            assert (a2 in prompt[b2]) == (style == "sequential")
            for later in (a2, b2):  # the next round sees all of the first
                assert a1 in prompt[later] and b1 in prompt[later]
            assert t["context"]["passage"] in prompt[a1] and "correct" not in prompt[a1].lower()
            assert f"The answer you defend: {t['context']['answer_b']}" in prompt[b1]


def test_two_debater_models_and_the_word_limit(tmp_path):
    a, b = Arguer("arguer-a"), Arguer("arguer-b")
    config = make_config(tmp_path, debater="arguer-a", debater_b="arguer-b", word_limit=4)
    result, run = play(config, a, b, Judge())
    assert a.calls["generate"] == b.calls["generate"] == 1
    assert result.metrics["arguers"] == ["arguer-a", "arguer-b"]
    transcripts = records(run, "transcripts")
    for t in transcripts:  # debater_a's turns come from model a, debater_b's from model b
        for turn in t["turns"]:
            mine, theirs = (a, b) if turn["role"] == "debater_a" else (b, a)
            own = t["context"]["answer_a" if turn["role"] == "debater_a" else "answer_b"]
            assert not turn["text"] or any(f"The answer you defend: {own}\n" in p for p in mine.prompt_of.values())
            assert not any(f"room {room_of(t['id'])} was {own}" in reply for reply in theirs.prompt_of)
    spoken = [turn for t in transcripts for turn in t["turns"] if turn["text"]]
    assert spoken and all(len(turn["text"].split()) == 4 and turn["truncated"] for turn in spoken)


# ---- consultancy -----------------------------------------------------------------------------------------
def test_consultancy_halves_are_balanced_by_the_hash_and_reported_apart(tmp_path):
    config = make_config(tmp_path, ConsultancyConfig)
    result, run = play(config, Arguer(silent_every=None), Judge())
    assert [p.name for p in draw_for("consultancy", run)] == ["consultancy.png"]
    items = load_passage_items(tmp_path / "items.jsonl")
    transcripts = {t["id"]: t for t in records(run, "transcripts")}
    verdicts = records(run, "judge-consultancy")
    right = [it for it in items if consultant_side(it, config.seed) == it.correct]
    assert 0.3 * N <= len(right) <= 0.7 * N  # about half each way, by a seeded hash of the id
    for it, rec in zip(items, verdicts):
        side = consultant_side(it, config.seed)
        assert transcripts[it.id]["meta"]["sides"] == {"consultant": side} == rec["sides"]
        assert transcripts[it.id]["context"]["consultant_answer"] == it.answers[side]
        assert rec["consultant_defends_correct"] == (side == it.correct)
        assert [turn["role"] for turn in transcripts[it.id]["turns"]] == ["consultant"]
    halves = result.metrics["consultant_halves"]
    wrong = [it for it in items if consultant_side(it, config.seed) != it.correct]
    fooled = sum(room_of(it.id) % 3 == 0 for it in wrong)
    assert halves["correct_consultant"]["n"] == len(right) and halves["incorrect_consultant"]["n"] == len(wrong)
    assert halves["correct_consultant"]["accuracy"]["value"] == 1.0
    assert halves["incorrect_consultant"]["accuracy"]["value"] == pytest.approx(1 - fooled / len(wrong))
    assert 0 < fooled < len(wrong)
    assert halves["mean_of_halves"] == pytest.approx((2 - fooled / len(wrong)) / 2)
    acc = {row["reader"]: row["accuracy"] for row in result.headline}
    assert list(acc) == ["blind", "expert", "consultancy"] and acc["expert"] > acc["consultancy"] > acc["blind"]
    quotes = result.metrics["quotes"]
    assert set(quotes["by_role"]) == {"consultant"} and quotes["by_side"]["incorrect"]["verified"] == fooled
    # another seed puts the consultant on other sides
    assert [sides_for("consultancy", it, 1) for it in items] != [sides_for("consultancy", it, 0) for it in items]


def test_the_consultants_prompt_names_its_assigned_answer_only_as_assigned(tmp_path):
    arguer = Arguer(silent_every=None)
    _, run = play(make_config(tmp_path, ConsultancyConfig, rounds=2), arguer, Judge())
    for t in records(run, "transcripts"):
        first, second = (turn["text"] for turn in t["turns"])
        assert f"The answer you defend: {t['context']['consultant_answer']}" in arguer.prompt_of[first]
        assert first in arguer.prompt_of[second] and "Round 1, you:" in arguer.prompt_of[second]


# ---- stages ----------------------------------------------------------------------------------------------
def test_a_rerun_reads_every_stage_back_and_a_changed_setting_recomputes_what_depends_on_it(tmp_path, capsys,
                                                                                              monkeypatch):
    monkeypatch.setattr(progress, "_quiet", False)
    config = make_config(tmp_path)
    first, _ = play(config)
    capsys.readouterr()
    arguer, judge = Arguer(), Judge()
    again, _ = play(config, arguer, judge)
    err = capsys.readouterr().err
    for stage in ("transcripts", "judge-blind", "judge-expert", "judge-debate"):
        assert f"{stage}: finished earlier with the same inputs, read back" in err
    assert arguer.calls["generate"] == judge.calls["choice"] == 0 and again.metrics == first.metrics
    # a shorter word limit changes the transcripts, hence the debate verdicts; not the baselines
    arguer, judge = Arguer(), Judge()
    play(config.model_copy(update={"word_limit": 5}), arguer, judge)
    err = capsys.readouterr().err
    for stage in ("transcripts", "judge-debate"):
        assert f"{stage}: its inputs changed since it last ran, recomputing" in err
    for stage in ("judge-blind", "judge-expert"):
        assert f"{stage}: finished earlier with the same inputs, read back" in err
    assert arguer.calls["generate"] == 1 and judge.calls["choice"] == 1


def test_the_limit_is_a_seeded_draw_from_the_split_in_file_order(tmp_path):
    small = load_items(make_config(tmp_path, limit=5))[0]
    large = load_items(make_config(tmp_path, limit=12))[0]
    assert len(small) == 5 and len(large) == 12 and {it.id for it in small} < {it.id for it in large}
    order = [it.id for it in large]
    assert order == sorted(order, key=room_of) and order != [f"room-{i}" for i in range(12)]
    other_seed = load_items(make_config(tmp_path, limit=5, seed=3))[0]
    assert {it.id for it in other_seed} != {it.id for it in small}
    tests = load_items(make_config(tmp_path, shares=[0.5, 0.25, 0.25]))[0]
    trains = load_items(make_config(tmp_path, shares=[0.5, 0.25, 0.25], split="train"))[0]
    assert tests and trains and not {it.id for it in tests} & {it.id for it in trains}


# ---- bad input -------------------------------------------------------------------------------------------
def one_line(call) -> str:
    with pytest.raises(RefereeError) as got:
        call()
    assert "\n" not in str(got.value)
    return str(got.value)


def test_bad_settings_are_one_line_naming_the_setting(tmp_path):
    def bad(cls=DebateConfig, **kw):
        return one_line(lambda: make_config(tmp_path, cls, **kw))

    assert "setting 'style'" in bad(style="parallel")
    assert "setting 'rounds'" in bad(rounds=0)
    assert "setting 'word_limit'" in bad(word_limit=0)
    assert "setting 'limit'" in bad(limit=0)
    assert "setting 'split'" in bad(split="dev")
    assert "setting 'baselines.0'" in bad(baselines=["oracle"])
    assert "each baseline at most once" in bad(baselines=["blind", "blind"])
    assert "mode should be pairwise" in bad(judge_config={"mode": "single"})
    assert "setting 'debater_b': unknown setting" in bad(ConsultancyConfig, debater_b="x")
    assert "setting 'style': unknown setting" in bad(ConsultancyConfig, style="sequential")
    # trained arguers learn in self-play from best-of-N turns: refused before anything runs
    assert "set best_of to 2 or more" in bad(train_arguers={})
    assert "set best_of to 2 or more" in bad(ConsultancyConfig, train_arguers={}, best_of=1)
    assert "leave debater_b out" in bad(train_arguers={}, best_of=2, debater_b="another-arguer")
    assert make_config(tmp_path, train_arguers={}, best_of=2, debater_b="scripted-arguer").debater_b
    # a judge_config without a template keeps the debate template
    assert make_config(tmp_path, judge_config={"verdict": "generative"}).judge_config.template == "debate"
    with pytest.raises(RefereeError, match="style should be one of"):
        schedule_for("debate", 1, "parallel")


def test_bad_items_and_empty_splits_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "passage": "P.", "question": "Q?", "answers": ["x", "y"], "correct": 0}\n'
                   '{"id": "2", "passage": "P.", "question": "Q?", "answers": ["x", "x"], "correct": 0}\n')
    message = one_line(lambda: play(make_config(tmp_path, items=str(bad))))
    assert message.startswith(f"{bad}:2: field 'answers'")
    message = one_line(lambda: play(make_config(tmp_path, shares=[1, 0, 0])))
    assert "no items in split 'test'" in message and "train 40" in message
    assert one_line(lambda: play(make_config(tmp_path, items=str(tmp_path / "missing.jsonl"))))


def test_bad_settings_through_the_command_are_one_line(tmp_path, capsys):
    from referee.cli import main

    path = tmp_path / "debate.yaml"
    path.write_text(yaml.safe_dump({"protocol": "debate", "items": "x.jsonl", "style": "parallel"}))
    with pytest.raises(SystemExit) as got:
        main(["run", str(path)])
    err = capsys.readouterr().err.strip()
    assert got.value.code == 2 and len(err.splitlines()) == 1 and "setting 'style'" in err and str(path) in err


# ---- one real model, end to end ------------------------------------------------------------------------
@needs_cosmosqa
def test_a_tiny_real_model_runs_debate_end_to_end_through_the_command(tmp_path, tiny_model_path, tiny_model_path_b,
                                                                      capsys):
    from referee.cli import main

    folder = tmp_path / "run"
    path = tmp_path / "debate.yaml"
    path.write_text(yaml.safe_dump({
        "protocol": "debate", "items": str(COSMOSQA), "limit": 4, "out": str(folder),
        "debater": f"hf:{tiny_model_path}", "debater_b": f"hf:{tiny_model_path_b}", "judge": f"hf:{tiny_model_path}",
        "style": "sequential", "rounds": 2, "word_limit": 12, "sampling": {"max_new_tokens": 16},
        "bootstrap": 100}))
    main(["run", str(path)])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("debate on 4 test items")
    assert [line.split()[0] for line in lines[2:]] == ["blind", "expert", "debate"]
    metrics = json.loads((folder / "metrics.json").read_text())["debate"]
    assert metrics["items"] == 4 and metrics["dropped_by_loader"]["correct_is_catch_all"] > 0
    transcripts = [json.loads(line) for line in (folder / "records" / "transcripts.jsonl").read_text().splitlines()]
    assert len(transcripts) == 4 and all(len(t["turns"]) == 4 for t in transcripts)
    assert all(len(turn["text"].split()) <= 12 for t in transcripts for turn in t["turns"])
    assert all(len(t["quotes"]) == 4 for t in transcripts)
    for reader in ("blind", "expert", "debate"):
        assert len((folder / "records" / f"judge-{reader}.jsonl").read_text().splitlines()) == 4
    assert "protocol: debate" in (folder / "config.yaml").read_text()
    assert (folder / "plots" / "debate.png").stat().st_size > 10_000
    main(["run", str(folder / "config.yaml")])  # the run's config repeats it, every stage read back
    assert capsys.readouterr().out == out


@needs_cosmosqa
def test_judges_and_arguers_trained_on_the_train_split_read_and_argue_the_test_items(tmp_path, tiny_model_path):
    """The judge fine-tuned on debates over train-split items (and a blind one on the same items) reads the
    test items beside the untrained judge; the debaters trained by DPO on their own best-of-2 turns argue
    the test items again; nothing that trained is evaluated."""
    cfg = validate(DebateConfig, {
        "protocol": "debate", "items": str(COSMOSQA), "limit": 4, "debater": f"hf:{tiny_model_path}",
        "judge": f"hf:{tiny_model_path}", "rounds": 1, "word_limit": 12, "sampling": {"max_new_tokens": 12},
        "bootstrap": 100, "baselines": ["blind"], "train_items": 6, "best_of": 2,
        "train_judge": {"expert": True, "train": {"template": "debate", "sft": {
            "max_steps": 2, "batch_size": 4, "max_length": 640, "lora": None}}},
        "train_arguers": {"dpo": {"max_steps": 1, "batch_size": 2, "max_length": 640, "lora": {"r": 4}}}}, "test")
    with Run(tmp_path / "run", cfg) as run:
        metrics = run_debate(cfg, run).metrics
        train_ids = {r["id"] for r in run.read_records("transcripts-train")}
        test_ids = {r["id"] for r in run.read_records("transcripts")}
        trained = run.read_records("judge-trained-debate")
        arguer_training = run.metrics()["arguer_training"]
    assert len(train_ids) == 6 and len(test_ids) == 4 and not train_ids & test_ids
    assert set(metrics["readers"]) == {"blind", "debate", "debate (trained judge)", "blind (trained judge)",
                                       "expert (trained judge)", "debate (trained arguers)"}
    assert set(metrics["persuasiveness"]) == {"debate", "debate (trained judge)", "debate (trained arguers)"}
    assert arguer_training["pairs"] > 0 and arguer_training["loss_history"]
    assert (tmp_path / "run" / "checkpoints" / "arguer_dpo" / "referee-checkpoint.json").exists()
    assert [r["id"] for r in trained] == sorted(test_ids, key=[r["id"] for r in trained].index)
    assert metrics["trained_minus_blind"]["n"] == metrics["trained_expert_minus_blind"]["n"] == 4
    for reader in ("debate", "blind", "expert"):
        spec = json.loads((tmp_path / "run" / "checkpoints" / f"judge_{reader}" / "judge.json").read_text())
        assert spec["template"] == "debate" and spec["examples"]["examples"] == 12  # 6 items, both orders


def test_the_reward_model_route_trains_a_bradley_terry_judge_per_reader_that_reads_the_test_items(
        tmp_path, tiny_model_path):
    """route reward_model: a head on the (frozen, tiny) judge model, trained on train-split items with the
    right answer over the wrong one. The right answer is always "red" here, so even the blind RM can learn
    it, in whichever order the item shows it; trained on the wrong side it would score 0, not 1."""
    rows = [{"id": f"room-{i}", "passage": f"The ball in room {i} was red. It was a sunny day in town {i}.",
             "question": f"What colour was the ball in room {i}?", "answers": ["red", "blue"][::1 - 2 * (i % 2)],
             "correct": i % 2} for i in range(N)]
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = validate(DebateConfig, {
        "protocol": "debate", "items": str(items), "shares": [0.5, 0, 0.5], "limit": 10, "train_items": 16,
        "debater": "scripted-arguer", "judge": f"hf:{tiny_model_path}", "baselines": ["blind"], "bootstrap": 100,
        "out": str(tmp_path / "run"),
        "train_judge": {"route": "reward_model", "reward_model": {"epochs": 40, "lr": 0.05, "batch_size": 8}}},
        "test")
    result, run = play(cfg, Arguer(silent_every=None))
    readers = result.metrics["readers"]
    assert set(readers) == {"blind", "debate", "blind (trained judge)", "debate (trained judge)"}
    blind = readers["blind (trained judge)"]
    assert blind["accuracy"]["value"] == 1.0 and blind["p_correct"]["value"] > 0.5
    assert {r["correct_answer"] for r in records(run, "judge-trained-blind")} == {0, 1}  # both orders of answers
    assert all(r["verdict_mode"] == "score" for r in records(run, "judge-trained-debate"))
    for reader in ("blind", "debate"):
        assert (tmp_path / "run" / "checkpoints" / f"rm-training-{reader}").is_dir()
        assert run.metrics()[f"rm-training-{reader}"]["pairs"] == len(records(run, "transcripts-train")) > 8
    again, _ = play(cfg, Arguer(silent_every=None))  # every stage read back, the same numbers
    assert again.metrics["readers"] == readers
    # the trained RM is a judge spec of its own (rm:FOLDER): another run's blind reader is that judge
    rm = tmp_path / "run" / "checkpoints" / "rm-training-blind"
    reuse = cfg.model_copy(update={"judge": f"rm:{rm}", "train_judge": None, "out": str(tmp_path / "reuse")})
    reused, _ = play(reuse, Arguer(silent_every=None))
    assert reused.metrics["readers"]["blind"]["accuracy"] == blind["accuracy"]
    with pytest.raises(RefereeError, match="no position prior"):
        play(reuse.model_copy(update={"judge_config": reuse.judge_config.model_copy(
            update={"calibration": "batch"})}), Arguer(silent_every=None))
    with pytest.raises(RefereeError, match="nowhere: not a saved verifier"):
        play(reuse.model_copy(update={"judge": f"rm:{tmp_path / 'nowhere'}"}), Arguer(silent_every=None))


def test_per_answer_trains_the_reward_model_on_each_answer_with_its_own_case(tmp_path, tiny_model_path,
                                                                            monkeypatch):
    """judge_layout per_answer: the debate RM learns each answer after its own debater's turn (the right one
    quotes the passage, verified; the wrong one an unverified line), the blind RM as before; the trained judge
    reads the test items the same way, and the run reads every stage back."""
    from referee.rewards import bradley_terry

    trained = {}

    def spy(base, pairs, options, **kw):
        trained[len(trained)] = pairs
        return real(base, pairs, options, **kw)

    real = bradley_terry.train_reward_model
    monkeypatch.setattr(bradley_terry, "train_reward_model", spy)
    rows = [{"id": f"room-{i}", "passage": f"The ball in room {i} was {['red', 'blue'][i % 3 == 0]}.",
             "question": f"What colour was the ball in room {i}?", "answers": ["red", "blue"],
             "correct": int(i % 3 == 0)} for i in range(N)]
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    settings = {"protocol": "debate", "items": str(items), "shares": [0.5, 0, 0.5], "limit": 6, "train_items": 8,
                "debater": "scripted-arguer", "judge": f"hf:{tiny_model_path}", "baselines": ["blind"],
                "bootstrap": 50, "out": str(tmp_path / "run"), "judge_layout": "per_answer",
                "train_judge": {"route": "reward_model", "reward_model": {"epochs": 2, "batch_size": 8}}}
    cfg = validate(DebateConfig, settings, "test")
    result, run = play(cfg, Arguer(silent_every=None))
    debate_pairs = next(ps for ps in trained.values() if ps[0].rejected_prompt is not None)
    blind_pairs = next(ps for ps in trained.values() if ps[0].rejected_prompt is None)
    for pair in debate_pairs:
        right, wrong = pair.prompt[-1]["content"], pair.rejected_prompt[-1]["content"]
        assert f"was {pair.chosen}</v_quote>" in right and f"was {pair.rejected}</u_quote>" in wrong
        assert pair.rejected not in right and "The ball in room" not in right.replace("<v_quote>the ball in room", "")
    assert len(debate_pairs) == len(blind_pairs) == 8 and len(trained) == 2
    scored = records(run, "judge-trained-debate")
    assert all(r["verdict_mode"] == "score" and r["scores"][0] != r["scores"][1] for r in scored)
    again, _ = play(cfg, Arguer(silent_every=None))
    assert again.metrics["readers"] == result.metrics["readers"] and len(trained) == 2  # nothing trained again
    for bad, message in [({"train_judge": {"route": "sft"}}, "train_judge route sft trains a pairwise chat judge"),
                         ({"train_judge": None}, "no judge here scores each answer alone")]:
        with pytest.raises(RefereeError, match=message):
            validate(DebateConfig, {**settings, **bad}, "test")


class Uneven(Arguer):
    """Every arguer writes nothing on the samples whose seed is even, so its N samples differ."""

    def __init__(self):
        super().__init__("uneven-arguer", silent_every=None)

    def _generate(self, requests):
        return [Completion("", 10, 0, "stop") if r.seed % 2 == 0 else c
                for r, c in zip(requests, super()._generate(requests))]


def test_best_of_n_debaters_keep_the_argument_the_judge_finds_most_persuasive(tmp_path):
    accuracy = {}
    for n in (1, 4):
        (tmp_path / f"n{n}").mkdir()
        config = make_config(tmp_path / f"n{n}", debater="uneven-arguer", best_of=n, baselines=[])
        result, run = play(config, Uneven(), Judge())
        m = result.metrics
        accuracy[n] = m["readers"]["debate"]["accuracy"]["value"]
        assert set(m["persuasiveness"]["debate"]) == {"debater_a", "debater_b"}
    # the right answer's debater, when its answer is shown second, wins only by quoting; with four
    # samples it nearly always has one that quotes, and the judge's preference keeps it
    assert accuracy[4] > accuracy[1]
    best = m["best_of"]
    assert best["n"] == 4 and best["debater_b"]["kept"] >= best["debater_b"]["all"]
    for t in records(run, "transcripts"):
        for turn in t["turns"]:
            scores = [a["score"] for a in turn["alternatives"]]
            assert len(scores) == 4 and turn["score"] == max(scores)


def test_best_of_n_turns_export_as_trl_preference_and_reward_rows_with_the_prompt_the_arguer_saw(tmp_path):
    from referee.cli import main

    arguer = Uneven()
    config = make_config(tmp_path, debater="uneven-arguer", best_of=4, baselines=[], rounds=2, style="sequential")
    play(config, arguer, Judge())
    main(["debate", "export", str(tmp_path / "run"), "--out", str(tmp_path / "pref.jsonl")])
    main(["debate", "export", str(tmp_path / "run"), "--kind", "reward", "--out", str(tmp_path / "reward.jsonl")])
    prefs = [json.loads(line) for line in (tmp_path / "pref.jsonl").read_text().splitlines()]
    rewards = [json.loads(line) for line in (tmp_path / "reward.jsonl").read_text().splitlines()]
    assert len(rewards) == N * 4 * 4  # items x turns (2 debaters x 2 rounds) x candidates
    assert prefs and all(p["margin"] > 0 and p["chosen"] != p["rejected"] for p in prefs)
    for p in prefs:  # the prompt is what the arguer was shown when it drew the candidates
        said = p["chosen"][0]["content"] or p["rejected"][0]["content"]
        assert p["prompt"][-1]["content"] == arguer.prompt_of[said]
    silent = [r for r in rewards if r["completion"][0]["content"] == "" and r["p_own"] == 0.0]
    assert silent and all(r["reward"] < -10 for r in silent)  # the judge's logit of its own answer, clipped
    assert sum(r["kept"] for r in rewards) == N * 4


def test_a_tournament_rates_the_best_of_four_debater_above_best_of_one_and_plots_accuracy_against_elo(tmp_path):
    from referee.protocols.debate_tournament import TournamentConfig, run_tournament

    config = validate(TournamentConfig, {
        "items": str(write_items(tmp_path / "items.jsonl")), "shares": [0, 0, 1], "judge": "scripted-judge",
        "bootstrap": 200, "out": str(tmp_path / "run"),
        "players": [{"name": "n1", "model": "uneven-arguer", "best_of": 1},
                    {"name": "n4", "model": "uneven-arguer", "best_of": 4}]}, "test")
    with Run(config.out, config) as run:
        run.add_model(Uneven())
        run.add_model(Judge())
        m = run_tournament(config, run).metrics
        drawn = draw_for("debate_tournament", run)
        stages = set(run.state["stages"])
    assert {"transcripts-n1-vs-n4", "judge-n4-vs-n1", "transcripts-consultancy-n4", "judge-blind"} <= stages
    elo = m["elo"]
    assert elo["n4"]["value"] > elo["n1"]["value"] and elo["n1"]["n"] == N
    assert all(e["low"] <= e["value"] <= e["high"] for e in elo.values())
    assert m["matches"]["n4-vs-n1"]["a_score"] > m["matches"]["n1-vs-n4"]["a_score"]
    assert m["debate_accuracy"]["n4"]["accuracy"]["value"] > m["debate_accuracy"]["n1"]["accuracy"]["value"]
    assert set(m["consultancy_accuracy"]) == {"n1", "n4"} and set(m["baselines"]) == {"blind", "expert"}
    assert set(m["self_play_persuasiveness"]["n4"]) == {"debater_a", "debater_b"}
    assert m["quotes"]["n1"]["debate"]["turns"] == 2 * N and "consultancy" in m["quotes"]["n4"]
    # against the field, the judge believes best-of-4 more than best-of-1; in self-play the roles' mean is 1/2
    assert m["persuasiveness"]["n4"]["value"] > 0.5 > m["persuasiveness"]["n1"]["value"]
    assert m["persuasiveness"]["n1"]["n"] == N
    assert [p.name for p in drawn] == ["accuracy_vs_elo.png"] and drawn[0].stat().st_size > 10_000
    with pytest.raises(RefereeError, match="at least two players"):
        validate(TournamentConfig, {"items": "x", "players": [{"name": "a"}]}, "test")


class Critic(Model):
    """Reviews every draft the same way, and remembers what it read."""

    spec, fingerprint = "scripted-critic", "scripted-critic-v1"

    def __init__(self):
        super().__init__()
        self.read: list[str] = []

    def _generate(self, requests):
        self.read += [r.chat[-1]["content"] for r in requests]
        return [Completion("Quote the passage word for word.", 10, 6, "stop") for _ in requests]


class Reviser(Uneven):
    """Drafts like ``Uneven`` (nothing on even seeds); a revision always argues, with its quote."""

    def _generate(self, requests):
        out = []
        for r in requests:
            if "A reviewer read your argument" in r.chat[-1]["content"]:
                assert "Quote the passage word for word." in r.chat[-1]["content"]
                text = self.argue(r.chat[0]["content"], r.chat[1]["content"])
                out.append(Completion(text, 10, len(text.split()), "stop"))
            else:
                out += super()._generate([r])
        return out


def test_critique_then_refine_rewrites_every_draft_with_the_review_in_view(tmp_path):
    accuracy = {}
    for refine in (False, True):
        (tmp_path / str(refine)).mkdir()
        config = make_config(tmp_path / str(refine), debater="uneven-arguer", baselines=[],
                             refine={"critic": "scripted-critic"} if refine else None)
        critic = Critic()
        result, run = play(config, Reviser(), Judge(), critic)
        accuracy[refine] = result.metrics["readers"]["debate"]["accuracy"]["value"]
    assert accuracy[True] == 1.0 > accuracy[False]  # the silent drafts were rewritten with their quote
    turns = [turn for t in records(run, "transcripts") for turn in t["turns"]]
    assert all(turn["draft"]["critique"] == "Quote the passage word for word." for turn in turns)
    assert len(critic.read) == len(turns) and all("Argument:\n" in text for text in critic.read)
    summary = result.metrics["refine"]
    assert summary["turns"] == len(turns) and summary["revised"]["verified"] > summary["draft"]["verified"]
