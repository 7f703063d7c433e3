"""Prompt optimisation with textual gradients: ProTeGi / APO (Pryzant et al., 2023, "Automatic Prompt
Optimization with 'Gradient Descent' and Beam Search"), on any labelled classification file.

A prompt template, with a placeholder where each input goes, is improved round by round as in the
paper's Algorithm 1:

    beam <- {initial prompt}
    for each of `rounds` rounds:
        candidates <- the beam and each member's successors                 (Expand, steps 1-5)
        beam <- the `beam` best candidates, found by a bandit on a budget   (Select, step 6)
        the best of the new beam is scored on the held-out test file        (step 7)

Expand (the paper's Algorithm 2), for every beam member at once:
  1. minibatch    the task model answers `minibatch` random training items with the prompt;
  2. gradients    its mistakes are drawn into `error_groups` groups of `errors_per_gradient`, and the gradient
                  model writes `gradients` explanations per group of what is wrong with the prompt;
  3. edits        the editor rewrites the prompt `edits_per_gradient` times per gradient to fix what it says;
  4. paraphrases  each accepted edit is paraphrased `paraphrases` times (Monte-Carlo search around it);
  5. candidates   at most `expansion` distinct successors per parent are kept, drawn at random.
A rewrite that lost the placeholder (or the declared answer-format sentence) is rejected and counted, never
run; a reply holding no prompt is counted as no edit, and the round goes on.

Select: every candidate is a bandit arm (``referee.optimize.selection``). A pull answers `items_per_pull`
training items drawn at random, the j-th pull of every arm reading the same items, and its reward is the
share answered right; a round spends at most `budget` task-model queries on it.

Answers are read as the task model's probabilities over the label words (``model.choice``, as judges read
verdicts) or, with `answer: generative` for servers without log-probabilities, as the first label word of
a short greedy reply. Unreadable answers are invalid: counted, and never right.

Metrics: F1 on the test file (binary: of the last declared class; macro with more classes) with 95%
bootstrap intervals, for the initial prompt and each round's best; the headline has one row per round.
Stages (one records file each): ``initial-test``, then per round R ``round-R-minibatch``, ``-gradients``,
``-edits``, ``-paraphrases``, ``-candidates``, ``-selection`` and ``-test``, each keyed by its inputs, so
a killed optimisation resumes where it stopped and a changed setting recomputes from the first stage it
touches. Records keep the lineage: every gradient, edit and paraphrase with its parent prompt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from referee import stats
from referee.config import MAX_EXAMPLES, MAX_PROMPTS, MAX_RESAMPLES, MAX_ROUNDS, ProtocolConfig, SamplingConfig
from referee.errors import RefereeError
from referee.io import read_text
from referee.models.base import Model
from referee.optimize import expansion
from referee.optimize.answers import AnswerReading, read_answers
from referee.optimize.instructions import WORDING, Mistake
from referee.optimize.scoring import f1_estimate
from referee.optimize.selection import select
from referee.optimize.template import LOST_FORMAT, LOST_PLACEHOLDER, PromptTemplate, checked_template, prompt_id
from referee.protocols import Result, register
from referee.runs import Run, fingerprint
from referee.w2s.data import Example, load_classification

MAX_WIDTH = 256  # beam width, groups, gradients, edits, paraphrases, successors: far beyond the paper's 2-8
MAX_QUERIES = 10_000_000  # task-model queries a round may spend on selection


class PromptOptimizationConfig(ProtocolConfig):
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
    # roles: any model specs
    task_model: str = "embedded"
    gradient_model: str | None = None  # default: the task model
    editor: str | None = None  # default: the task model
    answer: Literal["probability", "generative"] = "probability"
    answer_prefix: str = ""  # written for the task model before its answer (probability route)
    answer_tokens: int = Field(8, ge=1, le=1024)  # generative route: the reply's length
    sampling: SamplingConfig = SamplingConfig(temperature=1.0, max_new_tokens=400)  # gradients, edits, paraphrases
    # search (the paper's settings as defaults)
    rounds: int = Field(6, ge=1, le=MAX_ROUNDS)
    beam: int = Field(4, ge=1, le=MAX_WIDTH)
    minibatch: int = Field(64, ge=1, le=MAX_PROMPTS)
    errors_per_gradient: int = Field(4, ge=1, le=MAX_WIDTH)
    error_groups: int = Field(1, ge=1, le=MAX_WIDTH)
    gradients: int = Field(4, ge=1, le=MAX_WIDTH)
    edits_per_gradient: int = Field(1, ge=1, le=MAX_WIDTH)
    paraphrases: int = Field(2, ge=0, le=MAX_WIDTH)
    expansion: int = Field(8, ge=1, le=MAX_WIDTH)
    # selection
    selection: Literal["brute_force", "ucb", "ucb_e", "successive_rejects", "successive_halving"] = "ucb"
    items_per_pull: int = Field(32, ge=1, le=MAX_PROMPTS)
    exploration: float | None = Field(None, gt=0)  # c of ucb (default 2), a of ucb_e (default 10)
    budget: int = Field(2048, ge=1, le=MAX_QUERIES)  # task-model queries per round for selection
    f1: Literal["auto", "binary", "macro"] = "auto"  # auto: binary for two classes, else macro
    bootstrap: int = Field(1000, ge=10, le=MAX_RESAMPLES)

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

    @field_validator("budget")
    @classmethod
    def _pulls_every_candidate(cls, budget: int, info: ValidationInfo) -> int:
        """The bandits pull every candidate at least once: up to beam * (expansion + 1) of them per round."""
        beam, width, pull = (info.data.get(k) for k in ("beam", "expansion", "items_per_pull"))
        if None not in (beam, width, pull) and budget < beam * (width + 1) * pull:
            need = beam * (width + 1) * pull
            raise ValueError(f"{budget} queries cannot evaluate each of up to {beam * (width + 1)} candidates "
                             f"(beam x (expansion + 1)) once with {pull} items per pull; give at least {need}")
        return budget


Config = PromptOptimizationConfig


@register("prompt_optimization", PromptOptimizationConfig,
          "ProTeGi: textual gradients, edits, paraphrases, bandit beam search; held-out F1 by round")
def run_prompt_optimization(cfg: Config, run: Run) -> Result:
    data = load_data(cfg)
    beam = [initial_candidate(cfg)]                                              # B0 = {p0}
    roles = load_roles(cfg, run)
    rounds = [round_summary(0, beam[0], score_on_test(cfg, run, roles, data, beam[0], 0))]
    for r in range(1, cfg.rounds + 1):
        grown = expand(cfg, run, roles, data, beam, r)                           # C = U Expand(p), p in B
        beam, chosen = select_beam(cfg, run, roles, data, grown.candidates, r)   # B = Select_b(C)
        tested = score_on_test(cfg, run, roles, data, beam[0], r)
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
        """One fingerprint of the data and its label words, so stages need not hash thousands of items."""
        return fingerprint({"train": self.train, "test": self.test, "words": self.words})


def load_data(cfg: Config) -> Data:
    """Both files through the general classification loader (a bad record is one line naming the file, the
    line and the field); the test file cut to ``test_limit`` random items if set."""
    train = load_classification(cfg.train, cfg.text_fields, cfg.label_field, cfg.classes).examples
    test = load_classification(cfg.test, cfg.text_fields, cfg.label_field, cfg.classes).examples
    if cfg.test_limit is not None and cfg.test_limit < len(test):
        keep = set(rng(cfg, "test").sample(range(len(test)), cfg.test_limit))
        test = [e for i, e in enumerate(test) if i in keep]
    words = cfg.label_words or [str(c).lower() if isinstance(c, bool) else str(c) for c in cfg.classes]
    average = cfg.f1 if cfg.f1 != "auto" else "binary" if len(words) == 2 else "macro"
    return Data(train, test, words, average)


@dataclass(frozen=True)
class Roles:
    task: Model
    gradient: Model
    editor: Model


def load_roles(cfg: Config, run: Run) -> Roles:
    return Roles(run.model(cfg.task_model), run.model(cfg.gradient_model or cfg.task_model),
                 run.model(cfg.editor or cfg.task_model))


def initial_candidate(cfg: Config) -> dict:
    """The initial prompt as a candidate record, from the template setting's text or the file it names."""
    file = _template_file(cfg.template, cfg.placeholder)
    text = read_text(file, "template file").strip() if file else cfg.template
    if file is None and cfg.placeholder not in text:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise RefereeError(f"setting 'template': {shown!r} is neither a file nor a template with the placeholder "
                           f"{cfg.placeholder}")
    checked_template(text, cfg.placeholder, cfg.format_instruction, str(file) if file else "setting 'template'")
    return {"id": prompt_id(text), "text": text, "round": 0, "kind": "initial", "parent": None, "gradient": None,
            "edit": None}


