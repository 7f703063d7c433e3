"""Prompt optimisation with textual gradients: ProTeGi / APO (Pryzant et al., 2023, "Automatic Prompt
Optimization with 'Gradient Descent' and Beam Search"), on any labelled classification file.

A prompt template, with a placeholder where each input goes, is improved round by round as in the
paper's Algorithm 1:

    beam <- {initial prompt}
    for each of `rounds` rounds:
        candidates <- the beam and each member's successors                 (Expand, steps 1-5)
        beam <- the `beam` best candidates, found by a bandit on a budget   (Select, step 6)
        the best of the new beam is scored on the held-out test file        (step 7)

Expand and Select are ``referee.optimize.search`` (shared with the judge-template optimisation); here the
task is labelling: the task model answers each item with one of the label words. A rewrite that lost the
placeholder (or the declared answer-format sentence) is rejected and counted, never run.

Answers are read as the task model's probabilities over the label words (``model.choice``, as judges read
verdicts) or, with `answer: generative` for servers without log-probabilities, as the first label word of
a short greedy reply. Unreadable answers are invalid: counted, and never right.

Metrics: F1 on the test file (binary: of the last declared class; macro with more classes) with 95%
bootstrap intervals, for the initial prompt and each round's best; the headline has one row per round.
Stages (one records file each): ``initial-test``, then per round R the search's ``round-R-minibatch``,
``-gradients``, ``-edits``, ``-paraphrases``, ``-candidates``, ``-selection``, and ``round-R-test``, each
keyed by its inputs, so a killed optimisation resumes where it stopped and a changed setting recomputes
from the first stage it touches. Records keep the lineage: every gradient, edit and paraphrase with its
parent prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from referee import stats
from referee.config import MAX_EXAMPLES
from referee.errors import RefereeError
from referee.io import read_text
from referee.models.base import Model
from referee.optimize.answers import AnswerReading, read_answers
from referee.optimize.instructions import LABELLING, Mistake
from referee.optimize.scoring import f1_estimate
from referee.optimize.search import (NOTHING_GROWN, Expansion, SearchConfig, initial_record, load_roles, rng,
                                     search_invalid, search_queries, search_round, step_counts, train_reward)
from referee.optimize.template import LOST_FORMAT, LOST_PLACEHOLDER, PromptTemplate, checked_template
from referee.protocols import Result, register
from referee.runs import Run, fingerprint
from referee.w2s.data import Example, load_classification


class PromptOptimizationConfig(SearchConfig):
    protocol: str = "prompt_optimization"
    # data: any JSONL (or JSON array) file with text field(s) and a label field
    train: str
    test: str
    text_fields: list[str] = Field(["text"], min_length=1)  # joined by newlines into the input
    label_field: str = "label"
    classes: list[str | int | bool] = Field(min_length=2)  # the label values as the files write them
    label_words: list[str] | None = None  # what the task model answers for each class (default: the class)
    test_limit: int | None = Field(None, ge=1, le=MAX_EXAMPLES)  # score a random part of the test file
    # the prompt
    template: str  # the initial prompt's text, or a file holding it
    placeholder: str = Field("{text}", min_length=1)
    format_instruction: str | None = None  # a sentence of the template every edit must keep
    # how the task model answers
    answer: Literal["probability", "generative"] = "probability"
    calibration: Literal["none", "batch"] = "none"  # batch: remove the task model's lean per prompt (probability)
    answer_prefix: str = ""  # written for the task model before its answer (probability route)
    answer_tokens: int = Field(8, ge=1, le=1024)  # generative route: the reply's length
    f1: Literal["auto", "binary", "macro"] = "auto"  # auto: binary for two classes, else macro

    @field_validator("calibration")
    @classmethod
    def _calibrate_probabilities(cls, calibration: str, info: ValidationInfo) -> str:
        if calibration != "none" and info.data.get("answer") == "generative":
            raise ValueError("calibration reads probabilities: use it with answer: probability")
        return calibration

    @field_validator("label_words")
    @classmethod
    def _one_word_per_class(cls, words: list[str] | None, info: ValidationInfo) -> list[str] | None:
        classes = info.data.get("classes")
        if words is not None and classes is not None:
            if len(words) != len(classes):
                raise ValueError(f"give one label word per class: {len(words)} words for {len(classes)} classes")
            if len(set(words)) != len(words) or not all(w.strip() for w in words):
                raise ValueError(f"label words must be distinct and not blank, got {words}")
        return words


Config = PromptOptimizationConfig


@register("prompt_optimization", PromptOptimizationConfig,
          "ProTeGi: textual gradients, edits, paraphrases, bandit beam search; held-out F1 by round")
def run_prompt_optimization(cfg: Config, run: Run) -> Result:
    data = load_data(cfg)
    beam = [initial_candidate(cfg)]                                              # B0 = {p0}
    roles = load_roles(cfg, run.model)
    task = Labelling(cfg, data, roles.task)
    rounds = [round_summary(0, beam[0], score_on_test(cfg, run, task, beam[0], 0))]
    for r in range(1, cfg.rounds + 1):
        beam, grown, chosen = search_round(cfg, run, roles, task, beam, r)
        tested = score_on_test(cfg, run, task, beam[0], r)
        rounds.append(round_summary(r, beam[0], tested, grown, chosen))
    metrics = {"prompt_optimization": summary(cfg, data, rounds)}
    run.save_metrics(metrics)
    return Result(metrics, [headline_row(s) for s in rounds],
                  f"ProTeGi on {Path(cfg.train).name}: held-out {data.average} F1 of each round's best prompt "
                  f"({len(data.test)} test items, {cfg.selection}), 95% intervals")


# ---- inputs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Data:
    train: list[Example]
    test: list[Example]
    words: list[str]  # the label word of each class index
    average: str  # binary | macro

    @property
    def key(self) -> str:
        """One fingerprint of the training items (all the search reads) and the label words, so stages need not
        hash thousands of items."""
        return fingerprint({"train": self.train, "words": self.words})


def load_data(cfg: Config) -> Data:
    """Both files through the general classification loader (a bad record is one line naming the file, the
    line and the field); the test file cut to ``test_limit`` random items if set."""
    train = load_classification(cfg.train, cfg.text_fields, cfg.label_field, cfg.classes).examples
    test = load_classification(cfg.test, cfg.text_fields, cfg.label_field, cfg.classes).examples
    _refuse_overlap(cfg, train, test)
    if cfg.test_limit is not None and cfg.test_limit < len(test):
        keep = set(rng(cfg, "test").sample(range(len(test)), cfg.test_limit))
        test = [e for i, e in enumerate(test) if i in keep]
    words = cfg.label_words or [str(c).lower() if isinstance(c, bool) else str(c) for c in cfg.classes]
    average = cfg.f1 if cfg.f1 != "auto" else "binary" if len(words) == 2 else "macro"
    return Data(train, test, words, average)


def _refuse_overlap(cfg: Config, train: list, test: list) -> None:
    """The search selects prompts on the training items; a test item that is also one of them (the same
    text) would make the test figure a figure on selection data, so the run refuses."""
    seen = {e.text for e in train}
    shared = sum(e.text in seen for e in test)
    if shared:
        raise RefereeError(f"{cfg.test}: {shared} of its {len(test)} items are also in {cfg.train} (the same text); "
                           "prompts are selected on the training items, so test them on items kept apart")


def initial_candidate(cfg: Config) -> dict:
    """The initial prompt as a candidate record, from the template setting's text or the file it names."""
    file = _template_file(cfg.template, cfg.placeholder)
    text = read_text(file, "template file").strip() if file else cfg.template
    if file is None and cfg.placeholder not in text:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise RefereeError(f"setting 'template': {shown!r} is neither a file nor a template with the placeholder "
                           f"{cfg.placeholder}")
    checked_template(text, cfg.placeholder, cfg.format_instruction, str(file) if file else "setting 'template'")
    return initial_record(text)


