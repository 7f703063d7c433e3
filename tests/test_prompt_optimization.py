"""Prompt optimisation (ProTeGi): the loop with scripted models, its stages read back or recomputed, the
bandit selectors on synthetic arms, bad inputs in one line, and one end-to-end run on a tiny real model.

The scripted model plays every role, keyed on the prompt text: as the task model it answers right only
when the prompt holds the magic word; as the gradient model it says the prompt should mention the magic
word; as the editor it inserts it (or, in other modes, loses the placeholder, drops the answer format, or
writes no prompt at all); as the paraphraser it rewords without touching either.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from referee import progress
from referee.config import validate
from referee.errors import RefereeError
from referee.models.base import ChoiceResult, Completion, Model
from referee.optimize.answers import parse_label
from referee.optimize.instructions import CLOSE_TAG, PROMPT_END, PROMPT_START, REPLY_OPENING, written_prompt
from referee.optimize.selection import SELECTORS, Arms, select
from referee.optimize.template import LOST_FORMAT, LOST_PLACEHOLDER, PromptTemplate
from referee.protocols.prompt_optimization import PromptOptimizationConfig, run_prompt_optimization
from referee.runs import Run

from conftest import DATA
MAGIC = "carefully"
FORMAT = "Answer Yes or No."
TEMPLATE = "Is this statement a lie?\n{text}\n" + FORMAT


# ---- the scripted model ------------------------------------------------------------------------------
def gold(text: str) -> str:
    return "Yes" if "(kind a)" in text else "No"


def item_number(text: str) -> int:
    return int(re.search(r"claim (\d+)", text).group(1))


class Scripted(Model):
    """Deterministic replies per role, keyed on the prompt text; counts calls of the public interface."""

    def __init__(self, name: str = "scripted", editor: str = "inserts", dies_at: str | None = None):
        super().__init__()
        self.spec, self.fingerprint, self.editor, self.dies_at = name, f"{name}-v1", editor, dies_at
        self.calls: Counter = Counter()

    def generate(self, chats, sampling=None, n=1, desc="generate"):
        self.calls["generate"] += 1
        return super().generate(chats, sampling, n, desc)

    def choice(self, chats, options, prefix="", desc="choice"):
        if self.dies_at and desc.startswith(self.dies_at):
            raise KeyboardInterrupt  # the process killed half-way through the optimisation
        self.calls["choice"] += 1
        return super().choice(chats, options, prefix, desc)

    def answer(self, text: str) -> str:
        """Right with the magic word; without it, right only on every third claim."""
        right = MAGIC in text or item_number(text) % 3 == 0
        return gold(text) if right else ("No" if gold(text) == "Yes" else "Yes")

    def _choice(self, chats, options, prefix):
        out = []
        for chat in chats:
            said = self.answer(chat[-1]["content"])
            out.append(ChoiceResult({k: float(k == said) for k in options}, 1.0))
        return out

    def _generate(self, requests):
        return [Completion(self.reply(r.chat[-1]["content"], r.seed), 10, 10, "stop") for r in requests]

    def reply(self, text: str, seed: int) -> str:
        shown = text.split(PROMPT_START + "\n")[-1].split("\n" + PROMPT_END)[0]
        if "What is wrong with the prompt" in text:
            return f"The prompt should mention the magic word {MAGIC}."
        if "Rewrite the prompt so that it fixes" in text:
            return {"inserts": f"<prompt>Read {MAGIC}. {shown}</prompt>",
                    "drops_placeholder": f"<prompt>Read {MAGIC} and answer. {FORMAT}</prompt>",
                    "drops_format": f"<prompt>Read {MAGIC}: {{text}}</prompt>",
                    "silent": "I would rather not."}[self.editor]
        if "Say the prompt below in other words" in text:
            return f"<prompt>{shown} (take {seed % 97})</prompt>"
        number = item_number(text)  # the task model's generative answer; every fifth claim unreadable
        return "Hmm, hard to say." if number % 5 == 4 else f"{self.answer(text)}, I would say."


# ---- data and runs -----------------------------------------------------------------------------------
def write_items(path: Path, numbers) -> Path:
    path.write_text("".join(json.dumps({"text": f"claim {i} (kind {'a' if i % 2 else 'b'})", "label": i % 2}) + "\n"
                            for i in numbers), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    return write_items(tmp_path / "train.jsonl", range(40)), write_items(tmp_path / "test.jsonl", range(100, 130))


def make_config(tmp_path, files, **kw) -> PromptOptimizationConfig:
    train, test = files
    base = dict(train=str(train), test=str(test), classes=[0, 1], label_words=["No", "Yes"], template=TEMPLATE,
                format_instruction=FORMAT, task_model="scripted", rounds=2, beam=2, minibatch=8,
                errors_per_gradient=2, gradients=2, paraphrases=1, expansion=3, items_per_pull=4, budget=64,
                bootstrap=50, out=str(tmp_path / "run"))
    base.update(kw)
    return validate(PromptOptimizationConfig, base, "test config")


def optimise(config, *models):
    with Run(config.out, config, seed=config.seed) as run:
        for m in models or (Scripted(),):
            run.add_model(m)
        return run_prompt_optimization(config, run), run


def f1s(result) -> list[float]:
    return [row["test F1"] for row in result.headline]


# ---- the loop ----------------------------------------------------------------------------------------
def test_the_loop_finds_the_magic_word_and_held_out_f1_rises(tmp_path, files):
    config = make_config(tmp_path, files)
    result, run = optimise(config)
    scores = f1s(result)
    assert [row["round"] for row in result.headline] == [0, 1, 2]
    assert len({tuple(row) for row in result.headline}) == 1  # the same keys in every row
    assert scores[0] < 0.5 and scores[1] == scores[2] == 1.0
    m = result.metrics["prompt_optimization"]
    final = m["final"]["prompt"]
    assert MAGIC in final and "{text}" in final and FORMAT in final
    low, high = m["rounds"][0]["test_f1"]["low"], m["rounds"][0]["test_f1"]["high"]
    assert low <= 1.0 <= high + 1e-9 and m["initial"]["test_f1"]["high"] < 1.0
    # lineage: the winning prompt names its parent, the gradient and the edit it came from
    lineage = m["rounds"][0]["lineage"]
    gradients = {g["id"]: g for g in run.read_records("round-1-gradients")}
    edits = {e["key"]: e for e in run.read_records("round-1-edits")}
    assert lineage["parent"] == m["initial"]["best"] and lineage["gradient"] in gradients
    assert lineage["edit"] in edits and edits[lineage["edit"]]["gradient"] == lineage["gradient"]
    assert MAGIC in gradients[lineage["gradient"]]["text"] and len(gradients[lineage["gradient"]]["errors"]) <= 2
    selection = run.read_records("round-1-selection")
    assert sum(s["kept"] for s in selection) == min(config.beam, len(selection))
    assert sum(s["queries"] for s in selection) <= config.budget
    assert m["rounds"][0]["queries"]["selection"] == sum(s["queries"] for s in selection)
    assert (run.folder / "ledger.json").exists()
    stages = {e["stage"] for e in json.loads((run.folder / "ledger.json").read_text())["entries"]}
    assert {"initial-test", "round-1-minibatch", "round-1-gradients", "round-1-edits", "round-1-selection",
            "round-2-test"} <= stages


def test_a_rerun_reads_every_stage_back_and_a_changed_setting_recomputes(tmp_path, files, capsys, monkeypatch):
    monkeypatch.setattr(progress, "_quiet", False)
    config = make_config(tmp_path, files)
    first, _ = optimise(config)
    capsys.readouterr()
    again = Scripted()
    second, _ = optimise(config, again)
    assert sum(again.calls.values()) == 0 and second.metrics == first.metrics
    assert "recomputing" not in capsys.readouterr().err
    # one more paraphrase per edit: the stages before paraphrasing are read back, the rest recomputed
    changed = Scripted()
    optimise(config.model_copy(update={"paraphrases": 2}), changed)
    said = capsys.readouterr().err
    for stage in ("initial-test", "round-1-minibatch", "round-1-gradients", "round-1-edits"):
        assert f"{stage}: finished earlier with the same inputs, read back" in said
    assert "round-1-paraphrases: its inputs changed since it last ran, recomputing" in said
    assert changed.calls["generate"] > 0
    # one input text changed: the initial test recomputes too
    optimise(config.model_copy(update={"template": TEMPLATE.replace("lie?", "falsehood?")}), Scripted())
    assert "initial-test: its inputs changed" in capsys.readouterr().err


def test_a_killed_optimisation_resumes_where_it_stopped(tmp_path, files, capsys, monkeypatch):
    monkeypatch.setattr(progress, "_quiet", False)
    whole, _ = optimise(make_config(tmp_path / "whole", files))
    config = make_config(tmp_path, files)
    with pytest.raises(KeyboardInterrupt):
        optimise(config, Scripted(dies_at="round 2: selection"))
    capsys.readouterr()
    resumed, _ = optimise(config)
    said = capsys.readouterr().err
    for stage in ("round-1-selection", "round-1-test", "round-2-minibatch", "round-2-candidates"):
        assert f"{stage}: finished earlier with the same inputs, read back" in said
    assert "round-2-selection: finished earlier" not in said
    assert resumed.headline == whole.headline


@pytest.mark.parametrize("editor, why", [("drops_placeholder", LOST_PLACEHOLDER), ("drops_format", LOST_FORMAT)])
def test_edits_that_lose_the_placeholder_or_the_format_are_rejected_and_counted(tmp_path, files, editor, why):
    result, run = optimise(make_config(tmp_path, files, rounds=1), Scripted(editor=editor))
    edits = run.read_records("round-1-edits")
    assert edits and all(e["status"] == why for e in edits)
    r1 = result.metrics["prompt_optimization"]["rounds"][0]
    assert r1["rejected"][why] == len(edits) == r1["gradients"] * 1
    assert r1["candidates"] == 1 and run.read_records("round-1-paraphrases") == []
    assert f1s(result)[1] == f1s(result)[0]  # nothing better was found: the initial prompt stays


def test_an_editor_that_writes_no_prompt_is_counted_and_the_rounds_go_on(tmp_path, files):
    result, _ = optimise(make_config(tmp_path, files), Scripted(editor="silent"))
    rounds = result.metrics["prompt_optimization"]["rounds"]
    assert [r["no_edit"] for r in rounds] == [r["edits"] for r in rounds] and rounds[0]["no_edit"] > 0
    assert len(result.headline) == 3


def test_separate_role_models_and_generative_answers_with_invalid_ones_counted(tmp_path, files):
    config = make_config(tmp_path, files, rounds=1, answer="generative", gradient_model="critic", editor="writer")
    task, critic, writer = Scripted(), Scripted("critic"), Scripted("writer")
    result, run = optimise(config, task, critic, writer)
    assert task.calls["generate"] > 0 and task.calls["choice"] == 0
    assert critic.calls["generate"] == 1 and writer.calls["generate"] == 2  # gradients; edits and paraphrases
    initial = result.metrics["prompt_optimization"]["initial"]
    assert initial["test_invalid"] == sum(i % 5 == 4 for i in range(100, 130))
    assert all(r["raw"] is not None for r in run.read_records("initial-test"))
    assert f1s(result)[1] > f1s(result)[0]



def test_the_paraphrase_only_ablation_writes_no_gradient_and_cannot_find_the_magic_word(tmp_path, files):
    """Without gradients the scripted paraphraser only rewords: the same number of successors per parent,
    none holding the magic word, so held-out F1 stays where it started (with gradients it rises to 1)."""
    config = make_config(tmp_path, files, expand="paraphrase_only")
    model = Scripted()
    result, run = optimise(config, model)
    assert f1s(result) == [f1s(result)[0]] * 3 and f1s(result)[0] < 0.5
    assert model.calls["generate"] == 2  # one paraphrase pass per round, nothing else written
    for r in (1, 2):
        assert not (run.folder / "records" / f"round-{r}-gradients.jsonl").exists()
        paraphrases = run.read_records(f"round-{r}-paraphrases")
        beam = 1 if r == 1 else config.beam
        assert len(paraphrases) == beam * config.expansion
        assert all(x["kind"] == "paraphrase" and x["gradient"] is None for x in paraphrases)
        candidates = run.read_records(f"round-{r}-candidates")
        assert all(MAGIC not in c["text"] for c in candidates)
    r1 = result.metrics["prompt_optimization"]["rounds"][0]
    assert r1["gradients"] == r1["edits"] == 0 and r1["paraphrases"] == config.expansion
    assert r1["candidates"] == 1 + config.expansion and r1["queries"]["minibatch"] == 0


class Prefilled(Scripted):
    """A backend that continues a begun reply: rewrites come back without tags, stopped at the closing one
    (as the backends cut at a stop string); every third paraphrase runs to the token limit instead."""

    continues_final_message = True
    paraphrased = 0

    def _generate(self, requests):
        out = []
        for r in requests:
            if r.chat[-1]["role"] != "assistant":
                out.append(Completion(self.reply(r.chat[-1]["content"], r.seed), 10, 10, "stop"))
                continue
            assert r.chat[-1]["content"] == REPLY_OPENING and CLOSE_TAG in r.sampling.stop
            tagged = self.reply(r.chat[-2]["content"], r.seed)
            self.paraphrased += "Say the prompt below" in r.chat[-2]["content"]
            if "Say the prompt below" in r.chat[-2]["content"] and self.paraphrased % 3 == 1:
                out.append(Completion("an endless prompt that never clo", 10, 400, "length"))
            else:
                out.append(Completion(written_prompt(tagged) or tagged, 10, 10, "stop"))
        return out


def test_a_backend_that_continues_replies_is_asked_with_the_tag_begun_and_cut_off_prompts_are_no_edits(tmp_path,
                                                                                                      files):
    result, run = optimise(make_config(tmp_path, files, rounds=1, paraphrases=4), Prefilled())
    assert f1s(result) == [f1s(result)[0], 1.0]  # the untagged continuations were read as the prompts
    edits, paraphrases = run.read_records("round-1-edits"), run.read_records("round-1-paraphrases")
    assert edits and all(e["status"] == "accepted" and e["reply"] is None for e in edits)
    cut = [p for p in paraphrases if p["status"] == "no_edit"]
    assert cut and all(p["reply"] == "an endless prompt that never clo" and p["text"] is None for p in cut)
    assert len(cut) < len(paraphrases)


class Leaning(Scripted):
    """A task model that always leans to "No" but still ranks: P(Yes) is 0.3 where it would say Yes, 0.1
    where it would say No."""

    def _choice(self, chats, options, prefix):
        out = []
        for chat in chats:
            p_yes = 0.3 if self.answer(chat[-1]["content"]) == "Yes" else 0.1
            out.append(ChoiceResult({"Yes": p_yes, "No": 1 - p_yes}, 1.0))
        return out


def test_batch_calibration_removes_a_lean_that_argmax_reading_cannot_see_past(tmp_path, files):
    plain, _ = optimise(make_config(tmp_path, files, rounds=1, out=str(tmp_path / "plain")), Leaning())
    m = plain.metrics["prompt_optimization"]
    assert m["initial"]["test_answers"] == {"No": 30, "Yes": 0} and f1s(plain) == [0.0, 0.0]
    fixed, run = optimise(make_config(tmp_path, files, rounds=1, calibration="batch", out=str(tmp_path / "batch")),
                          Leaning())
    assert f1s(fixed)[1] == 1.0 > f1s(fixed)[0] > 0  # the magic word now shows in the answers
    record = run.read_records("initial-test")[0]
    assert record["probs"]["No"] > record["probs"]["Yes"] and set(record["calibrated"]) == {"No", "Yes"}


def test_calibrated_answers_divide_by_the_batch_mean_and_keep_unreadable_ones():
    from referee.optimize.answers import Answer, calibrated

    words = ["No", "Yes"]
    answers = [Answer(0, {"No": 0.9, "Yes": 0.1}), Answer(0, {"No": 0.7, "Yes": 0.3}), Answer(None, {"No": 0, "Yes": 0})]
    got = calibrated(answers, words)
    assert [a.label for a in got] == [0, 1, None]  # means: No 0.8, Yes 0.2
    assert got[1].calibrated == pytest.approx({"No": 0.875, "Yes": 1.5}) and got[2] is answers[2]

# ---- bad inputs: one line each ---------------------------------------------------------------------
def one_line_error(tmp_path, files, **kw) -> str:
    with pytest.raises(RefereeError) as got:
        optimise(make_config(tmp_path, files, **kw))
    assert "\n" not in str(got.value)
    return str(got.value)


def test_bad_data_and_templates_are_one_line_naming_the_file_line_and_field(tmp_path, files):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "claim 1 (kind a)", "label": 1}\n{"text": "claim 2 (kind b)"}\n', encoding="utf-8")
    assert one_line_error(tmp_path, files, train=str(bad)) == f"{bad}:2: missing field 'label'"
    bad.write_text('{"text": "claim 1 (kind a)", "label": 7}\n', encoding="utf-8")
    message = one_line_error(tmp_path, files, test=str(bad))
    assert message.startswith(f"{bad}:1: field 'label' is 7") and "declared classes" in message
    no_placeholder = "Is this a lie? Say so.\n" + FORMAT
    assert "neither a file nor a template with the placeholder {text}" in \
        one_line_error(tmp_path, files, template=no_placeholder)
    no_slot = tmp_path / "prompt.txt"
    no_slot.write_text("Is this a lie?\n", encoding="utf-8")
    message = one_line_error(tmp_path, files, template=str(no_slot))
    assert message.startswith(f"{no_slot}: the template has no placeholder")
    assert one_line_error(tmp_path, files, template="prompts/missing.txt") == (
        "setting 'template': 'prompts/missing.txt' is neither a file nor a template with the placeholder {text}")
    assert "answer format" in one_line_error(tmp_path, files, format_instruction="Reply with one word.")
    # selection data handed in as test data: refused, so no test figure is computed on it
    train, _ = files
    assert one_line_error(tmp_path, files, test=str(train)) == (
        f"{train}: 40 of its 40 items are also in {train} (the same text); prompts are selected on the training "
        "items, so test them on items kept apart")


def test_bad_settings_are_one_line_naming_the_option(tmp_path, files, capsys):
    from referee.cli import main

    train, test = files
    base = ["optimize", "prompt", "--train", str(train), "--test", str(test), "--labels", "0=No,1=Yes",
            "--template", TEMPLATE, "--task-model", "scripted", "--run", str(tmp_path / "cli")]
    for extra, expected in ((["--budget", "10"], "option --budget"), (["--beam", "0"], "option --beam"),
                            (["--selection", "greedy"], "option --selection"),
                            (["--labels", "1="], "--labels '1='")):
        with pytest.raises(SystemExit) as got:
            main(base + extra)
        err = capsys.readouterr().err.strip()
        assert got.value.code == 2 and len(err.splitlines()) == 1 and expected in err, err
    with pytest.raises(RefereeError, match="budget"):
        make_config(tmp_path, files, beam=4, expansion=8, items_per_pull=32, budget=1000)


# ---- the bandit selectors ----------------------------------------------------------------------------
MEANS = [0.2, 0.35, 0.5, 0.65, 0.8, 0.45]  # arm 4 is the best, arm 3 the second


def bernoulli(means, seed):
    rng = np.random.default_rng(seed)
    return lambda arms: [float(rng.random() < means[a]) for a in arms]


@pytest.mark.parametrize("method", sorted(SELECTORS))
def test_each_selector_finds_the_best_arm_with_a_sufficient_budget(method):
    found = [select(method, len(MEANS), 1, 600, bernoulli(MEANS, seed)).kept[0] for seed in range(40)]
    assert found.count(4) >= 36, found
    top_two = [set(select(method, len(MEANS), 2, 900, bernoulli(MEANS, seed)).kept) for seed in range(20)]
    assert sum(t == {3, 4} for t in top_two) >= 16


@pytest.mark.parametrize("method", sorted(SELECTORS))
def test_each_selector_stays_within_the_budget_and_ranks_every_arm(method):
    rng = np.random.default_rng(7)
    for trial in range(60):
        n = int(rng.integers(1, 11))
        keep, budget = int(rng.integers(1, n + 1)), int(rng.integers(n, 8 * n + 1))
        means = rng.random(n)
        got = select(method, n, keep, budget, bernoulli(means, trial))
        assert got.spent <= budget and got.spent == sum(len(r) for r in got.rewards)
        assert all(r for r in got.rewards)  # every candidate was evaluated at least once
        assert sorted(got.ranking) == list(range(n)) and got.kept == got.ranking[:keep]
    again = [select(method, 6, 2, 60, bernoulli(MEANS, 3)).ranking for _ in range(2)]
    assert again[0] == again[1]  # seeded rewards: the same selection


def test_arms_refuse_pulls_beyond_the_budget_and_select_refuses_too_small_a_budget():
    arms = Arms(3, 4, lambda pulled: [1.0] * len(pulled))
    arms.pull([0, 1, 2])
    with pytest.raises(RuntimeError, match="budget"):
        arms.pull([0, 1])
    with pytest.raises(RefereeError, match="cannot pull each of 5 candidates"):
        select("ucb", 5, 1, 4, lambda pulled: [0.0] * len(pulled))


# ---- small pieces ----------------------------------------------------------------------------------
def test_templates_answers_and_written_prompts():
    t = PromptTemplate("Classify: {text}\n" + FORMAT, format_instruction=FORMAT)
    assert t.render("a {text} b") == "Classify: a {text} b\n" + FORMAT
    assert t.flaw("Classify it.\n" + FORMAT) == LOST_PLACEHOLDER and t.flaw("Classify: {text}") == LOST_FORMAT
    assert t.flaw("Sort: {text} " + FORMAT) is None and t.id == t.rewritten(t.text).id
    assert parse_label("Not sure; no, wait: Yes.", ["No", "Yes"]) == 0 and parse_label("Nothing", ["No", "Yes"]) is None
    assert parse_label("YES!", ["No", "Yes"]) == 1
    assert written_prompt("Sure: <prompt> New {text} </prompt>") == "New {text}"
    assert written_prompt("<prompt>cut off before the end") is None and written_prompt("<prompt> </prompt>") is None


# ---- one real model, end to end ----------------------------------------------------------------------
@pytest.mark.data("liar/train.jsonl", "liar/test.jsonl")
def test_a_tiny_real_model_runs_end_to_end_through_the_command(tmp_path, tiny_model_path, capsys):
    from referee.cli import main

    folder = tmp_path / "run"
    args = ["optimize", "prompt", "--train", str(DATA / "liar" / "train.jsonl"),
            "--test", str(DATA / "liar" / "test.jsonl"), "--labels", "0=No", "--labels", "1=Yes",
            "--template", TEMPLATE, "--format-instruction", FORMAT, "--task-model", f"hf:{tiny_model_path}",
            "--rounds", "1", "--beam", "1", "--minibatch", "4", "--errors-per-gradient", "2", "--gradients", "1",
            "--paraphrases", "1", "--expansion", "1", "--items-per-pull", "2", "--budget", "4", "--test-limit", "4",
            "--max-new-tokens", "12", "--run", str(folder)]
    main(args)
    out = capsys.readouterr().out
    assert "test F1" in out and len(out.strip().splitlines()) == 4  # title, header, rounds 0 and 1
    metrics = json.loads((folder / "metrics.json").read_text())["prompt_optimization"]
    assert metrics["test_items"] == 4 and len(metrics["rounds"]) == 1
    assert (folder / "plots" / "prompt_optimization.png").exists()
    assert "protocol: prompt_optimization" in (folder / "config.yaml").read_text()
    for stage in ("initial-test", "round-1-minibatch", "round-1-gradients", "round-1-selection", "round-1-test"):
        assert (folder / "records" / f"{stage}.jsonl").exists()
    main(["run", str(folder / "config.yaml")])  # the run's config repeats it, every stage read back
    assert capsys.readouterr().out == out


def test_calibration_without_probabilities_is_refused_in_one_line(tmp_path, files):
    with pytest.raises(RefereeError, match="calibration reads probabilities") as got:
        make_config(tmp_path, files, answer="generative", calibration="batch")
    assert len(str(got.value).strip().splitlines()) == 1