def _template_file(value: str, placeholder: str) -> Path | None:
    if placeholder in value or "\n" in value:
        return None
    try:
        return Path(value) if Path(value).is_file() else None
    except OSError:  # a long text is not a file name
        return None


def template(cfg: Config, candidate: dict) -> PromptTemplate:
    return PromptTemplate(candidate["text"], cfg.placeholder, cfg.format_instruction or None)


def rng(cfg: Config, *what) -> random.Random:
    """A random stream per purpose and round, from the seed: the same draws on every rerun."""
    return random.Random(":".join(str(p) for p in (cfg.seed, *what)))


def reading(cfg: Config) -> AnswerReading:
    return AnswerReading(cfg.answer, cfg.answer_prefix, cfg.answer_tokens, cfg.seed)


def answering(cfg: Config, roles: Roles, data: Data) -> dict:
    """What the task model's answers depend on, for stage fingerprints."""
    return {"model": roles.task, "reading": reading(cfg), "words": data.words, "placeholder": cfg.placeholder}


def answer_records(cfg: Config, roles: Roles, data: Data, jobs: list[tuple[dict, Example]],
                   desc: str) -> list[dict]:
    """The task model's answer to each (candidate, item), one batched call, one record each."""
    answers = read_answers(roles.task, [template(cfg, c).render(e.text) for c, e in jobs], data.words,
                           reading(cfg), desc)
    return [{"prompt": c["id"], "item": e.id, "label": data.words[e.label], **a.record(data.words),
             "correct": a.label == e.label} for (c, e), a in zip(jobs, answers)]


