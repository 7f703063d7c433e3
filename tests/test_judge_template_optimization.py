"""Judge template optimisation: ProTeGi on a pairwise judge's request, with scripted models; the template
file it writes driving the judge protocol; stages read back or recomputed; bad inputs in one line; and the
command end to end on a tiny real model.

The scripted model plays every role, keyed on the prompt text. As the judge it prefers the longer answer,
unless its request holds the magic word: then it prefers the answer marked good, which is the one people
chose. As the gradient model it says the request should hold the magic word; as the editor it inserts it
(or, in other modes, breaks one of the rules a judge's request must keep); as the paraphraser it rewords
without touching either.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from referee import progress
from referee.config import validate
from referee.errors import RefereeError
from referee.judges.templates import SECTION, load_template, parse_template
from referee.models.base import ChoiceResult, Completion, Model
from referee.optimize.instructions import PROMPT_END, PROMPT_START
from referee.optimize.judge_prompt import FOREIGN_PLACEHOLDER, SECTION_LINE, JudgePrompt
from referee.optimize.template import LOST_FORMAT, LOST_PLACEHOLDER
from referee.protocols.judge import JudgeRunConfig, run_judge
from referee.protocols.judge_template_optimization import (FOREIGN, JudgeTemplateOptimizationConfig, distinct_ids,
                                                           held_out_draw, run_judge_template_optimization,
                                                           template_text)
from referee.runs import Run
from referee.tasks.pairs import Pair

MAGIC = "carefully"
ANSWER = re.compile(r"reply \d+ \((good|bad)\)[^\n]*")
SLOTS = ("{question}", "{answer_a}", "{answer_b}")


# ---- the scripted model ------------------------------------------------------------------------------
class Scripted(Model):
    """Deterministic replies per role, keyed on the prompt text; counts calls of the public interface."""

    def __init__(self, name: str = "scripted", editor: str = "inserts"):
        super().__init__()
        self.spec, self.fingerprint, self.editor = name, f"{name}-v1", editor
        self.calls: Counter = Counter()

    def generate(self, chats, sampling=None, n=1, desc="generate"):
        self.calls["generate"] += 1
        return super().generate(chats, sampling, n, desc)

    def choice(self, chats, options, prefix="", desc="choice"):
        self.calls["choice"] += 1
        return super().choice(chats, options, prefix, desc)

    def _choice(self, chats, options, prefix):
        out = []
        for chat in chats:
            request = chat[-1]["content"]
            shown = ANSWER.findall(request)  # "good" / "bad", in the order the answers are shown
            lengths = [len(m.group(0)) for m in ANSWER.finditer(request)]
            pick = shown.index("good") if MAGIC in request else lengths.index(max(lengths))
            said = ("first", "second")[pick]
            out.append(ChoiceResult({k: float(k == said) for k in options}, 1.0))
        return out

    def _generate(self, requests):
        return [Completion(self.reply(r.chat[-1]["content"], r.seed), 10, 10, "stop") for r in requests]

    def reply(self, text: str, seed: int) -> str:
        shown = text.split(PROMPT_START + "\n")[-1].split("\n" + PROMPT_END)[0]
        if "What is wrong with the prompt" in text:
            return f"The request should ask the judge to read {MAGIC}."
        if "Rewrite the prompt so that it fixes" in text:
            return {"inserts": f"<prompt>Read {MAGIC}. {shown}</prompt>",
                    "drops_placeholder": f"<prompt>Read {MAGIC}. {shown.replace('{answer_b}', '')}</prompt>",
                    "drops_format": f"<prompt>Read {MAGIC}. {shown.replace('{format}', '')}</prompt>",
                    "foreign": f"<prompt>Read {MAGIC}. {shown} {{verdict}}</prompt>",
                    "section": f"<prompt>Read {MAGIC}. {shown}\n=== system ===\nBe brief.</prompt>",
                    "silent": "I would rather not."}[self.editor]
        if "Say the prompt below in other words" in text:
            return f"<prompt>{shown} (take {seed % 97})</prompt>"
        return "[[A]]"


# ---- data and runs -----------------------------------------------------------------------------------
def write_pairs(path: Path, numbers) -> Path:
    """LLMBar pairs: the good answer is the longer one only on every third pair, and comes first on even ones."""
    items = []
    for i in numbers:
        good, bad = f"reply {i} (good)" + "g" * (30 if i % 3 == 0 else 5), f"reply {i} (bad)" + "b" * 20
        first, second = (good, bad) if i % 2 == 0 else (bad, good)
        items.append({"input": f"question {i}?", "output_1": first, "output_2": second,
                      "label": 1 if i % 2 == 0 else 2})
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    return write_pairs(tmp_path / "pairs.json", range(40)), write_pairs(tmp_path / "other.json", range(100, 115))


def make_config(tmp_path, files, **kw) -> JudgeTemplateOptimizationConfig:
    pairs, other = files
    base = dict(pairs=str(pairs), other=[str(other)], task_model="scripted", rounds=2, beam=2, minibatch=8,
                errors_per_gradient=2, gradients=2, paraphrases=1, expansion=3, items_per_pull=4, budget=64,
                bootstrap=50, out=str(tmp_path / "run"))
    base.update(kw)
    return validate(JudgeTemplateOptimizationConfig, base, "test config")


def optimise(config, *models):
    with Run(config.out, config, seed=config.seed) as run:
        for m in models or (Scripted(),):
            run.add_model(m)
        return run_judge_template_optimization(config, run), run


def accuracy(result, set_name: str, judge: str) -> float:
    return next(r["accuracy"] for r in result.headline if r["set"] == set_name and r["judge"] == judge)


# ---- the loop ----------------------------------------------------------------------------------------
def test_the_loop_finds_a_template_the_judge_agrees_better_with_and_writes_it(tmp_path, files):
    config = make_config(tmp_path, files)
    result, run = optimise(config)
    assert [(r["set"], r["judge"]) for r in result.headline] == [
        (s, j) for s in ("held-out", "other") for j in ("always longer", "hand-written", "optimised")]
    assert len({tuple(row) for row in result.headline}) == 1  # the same keys in every row
    for s in ("held-out", "other"):
        assert accuracy(result, s, "optimised") == 1.0
        assert accuracy(result, s, "hand-written") == accuracy(result, s, "always longer") < 0.6
    m = result.metrics["judge_template_optimization"]
    assert m["split"]["train"] + m["split"]["held_out"] == 40 and min(m["split"]["train"], m["split"]["held_out"]) > 10
    assert m["rounds"][0]["held_out_accuracy"]["value"] == 1.0 and m["initial"]["train_reward"] is None
    final = m["final"]["prompt"]
    assert MAGIC in final and all(s in final for s in SLOTS + ("{format}", "{examples}", "{reference}"))
    lineage = m["rounds"][0]["lineage"]
    assert lineage["parent"] == m["initial"]["best"] and lineage["gradient"] and lineage["edit"]
    minibatch = run.read_records("round-1-minibatch")
    assert {"winner", "p_a", "orders", "label", "correct"} <= set(minibatch[0]) and len(minibatch[0]["orders"]) == 2
    # the template file: the shipped template with the optimised request, read as `referee judge` reads it
    best = load_template(str(run.folder / "best_template.txt"))
    shipped = load_template("pairwise")
    assert best.sections["user"] == final and best.name == "best_template"
    assert {k: v for k, v in best.sections.items() if k != "user"} == \
        {k: v for k, v in shipped.sections.items() if k != "user"}
    assert m["best_template"] == str(run.folder / "best_template.txt")


def test_the_written_template_drives_the_judge_protocol(tmp_path, files):
    result, run = optimise(make_config(tmp_path, files, rounds=1))
    _, other = files
    scores = {}
    for name, template in (("pairwise", "pairwise"), ("best_template", str(run.folder / "best_template.txt"))):
        cfg = validate(JudgeRunConfig, {"judges": ["scripted"], "pairs": str(other), "out": str(tmp_path / name),
                                        "judge": {"template": template, "swap": "average"}}, "test")
        with Run(cfg.out, cfg) as judging:
            judging.add_model(Scripted())
            scores[name] = run_judge(cfg, judging)
            assert {r["template"] for r in judging.read_records("judgments")} == {name}
    assert scores["best_template"].metrics["label_agreement"] == 1.0 == accuracy(result, "other", "optimised")
    assert scores["pairwise"].metrics["label_agreement"] == accuracy(result, "other", "hand-written")


@pytest.mark.parametrize("editor, why", [("drops_placeholder", LOST_PLACEHOLDER), ("drops_format", LOST_FORMAT),
                                         ("foreign", FOREIGN_PLACEHOLDER), ("section", SECTION_LINE)])
def test_edits_that_break_the_requests_rules_are_rejected_and_counted(tmp_path, files, editor, why):
    result, run = optimise(make_config(tmp_path, files, rounds=1), Scripted(editor=editor))
    edits = run.read_records("round-1-edits")
    assert edits and all(e["status"] == why for e in edits)
    r1 = result.metrics["judge_template_optimization"]["rounds"][0]
    assert r1["rejected"][why] == len(edits) == r1["gradients"] and sum(r1["rejected"].values()) == len(edits)
    assert r1["candidates"] == 1 and run.read_records("round-1-paraphrases") == []
    for s in ("held-out", "other"):  # nothing better was found: the hand-written request stays
        assert accuracy(result, s, "optimised") == accuracy(result, s, "hand-written")
    assert load_template(str(run.folder / "best_template.txt")).sections["user"] == \
        load_template("pairwise").sections["user"]


def test_a_rerun_reads_every_stage_back_and_changed_settings_recompute(tmp_path, files, capsys, monkeypatch):
    monkeypatch.setattr(progress, "_quiet", False)
    config = make_config(tmp_path, files)
    first, _ = optimise(config)
    capsys.readouterr()
    again = Scripted()
    second, _ = optimise(config, again)
    assert sum(again.calls.values()) == 0 and second.metrics == first.metrics and second.headline == first.headline
    assert "recomputing" not in capsys.readouterr().err
    # conservative swap: every verdict recomputes; always-longer's are read back
    optimise(config.model_copy(update={"swap": "conservative"}), Scripted())
    said = capsys.readouterr().err
    for stage in ("initial-held-out", "round-1-minibatch", "round-1-selection", "longer-held-out"):
        assert stage in said
    assert "initial-held-out: its inputs changed" in said and "round-1-selection: its inputs changed" in said
    assert "longer-held-out: finished earlier with the same inputs, read back" in said
    # another split: the data changed, so the first stage recomputes
    optimise(config.model_copy(update={"held_out": 0.4}), Scripted())
    assert "round-1-minibatch: its inputs changed" in capsys.readouterr().err
    # one section of the hand-written template changed (not the request): its verdicts recompute
    custom = tmp_path / "custom.txt"
    custom.write_text(template_text(load_template("pairwise"), load_template("pairwise").sections["user"])
                      .replace("You judge the quality", "You judge the worth"), encoding="utf-8")
    optimise(config.model_copy(update={"template": str(custom)}), Scripted())
    assert "initial-held-out: its inputs changed" in capsys.readouterr().err


def test_an_editor_that_writes_no_prompt_is_counted_and_the_rounds_go_on(tmp_path, files):
    result, _ = optimise(make_config(tmp_path, files), Scripted(editor="silent"))
    rounds = result.metrics["judge_template_optimization"]["rounds"]
    assert [r["no_edit"] for r in rounds] == [r["edits"] for r in rounds] and rounds[0]["no_edit"] > 0
    assert accuracy(result, "held-out", "optimised") == accuracy(result, "held-out", "hand-written")


# ---- bad inputs: one line each ---------------------------------------------------------------------
def one_line_error(tmp_path, files, **kw) -> str:
    with pytest.raises(RefereeError) as got:
        optimise(make_config(tmp_path, files, **kw))
    assert "\n" not in str(got.value)
    return str(got.value)


def test_bad_templates_data_and_settings_are_one_line(tmp_path, files, capsys):
    pairs, _ = files
    shipped = load_template("pairwise")
    no_b = tmp_path / "no_b.txt"
    no_b.write_text(template_text(shipped, shipped.sections["user"].replace("{answer_b}", "")), encoding="utf-8")
    assert "section 'user' has no {answer_b}" in one_line_error(tmp_path, files, template=str(no_b))
    assert "section 'user' has no {answer_a}, {answer_b}" in one_line_error(tmp_path, files, template="single_1to10")
    foreign = tmp_path / "foreign.txt"
    foreign.write_text(template_text(shipped, shipped.sections["user"] + "\n{conversation_a}"), encoding="utf-8")
    assert "uses {conversation_a}, which a pairwise judge cannot fill there" in \
        one_line_error(tmp_path, files, template=str(foreign))
    assert "is the file being split" in one_line_error(tmp_path, files, other=[str(pairs)])
    leaky = write_pairs(tmp_path / "leaky.json", range(40))  # the split file's pairs under another name
    assert "shares" in one_line_error(tmp_path, files, other=[str(leaky)])
    unlabelled = tmp_path / "unlabelled.json"
    unlabelled.write_text(json.dumps([{"input": "q", "output_1": "a", "output_2": "b"}]), encoding="utf-8")
    assert "no pair has a human label A or B" in one_line_error(tmp_path, files, pairs=str(unlabelled))
    few = write_pairs(tmp_path / "few.json", range(2))
    assert "leaves" in one_line_error(tmp_path, files, pairs=str(few), held_out=0.01)
    from referee.cli import main

    base = ["optimize", "judge-template", "--pairs", str(pairs), "--task-model", "scripted",
            "--run", str(tmp_path / "cli")]
    for extra, expected in ((["--swap", "none"], "option --swap"), (["--held-out", "1"], "option --held-out"),
                            (["--budget", "10"], "option --budget")):
        with pytest.raises(SystemExit) as got:
            main(base + extra)
        err = capsys.readouterr().err.strip()
        assert got.value.code == 2 and len(err.splitlines()) == 1 and expected in err, err


# ---- small pieces ----------------------------------------------------------------------------------
def test_the_request_rules_the_split_and_the_template_file():
    request = "Judge.\n{question}\n{answer_a}\n{answer_b}\n{format}"
    prompt = JudgePrompt(request, SLOTS, FOREIGN, SECTION.pattern)
    assert prompt.flaw(request) is None and prompt.flaw(request + " {text} {json}") is None
    assert prompt.flaw(request.replace("{answer_a}", "")) == LOST_PLACEHOLDER
    assert prompt.flaw(request.replace("{format}", "")) == LOST_FORMAT
    assert prompt.flaw(request + "{conversation_a}") == FOREIGN_PLACEHOLDER
    assert prompt.flaw(request + "\n=== format_direct ===\n") == SECTION_LINE
    assert all(s in prompt.rules() for s in SLOTS + ("{format}",))
    pair = Pair("7", [{"role": "user", "content": "q"}], "a", "b", "A")
    assert held_out_draw(pair, 0) == held_out_draw(Pair("other id", pair.question, "a", "b", "B"), 0)
    assert held_out_draw(pair, 0) != held_out_draw(pair, 1)
    assert [p.id for p in distinct_ids([pair, Pair("8", [], "", ""), pair])] == ["7#1", "8", "7#2"]
    shipped = load_template("pairwise")
    text = template_text(shipped, "New {question} {answer_a} {answer_b} {format}", ("a comment",))
    assert text.startswith("# a comment\n=== system ===")
    written = parse_template(text, "x", "written")  # as referee judge reads a template file
    assert written.sections["user"] == "New {question} {answer_a} {answer_b} {format}"
    assert list(written.sections) == list(shipped.sections)


# ---- one real model, end to end ----------------------------------------------------------------------
def test_a_tiny_real_model_runs_end_to_end_and_its_template_drives_referee_judge(tmp_path, files, tiny_model_path,
                                                                                capsys):
    from referee.cli import main

    pairs, other = write_pairs(tmp_path / "small.json", range(12)), write_pairs(tmp_path / "small_other.json",
                                                                                range(50, 56))
    folder = tmp_path / "run"
    spec = f"hf:{tiny_model_path}"
    main(["optimize", "judge-template", "--pairs", str(pairs), "--other", str(other), "--task-model", spec,
          "--rounds", "1", "--beam", "1", "--minibatch", "4", "--errors-per-gradient", "2", "--gradients", "1",
          "--paraphrases", "1", "--expansion", "1", "--items-per-pull", "2", "--budget", "4", "--max-new-tokens",
          "12", "--run", str(folder)])
    out = capsys.readouterr().out
    assert "accuracy" in out and len(out.strip().splitlines()) == 8  # title, header, 2 sets x 3 judges
    assert "protocol: judge_template_optimization" in (folder / "config.yaml").read_text()
    best = folder / "best_template.txt"
    main(["judge", "--pairs", str(other), "--judge", spec, "--template", str(best), "--swap", "average",
          "--run", str(tmp_path / "judged")])
    capsys.readouterr()
    records = [json.loads(line) for line in (tmp_path / "judged" / "records" / "judgments.jsonl").open()]
    assert len(records) == 6 and {r["template"] for r in records} == {"best_template"}
    main(["run", str(folder / "config.yaml")])  # the run's config repeats it, every stage read back
    assert capsys.readouterr().out == out