def _template_file(value: str, placeholder: str) -> Path | None:
    if placeholder in value or "\n" in value:
        return None
    try:
        return Path(value) if Path(value).is_file() else None
    except OSError:  # a long text is not a file name
        return None


# ---- the task: labelling items ---------------------------------------------------------------------
class Labelling:
    """Labelling as the search's task: the task model answers each item, with a candidate prompt, as one
    of the label words; an answer is right when it is the item's label."""

    wording = LABELLING

    def __init__(self, cfg: Config, data: Data, model: Model):
        self.cfg, self.data, self.model = cfg, data, model
        self.train = data.train
        self.reading = AnswerReading(cfg.answer, cfg.calibration, cfg.answer_prefix, cfg.answer_tokens, cfg.seed)
        self.identity = {"model": model, "reading": self.reading, "words": data.words, "placeholder": cfg.placeholder}
        self.data_key = data.key
        self.rules = (cfg.placeholder, cfg.format_instruction)

    def template(self, candidate: dict) -> PromptTemplate:
        return PromptTemplate(candidate["text"], self.cfg.placeholder, self.cfg.format_instruction or None)

    def answer(self, jobs: list[tuple[dict, Example]], desc: str) -> list[dict]:
        """The task model's answer to each (candidate, item), one batched call, one record each."""
        words = self.data.words
        answers = read_answers(self.model, [self.template(c).render(e.text) for c, e in jobs], words, self.reading,
                               desc, groups=[c["id"] for c, _ in jobs])  # calibrated per prompt, if at all
        return [{"prompt": c["id"], "item": e.id, "label": words[e.label], **a.record(words),
                 "correct": a.label == e.label} for (c, e), a in zip(jobs, answers)]

    def mistake(self, record: dict, item: Example) -> Mistake:
        return Mistake(record["item"], item.text, record["label"], record["answer"])