# ---- Expand: steps 1-5 -----------------------------------------------------------------------------
@dataclass
class Expansion:
    """A round's expansion: its candidates (the beam first) and the records of each step, for counting."""

    candidates: list[dict]
    answered: list[dict]
    gradients: list[dict]
    edits: list[dict]
    paraphrases: list[dict]


def expand(cfg: Config, run: Run, roles: Roles, data: Data, beam: list[dict], r: int) -> Expansion:
    batch = rng(cfg, "minibatch", r).sample(data.train, min(cfg.minibatch, len(data.train)))
    answered = answer_minibatch(cfg, run, roles, data, beam, batch, r)                  # 1
    mistakes = mistakes_by_prompt(answered, batch)
    gradients = write_gradients(cfg, run, roles, beam, mistakes, r)                     # 2
    edits = write_edits(cfg, run, roles, beam, mistakes, gradients, r)                  # 3
    paraphrases = write_paraphrases(cfg, run, roles, edits, r)                          # 4
    candidates = gather_candidates(cfg, run, beam, edits, paraphrases, r)               # 5
    return Expansion(candidates, answered, gradients, edits, paraphrases)


def answer_minibatch(cfg: Config, run: Run, roles: Roles, data: Data, beam: list[dict], batch: list[Example],
                     r: int) -> list[dict]:
    """1. Every beam prompt answers the round's minibatch (records ``round-R-minibatch``)."""
    jobs = [(c, e) for c in beam for e in batch]
    inputs = {"task": answering(cfg, roles, data), "beam": [c["text"] for c in beam], "items": batch}
    return run.run_stage(f"round-{r}-minibatch", inputs,
                         lambda: answer_records(cfg, roles, data, jobs, f"round {r}: minibatch"))


def mistakes_by_prompt(answered: list[dict], batch: list[Example]) -> dict[str, dict[str, Mistake]]:
    """{prompt id: {item id: the mistake}}, in minibatch order."""
    texts = {e.id: e.text for e in batch}
    out: dict[str, dict[str, Mistake]] = {}
    for a in answered:
        out.setdefault(a["prompt"], {})
        if not a["correct"]:
            out[a["prompt"]][a["item"]] = Mistake(a["item"], texts[a["item"]], a["label"], a["answer"])
    return out


def write_gradients(cfg: Config, run: Run, roles: Roles, beam: list[dict], mistakes: dict, r: int) -> list[dict]:
    """2. Textual gradients: for each group of a prompt's mistakes, ``gradients`` explanations of what is
    wrong with the prompt (records ``round-R-gradients``; text None for an empty reply)."""
    jobs = [(c, group) for c in beam
            for group in expansion.group_mistakes(list(mistakes[c["id"]].values()), cfg.errors_per_gradient,
                                                  cfg.error_groups, rng(cfg, "errors", r, c["id"]))]

    def compute() -> list[dict]:
        got = expansion.textual_gradients(roles.gradient, cfg.sampling.to_sampling(cfg.seed),
                                          [(template(cfg, c), group) for c, group in jobs], cfg.gradients)
        return [{"id": f"r{r}-g{i}.{k}", "parent": c["id"], "errors": [m.item for m in group], "text": text}
                for i, ((c, group), row) in enumerate(zip(jobs, got)) for k, text in enumerate(row)]

    inputs = {"model": roles.gradient, "sampling": cfg.sampling, "seed": cfg.seed, "wording": WORDING,
              "n": cfg.gradients, "jobs": [(c["text"], group) for c, group in jobs]}
    return run.run_stage(f"round-{r}-gradients", inputs, compute)


def write_edits(cfg: Config, run: Run, roles: Roles, beam: list[dict], mistakes: dict, gradients: list[dict],
                r: int) -> list[dict]:
    """3. Edits: the editor applies each gradient to its prompt (records ``round-R-edits``, each with its
    status: accepted, no_edit, unchanged, lost_placeholder or lost_format)."""
    parents = {c["id"]: c for c in beam}
    jobs = [(parents[g["parent"]], [mistakes[g["parent"]][i] for i in g["errors"]], g) for g in gradients if g["text"]]

    def compute() -> list[dict]:
        got = expansion.edits(roles.editor, cfg.sampling.to_sampling(cfg.seed),
                              [(template(cfg, c), errors, g["text"]) for c, errors, g in jobs], cfg.edits_per_gradient)
        return [rewrite_record(cfg, c, text, r, kind="edit", key=f"r{r}-e{i}.{k}", gradient=g["id"])
                for i, ((c, _, g), row) in enumerate(zip(jobs, got)) for k, text in enumerate(row)]

    inputs = {"model": roles.editor, "sampling": cfg.sampling, "seed": cfg.seed, "wording": WORDING,
              "n": cfg.edits_per_gradient, "rules": (cfg.placeholder, cfg.format_instruction),
              "jobs": [(c["text"], errors, g["text"], g["id"]) for c, errors, g in jobs]}
    return run.run_stage(f"round-{r}-edits", inputs, compute)


def write_paraphrases(cfg: Config, run: Run, roles: Roles, edits: list[dict], r: int) -> list[dict]:
    """4. Monte-Carlo paraphrases of every accepted edit (records ``round-R-paraphrases``)."""
    sources = list(accepted_by_text(edits).values())

    def compute() -> list[dict]:
        if not cfg.paraphrases:
            return []
        got = expansion.paraphrases(roles.editor, cfg.sampling.to_sampling(cfg.seed),
                                    [template(cfg, e) for e in sources], cfg.paraphrases)
        return [rewrite_record(cfg, e, text, r, kind="paraphrase", key=f"r{r}-m{i}.{k}", gradient=e["gradient"],
                               parent=e["parent"], edit=e["key"])
                for i, (e, row) in enumerate(zip(sources, got)) for k, text in enumerate(row)]

    inputs = {"model": roles.editor, "sampling": cfg.sampling, "seed": cfg.seed, "wording": WORDING,
              "n": cfg.paraphrases, "rules": (cfg.placeholder, cfg.format_instruction),
              "sources": [(e["key"], e["text"]) for e in sources]}
    return run.run_stage(f"round-{r}-paraphrases", inputs, compute)