# ---- step 7 and the summary ------------------------------------------------------------------------
@dataclass
class Tested:
    """The test file's answers to one prompt, and their F1 with its interval."""

    records: list[dict]
    f1: stats.Estimate
    answers: dict[str, int]  # how often each label word was answered (a prompt may only move the model's bias)


def score_on_test(cfg: Config, run: Run, task: Labelling, best: dict, r: int) -> Tested:
    """7. The round's best prompt answers the test file (records ``initial-test`` / ``round-R-test``)."""
    name = "initial-test" if r == 0 else f"round-{r}-test"
    data = task.data
    inputs = {"task": task.identity, "prompt": best["text"], "items": data.test}
    records = run.run_stage(name, inputs, lambda: task.answer([(best, e) for e in data.test], f"round {r}: test"))
    index = {w: i for i, w in enumerate(data.words)}
    return Tested(records, f1_estimate([index[x["label"]] for x in records], [index.get(x["answer"]) for x in records],
                                       data.average, len(data.words), cfg.bootstrap, cfg.seed),
                  {w: sum(x["answer"] == w for x in records) for w in data.words})


def round_summary(r: int, best: dict, tested: Tested, grown: Expansion = NOTHING_GROWN,
                  chosen: list[dict] = ()) -> dict:
    """A round's metrics: its best prompt and lineage, test scores, and the counts of every step."""
    records = tested.records
    return {"round": r, "best": best["id"], "prompt": best["text"], "lineage": best,
            "test_f1": tested.f1.to_dict(), "test_accuracy": sum(x["correct"] for x in records) / len(records),
            "test_invalid": sum(x["answer"] is None for x in records),
            "test_answers": tested.answers,
            "train_reward": train_reward(best, chosen),
            **step_counts(grown, (LOST_PLACEHOLDER, LOST_FORMAT)),
            "invalid_answers": search_invalid(grown, chosen) + sum(x["answer"] is None for x in records),
            "queries": {**search_queries(grown, chosen), "test": len(records)}}


def summary(cfg: Config, data: Data, rounds: list[dict]) -> dict:
    """The metrics: settings that say what was measured, the initial prompt's scores and each round's."""
    return {"train": cfg.train, "test": cfg.test, "train_items": len(data.train), "test_items": len(data.test),
            "label_words": data.words, "f1": data.average, "selection": cfg.selection,
            "initial": rounds[0], "rounds": rounds[1:],
            "final": {"round": rounds[-1]["round"], "prompt": rounds[-1]["prompt"], "test_f1": rounds[-1]["test_f1"]}}


def headline_row(s: dict) -> dict:
    f1 = s["test_f1"]
    return {"round": s["round"], "prompt": s["best"], "test F1": f1["value"], "low": f1["low"], "high": f1["high"],
            "train reward": s["train_reward"], "candidates": s["candidates"],
            "rejected": sum(s["rejected"].values()), "no edit": s["no_edit"], "invalid answers": s["invalid_answers"],
            "selection queries": s["queries"]["selection"]}