def rewrite_record(cfg: Config, source: dict, text: str | None, r: int, kind: str, key: str, gradient: str,
                   parent: str | None = None, edit: str | None = None) -> dict:
    """An edit or paraphrase of ``source`` with its lineage (parent prompt, gradient, edit) and status."""
    return {"key": key, "id": prompt_id(text) if text else None, "text": text, "round": r, "kind": kind,
            "parent": parent or source["id"], "gradient": gradient, "edit": edit,
            "status": expansion.verdict(template(cfg, source), text)}


def accepted_by_text(rewrites: list[dict]) -> dict[str, dict]:
    """The first accepted rewrite of each distinct text, in order."""
    first: dict[str, dict] = {}
    for x in rewrites:
        if x["status"] == expansion.ACCEPTED:
            first.setdefault(x["text"], x)
    return first


def gather_candidates(cfg: Config, run: Run, beam: list[dict], edits: list[dict], paraphrases: list[dict],
                      r: int) -> list[dict]:
    """5. The beam, then at most ``expansion`` distinct new successors of each member, drawn at random
    (records ``round-R-candidates``, each with its lineage)."""
    def compute() -> list[dict]:
        seen = {c["text"] for c in beam}
        out = [dict(c) for c in beam]
        for parent in beam:
            first = accepted_by_text([x for x in edits + paraphrases if x["parent"] == parent["id"]])
            for text in expansion.capped([t for t in first if t not in seen], cfg.expansion,
                                         rng(cfg, "expansion", r, parent["id"])):
                seen.add(text)
                x = first[text]
                out.append({"id": x["id"], "text": text, "round": r, "kind": x["kind"], "parent": x["parent"],
                            "gradient": x["gradient"], "edit": x["edit"] or x["key"]})
        return out

    inputs = {"beam": beam, "edits": edits, "paraphrases": paraphrases, "expansion": cfg.expansion,
              "seed": cfg.seed}
    return run.run_stage(f"round-{r}-candidates", inputs, compute)


# ---- Select: step 6 --------------------------------------------------------------------------------
def select_beam(cfg: Config, run: Run, roles: Roles, data: Data, candidates: list[dict],
                r: int) -> tuple[list[dict], list[dict]]:
    """6. The next beam, best first, chosen by the configured bandit under the query budget (records
    ``round-R-selection``: each candidate's rewards, mean, rank, queries and invalid answers)."""
    def compute() -> list[dict]:
        pulls = Pulls(cfg, roles, data, candidates, r)
        chosen = select(cfg.selection, len(candidates), cfg.beam, cfg.budget // cfg.items_per_pull, pulls,
                        cfg.exploration)
        return [{"id": c["id"], "rank": chosen.ranking.index(i) + 1, "kept": i in chosen.kept,
                 "mean": chosen.mean(i), "rewards": chosen.rewards[i], "queries": pulls.queries[i],
                 "invalid": pulls.invalid[i]} for i, c in enumerate(candidates)]

    inputs = {"task": answering(cfg, roles, data), "data": data.key, "candidates": [c["text"] for c in candidates],
              "selection": cfg.selection, "beam": cfg.beam, "budget": cfg.budget, "items_per_pull": cfg.items_per_pull,
              "exploration": cfg.exploration, "seed": cfg.seed}
    chosen = run.run_stage(f"round-{r}-selection", inputs, compute)
    kept = sorted((s for s in chosen if s["kept"]), key=lambda s: s["rank"])
    by_id = {c["id"]: c for c in candidates}
    return [by_id[s["id"]] for s in kept], chosen


class Pulls:
    """The bandit's pull: candidate a's j-th pull answers the j-th random draw of ``items_per_pull`` training
    items (the same draw for every candidate); its reward is the share answered right."""

    def __init__(self, cfg: Config, roles: Roles, data: Data, candidates: list[dict], r: int):
        self.cfg, self.roles, self.data, self.candidates, self.r = cfg, roles, data, candidates, r
        self.pulled = [0] * len(candidates)
        self.queries = [0] * len(candidates)
        self.invalid = [0] * len(candidates)
        self._draws: list[list[Example]] = []

    def draw(self, j: int) -> list[Example]:
        while len(self._draws) <= j:
            k = min(self.cfg.items_per_pull, len(self.data.train))
            self._draws.append(rng(self.cfg, "pull", self.r, len(self._draws)).sample(self.data.train, k))
        return self._draws[j]

    def __call__(self, arms: list[int]) -> list[float]:
        jobs, owner = [], []
        for a in arms:
            for e in self.draw(self.pulled[a]):
                jobs.append((self.candidates[a], e))
                owner.append(a)
            self.pulled[a] += 1
        records = answer_records(self.cfg, self.roles, self.data, jobs, f"round {self.r}: selection")
        right = {a: [] for a in arms}
        for a, rec in zip(owner, records):
            right[a].append(rec["correct"])
            self.invalid[a] += rec["answer"] is None
        for a in arms:
            self.queries[a] += len(right[a])
        return [sum(right[a]) / len(right[a]) for a in arms]


# ---- step 7 and the summary ------------------------------------------------------------------------
@dataclass
class Tested:
    """The test file's answers to one prompt, and their F1 with its interval."""

    records: list[dict]
    f1: stats.Estimate


def score_on_test(cfg: Config, run: Run, roles: Roles, data: Data, best: dict, r: int) -> Tested:
    """7. The round's best prompt answers the test file (records ``initial-test`` / ``round-R-test``)."""
    name = "initial-test" if r == 0 else f"round-{r}-test"
    inputs = {"task": answering(cfg, roles, data), "prompt": best["text"], "items": data.test}
    records = run.run_stage(name, inputs, lambda: answer_records(cfg, roles, data, [(best, e) for e in data.test],
                                                                 f"round {r}: test"))
    index = {w: i for i, w in enumerate(data.words)}
    return Tested(records, f1_estimate([index[x["label"]] for x in records], [index.get(x["answer"]) for x in records],
                                       data.average, len(data.words), cfg.bootstrap, cfg.seed))


def round_summary(r: int, best: dict, tested: Tested, grown: Expansion | None = None,
                  chosen: list[dict] = ()) -> dict:
    """A round's metrics: its best prompt and lineage, test scores, and the counts of every step."""
    grown = grown or Expansion([], [], [], [], [])
    records = tested.records
    rewrites = grown.edits + grown.paraphrases
    best_pick = next((s for s in chosen if s["id"] == best["id"]), None)
    return {"round": r, "best": best["id"], "prompt": best["text"], "lineage": best,
            "test_f1": tested.f1.to_dict(), "test_accuracy": sum(x["correct"] for x in records) / len(records),
            "test_invalid": sum(x["answer"] is None for x in records),
            "train_reward": best_pick["mean"] if best_pick else None,
            "candidates": len(grown.candidates),
            "gradients": sum(g["text"] is not None for g in grown.gradients),
            "empty_gradients": sum(g["text"] is None for g in grown.gradients),
            "edits": len(grown.edits), "paraphrases": len(grown.paraphrases),
            "accepted": sum(x["status"] == expansion.ACCEPTED for x in rewrites),
            "rejected": {why: sum(x["status"] == why for x in rewrites) for why in (LOST_PLACEHOLDER, LOST_FORMAT)},
            "no_edit": sum(x["status"] == expansion.NO_EDIT for x in rewrites),
            "unchanged": sum(x["status"] == expansion.UNCHANGED for x in rewrites),
            "invalid_answers": (sum(a["answer"] is None for a in grown.answered) + sum(s["invalid"] for s in chosen)
                                + sum(x["answer"] is None for x in records)),
            "queries": {"minibatch": len(grown.answered), "selection": sum(s["queries"] for s in chosen),
                        "test": len(records)}}


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
