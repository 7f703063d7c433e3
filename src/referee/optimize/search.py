"""The ProTeGi search (Pryzant et al., 2023), shared by every protocol that optimises a prompt: each round
the beam grows by textual gradients, edits and paraphrases (Expand) and is cut back by a bandit on a query
budget (Select). What the prompt is for, how the task model answers with it and when an answer is right
belong to a ``Task``: a classification prompt (``protocols.prompt_optimization``) or a pairwise judge's
template (``protocols.judge_template_optimization``).

Expand (the paper's Algorithm 2), for every beam member at once:
  1. minibatch    the task model answers `minibatch` random training items with the prompt;
  2. gradients    its mistakes are drawn into `error_groups` groups of `errors_per_gradient`, and the gradient
                  model writes `gradients` explanations per group of what is wrong with the prompt;
  3. edits        the editor rewrites the prompt `edits_per_gradient` times per gradient to fix what it says;
  4. paraphrases  each accepted edit is paraphrased `paraphrases` times (Monte-Carlo search around it);
  5. candidates   at most `expansion` distinct successors per parent are kept, drawn at random.
With `expand: paraphrase_only` (the ablation of the paper's Monte-Carlo baseline) steps 1-3 are skipped and
each beam member is paraphrased `expansion` times instead: the same number of successors, no gradient.
A rewrite that breaks a rule of the task's template (``flaw``) is rejected and counted, never run; a reply
holding no prompt is counted as no edit, and the round goes on.

Select (step 6): every candidate is a bandit arm (``referee.optimize.selection``). A pull answers
`items_per_pull` training items drawn at random, the j-th pull of every arm reading the same items, and
its reward is the share answered right; a round spends at most `budget` task-model queries on it.

Each step is a stage of the run (``round-R-minibatch``, ``-gradients``, ``-edits``, ``-paraphrases``,
``-candidates``, ``-selection``), keyed by its inputs, so a killed search resumes where it stopped and a
changed setting recomputes from the first step it touches. Records keep the lineage: every gradient, edit
and paraphrase with its parent prompt. The run is passed in by the protocol: only its ``run_stage`` and
``model`` are used here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, Sequence

from pydantic import Field, ValidationInfo, field_validator

from referee.config import MAX_PROMPTS, MAX_RESAMPLES, MAX_ROUNDS, ProtocolConfig, SamplingConfig
from referee.models.base import Model, Sampling
from referee.optimize import expansion
from referee.optimize.instructions import Mistake, Wording, wording_key
from referee.optimize.selection import select
from referee.optimize.template import Rewritable, prompt_id

MAX_WIDTH = 256  # beam width, groups, gradients, edits, paraphrases, successors: far beyond the paper's 2-8
MAX_QUERIES = 10_000_000  # task-model queries a round may spend on selection


class SearchConfig(ProtocolConfig):
    """The search's settings, the same in every protocol that optimises a prompt (the paper's as defaults)."""

    # roles: any model specs
    task_model: str = "embedded"
    gradient_model: str | None = None  # default: the task model
    editor: str | None = None  # default: the task model
    sampling: SamplingConfig = SamplingConfig(temperature=1.0, max_new_tokens=400)  # gradients, edits, paraphrases
    # search
    rounds: int = Field(6, ge=1, le=MAX_ROUNDS)
    beam: int = Field(4, ge=1, le=MAX_WIDTH)
    minibatch: int = Field(64, ge=1, le=MAX_PROMPTS)
    errors_per_gradient: int = Field(4, ge=1, le=MAX_WIDTH)
    error_groups: int = Field(1, ge=1, le=MAX_WIDTH)
    gradients: int = Field(4, ge=1, le=MAX_WIDTH)
    edits_per_gradient: int = Field(1, ge=1, le=MAX_WIDTH)
    paraphrases: int = Field(2, ge=0, le=MAX_WIDTH)
    expansion: int = Field(8, ge=1, le=MAX_WIDTH)
    expand: Literal["gradients", "paraphrase_only"] = "gradients"  # paraphrase_only: the no-gradient ablation
    # selection
    selection: Literal["brute_force", "ucb", "ucb_e", "successive_rejects", "successive_halving"] = "ucb"
    items_per_pull: int = Field(32, ge=1, le=MAX_PROMPTS)
    exploration: float | None = Field(None, gt=0)  # c of ucb (default 2), a of ucb_e (default 10)
    budget: int = Field(2048, ge=1, le=MAX_QUERIES)  # task-model queries per round for selection
    bootstrap: int = Field(1000, ge=10, le=MAX_RESAMPLES)  # resamples of the reported scores' intervals

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


class Stages(Protocol):
    """The run, as the search uses it (``referee.runs.Run``)."""

    def run_stage(self, name: str, inputs: Any, compute: Callable[[], list[dict]]) -> list[dict]: ...


class Task(Protocol):
    """What is optimised, as the search sees it. Answer records hold at least ``prompt`` (the candidate's
    id), ``item``, ``answer`` (None when unreadable) and ``correct``."""

    wording: Wording
    train: Sequence  # the training items, each with a distinct ``id``
    identity: Any  # what the task model's answers depend on besides the prompt and the items (fingerprints)
    data_key: str  # a fingerprint of the task's data
    rules: Any  # what every rewrite must keep (fingerprints)

    def template(self, candidate: dict) -> Rewritable: ...

    def answer(self, jobs: list[tuple[dict, Any]], desc: str) -> list[dict]: ...

    def mistake(self, record: dict, item: Any) -> Mistake: ...


@dataclass(frozen=True)
class Roles:
    task: Model
    gradient: Model
    editor: Model


def load_roles(cfg: SearchConfig, load_model: Callable[[str], Model]) -> Roles:
    return Roles(load_model(cfg.task_model), load_model(cfg.gradient_model or cfg.task_model),
                 load_model(cfg.editor or cfg.task_model))


def rng(cfg: SearchConfig, *what) -> random.Random:
    """A random stream per purpose and round, from the seed: the same draws on every rerun."""
    return random.Random(":".join(str(p) for p in (cfg.seed, *what)))


def sampling(cfg: SearchConfig, r: int) -> Sampling:
    """Round r's sampling, with a seed of its own: a beam that did not change would otherwise be sent the
    very same requests as the round before and, through the cache, get the very same rewrites back."""
    return cfg.sampling.to_sampling(rng(cfg, "sampling", r).randrange(2**31))


def initial_record(text: str) -> dict:
    """The initial prompt as a candidate record."""
    return {"id": prompt_id(text), "text": text, "round": 0, "kind": "initial", "parent": None, "gradient": None,
            "edit": None}


@dataclass
class Expansion:
    """A round's expansion: its candidates (the beam first) and the records of each step, for counting."""

    candidates: list[dict]
    answered: list[dict]
    gradients: list[dict]
    edits: list[dict]
    paraphrases: list[dict]


NOTHING_GROWN = Expansion([], [], [], [], [])  # round 0: the initial prompt alone


def search_round(cfg: SearchConfig, run: Stages, roles: Roles, task: Task, beam: list[dict],
                 r: int) -> tuple[list[dict], Expansion, list[dict]]:
    """One round of the paper's Algorithm 1: the next beam (best first), the expansion it was chosen from,
    and the selection's records."""
    grown = expand(cfg, run, roles, task, beam, r)                       # C = U Expand(p), p in B
    beam, chosen = select_beam(cfg, run, task, grown.candidates, r)      # B = Select_b(C)
    return beam, grown, chosen


# ---- Expand: steps 1-5 -----------------------------------------------------------------------------
def expand(cfg: SearchConfig, run: Stages, roles: Roles, task: Task, beam: list[dict], r: int) -> Expansion:
    if cfg.expand == "paraphrase_only":
        paraphrases = paraphrase_beam(cfg, run, roles, task, beam, r)
        return Expansion(gather_candidates(cfg, run, beam, [], paraphrases, r), [], [], [], paraphrases)
    batch = rng(cfg, "minibatch", r).sample(task.train, min(cfg.minibatch, len(task.train)))
    answered = answer_minibatch(run, task, beam, batch, r)                               # 1
    mistakes = mistakes_by_prompt(task, answered, batch)
    gradients = write_gradients(cfg, run, roles, task, beam, mistakes, r)               # 2
    edits = write_edits(cfg, run, roles, task, beam, mistakes, gradients, r)            # 3
    paraphrases = write_paraphrases(cfg, run, roles, task, edits, r)                    # 4
    candidates = gather_candidates(cfg, run, beam, edits, paraphrases, r)               # 5
    return Expansion(candidates, answered, gradients, edits, paraphrases)


def answer_minibatch(run: Stages, task: Task, beam: list[dict], batch: list, r: int) -> list[dict]:
    """1. Every beam prompt answers the round's minibatch (records ``round-R-minibatch``)."""
    jobs = [(c, item) for c in beam for item in batch]
    inputs = {"task": task.identity, "beam": [c["text"] for c in beam], "items": batch}
    return run.run_stage(f"round-{r}-minibatch", inputs, lambda: task.answer(jobs, f"round {r}: minibatch"))


def mistakes_by_prompt(task: Task, answered: list[dict], batch: list) -> dict[str, dict[str, Mistake]]:
    """{prompt id: {item id: the mistake}}, in minibatch order."""
    items = {item.id: item for item in batch}
    out: dict[str, dict[str, Mistake]] = {}
    for a in answered:
        out.setdefault(a["prompt"], {})
        if not a["correct"]:
            out[a["prompt"]][a["item"]] = task.mistake(a, items[a["item"]])
    return out


def write_gradients(cfg: SearchConfig, run: Stages, roles: Roles, task: Task, beam: list[dict], mistakes: dict,
                    r: int) -> list[dict]:
    """2. Textual gradients: for each group of a prompt's mistakes, ``gradients`` explanations of what is
    wrong with the prompt (records ``round-R-gradients``; text None for an empty reply)."""
    jobs = [(c, group) for c in beam
            for group in expansion.group_mistakes(list(mistakes[c["id"]].values()), cfg.errors_per_gradient,
                                                  cfg.error_groups, rng(cfg, "errors", r, c["id"]))]

    def compute() -> list[dict]:
        got = expansion.textual_gradients(roles.gradient, sampling(cfg, r),
                                          [(task.template(c), group) for c, group in jobs], cfg.gradients,
                                          task.wording)
        return [{"id": f"r{r}-g{i}.{k}", "parent": c["id"], "errors": [m.item for m in group], "text": text}
                for i, ((c, group), row) in enumerate(zip(jobs, got)) for k, text in enumerate(row)]

    inputs = {"model": roles.gradient, "sampling": sampling(cfg, r), "wording": wording_key(task.wording),
              "n": cfg.gradients, "jobs": [(c["text"], group) for c, group in jobs]}
    return run.run_stage(f"round-{r}-gradients", inputs, compute)


def write_edits(cfg: SearchConfig, run: Stages, roles: Roles, task: Task, beam: list[dict], mistakes: dict,
                gradients: list[dict], r: int) -> list[dict]:
    """3. Edits: the editor applies each gradient to its prompt (records ``round-R-edits``, each with its
    status: accepted, no_edit, unchanged, or the rule of the task's template it broke)."""
    parents = {c["id"]: c for c in beam}
    jobs = [(parents[g["parent"]], [mistakes[g["parent"]][i] for i in g["errors"]], g) for g in gradients if g["text"]]

    def compute() -> list[dict]:
        got = expansion.edits(roles.editor, sampling(cfg, r),
                              [(task.template(c), errors, g["text"]) for c, errors, g in jobs], cfg.edits_per_gradient,
                              task.wording)
        return [rewrite_record(task, c, rewrite, r, kind="edit", key=f"r{r}-e{i}.{k}", gradient=g["id"])
                for i, ((c, _, g), row) in enumerate(zip(jobs, got)) for k, rewrite in enumerate(row)]

    inputs = {"model": roles.editor, "sampling": sampling(cfg, r), "wording": wording_key(task.wording),
              "n": cfg.edits_per_gradient, "rules": task.rules,
              "jobs": [(c["text"], errors, g["text"], g["id"]) for c, errors, g in jobs]}
    return run.run_stage(f"round-{r}-edits", inputs, compute)


def write_paraphrases(cfg: SearchConfig, run: Stages, roles: Roles, task: Task, edits: list[dict],
                      r: int) -> list[dict]:
    """4. Monte-Carlo paraphrases of every accepted edit (records ``round-R-paraphrases``)."""
    sources = list(accepted_by_text(edits).values())

    def compute() -> list[dict]:
        if not cfg.paraphrases:
            return []
        got = expansion.paraphrases(roles.editor, sampling(cfg, r),
                                    [task.template(e) for e in sources], cfg.paraphrases)
        return [rewrite_record(task, e, rewrite, r, kind="paraphrase", key=f"r{r}-m{i}.{k}", gradient=e["gradient"],
                               parent=e["parent"], edit=e["key"])
                for i, (e, row) in enumerate(zip(sources, got)) for k, rewrite in enumerate(row)]

    inputs = {"model": roles.editor, "sampling": sampling(cfg, r), "wording": wording_key(task.wording),
              "n": cfg.paraphrases, "rules": task.rules, "sources": [(e["key"], e["text"]) for e in sources]}
    return run.run_stage(f"round-{r}-paraphrases", inputs, compute)


def paraphrase_beam(cfg: SearchConfig, run: Stages, roles: Roles, task: Task, beam: list[dict],
                    r: int) -> list[dict]:
    """The ablation's expansion: ``expansion`` paraphrases of every beam member, no minibatch, gradient or edit
    (records ``round-R-paraphrases``)."""
    def compute() -> list[dict]:
        got = expansion.paraphrases(roles.editor, sampling(cfg, r),
                                    [task.template(c) for c in beam], cfg.expansion)
        return [rewrite_record(task, c, rewrite, r, kind="paraphrase", key=f"r{r}-m{i}.{k}", gradient=None)
                for i, (c, row) in enumerate(zip(beam, got)) for k, rewrite in enumerate(row)]

    inputs = {"model": roles.editor, "sampling": sampling(cfg, r), "wording": wording_key(task.wording),
              "n": cfg.expansion, "rules": task.rules, "sources": [c["text"] for c in beam], "expand": cfg.expand}
    return run.run_stage(f"round-{r}-paraphrases", inputs, compute)


def rewrite_record(task: Task, source: dict, rewrite: expansion.Rewrite, r: int, kind: str, key: str,
                   gradient: str | None, parent: str | None = None, edit: str | None = None) -> dict:
    """An edit or paraphrase of ``source`` with its lineage (parent prompt, gradient, edit) and status; the
    model's reply is kept where it held no prompt, to show what was written instead."""
    text = rewrite.text
    return {"key": key, "id": prompt_id(text) if text else None, "text": text, "round": r, "kind": kind,
            "parent": parent or source["id"], "gradient": gradient, "edit": edit,
            "status": expansion.verdict(task.template(source), text), "reply": None if text else rewrite.reply}


def accepted_by_text(rewrites: list[dict]) -> dict[str, dict]:
    """The first accepted rewrite of each distinct text, in order."""
    first: dict[str, dict] = {}
    for x in rewrites:
        if x["status"] == expansion.ACCEPTED:
            first.setdefault(x["text"], x)
    return first


def gather_candidates(cfg: SearchConfig, run: Stages, beam: list[dict], edits: list[dict], paraphrases: list[dict],
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
def select_beam(cfg: SearchConfig, run: Stages, task: Task, candidates: list[dict],
                r: int) -> tuple[list[dict], list[dict]]:
    """6. The next beam, best first, chosen by the configured bandit under the query budget (records
    ``round-R-selection``: each candidate's rewards, mean, rank, queries and invalid answers)."""
    def compute() -> list[dict]:
        pulls = Pulls(cfg, task, candidates, r)
        chosen = select(cfg.selection, len(candidates), cfg.beam, cfg.budget // cfg.items_per_pull, pulls,
                        cfg.exploration)
        return [{"id": c["id"], "rank": chosen.ranking.index(i) + 1, "kept": i in chosen.kept,
                 "mean": chosen.mean(i), "rewards": chosen.rewards[i], "queries": pulls.queries[i],
                 "invalid": pulls.invalid[i]} for i, c in enumerate(candidates)]

    inputs = {"task": task.identity, "data": task.data_key, "candidates": [c["text"] for c in candidates],
              "selection": cfg.selection, "beam": cfg.beam, "budget": cfg.budget, "items_per_pull": cfg.items_per_pull,
              "exploration": cfg.exploration, "seed": cfg.seed}
    chosen = run.run_stage(f"round-{r}-selection", inputs, compute)
    kept = sorted((s for s in chosen if s["kept"]), key=lambda s: s["rank"])
    by_id = {c["id"]: c for c in candidates}
    return [by_id[s["id"]] for s in kept], chosen


class Pulls:
    """The bandit's pull: candidate a's j-th pull answers the j-th random draw of ``items_per_pull`` training
    items (the same draw for every candidate); its reward is the share answered right."""

    def __init__(self, cfg: SearchConfig, task: Task, candidates: list[dict], r: int):
        self.cfg, self.task, self.candidates, self.r = cfg, task, candidates, r
        self.pulled = [0] * len(candidates)
        self.queries = [0] * len(candidates)
        self.invalid = [0] * len(candidates)
        self._draws: list[list] = []

    def draw(self, j: int) -> list:
        while len(self._draws) <= j:
            k = min(self.cfg.items_per_pull, len(self.task.train))
            self._draws.append(rng(self.cfg, "pull", self.r, len(self._draws)).sample(self.task.train, k))
        return self._draws[j]

    def __call__(self, arms: list[int]) -> list[float]:
        jobs, owner = [], []
        for a in arms:
            for item in self.draw(self.pulled[a]):
                jobs.append((self.candidates[a], item))
                owner.append(a)
            self.pulled[a] += 1
        records = self.task.answer(jobs, f"round {self.r}: selection")
        right = {a: [] for a in arms}
        for a, rec in zip(owner, records):
            right[a].append(rec["correct"])
            self.invalid[a] += rec["answer"] is None
        for a in arms:
            self.queries[a] += len(right[a])
        return [sum(right[a]) / len(right[a]) for a in arms]


# ---- what a round did, for the protocols' summaries ------------------------------------------------
def train_reward(best: dict, chosen: Sequence[dict]) -> float | None:
    """The best prompt's mean bandit reward in the round's selection (None for the initial prompt)."""
    pick = next((s for s in chosen if s["id"] == best["id"]), None)
    return pick["mean"] if pick else None


def step_counts(grown: Expansion, rejections: Sequence[str]) -> dict:
    """How many candidates, gradients, edits and paraphrases a round made, and what became of the rewrites
    (``rejections``: the template's rules, each counted by name)."""
    rewrites = grown.edits + grown.paraphrases
    return {"candidates": len(grown.candidates),
            "gradients": sum(g["text"] is not None for g in grown.gradients),
            "empty_gradients": sum(g["text"] is None for g in grown.gradients),
            "edits": len(grown.edits), "paraphrases": len(grown.paraphrases),
            "accepted": sum(x["status"] == expansion.ACCEPTED for x in rewrites),
            "rejected": {why: sum(x["status"] == why for x in rewrites) for why in rejections},
            "no_edit": sum(x["status"] == expansion.NO_EDIT for x in rewrites),
            "unchanged": sum(x["status"] == expansion.UNCHANGED for x in rewrites)}


def search_invalid(grown: Expansion, chosen: Sequence[dict]) -> int:
    """Unreadable answers in the round's minibatch and selection."""
    return sum(a["answer"] is None for a in grown.answered) + sum(s["invalid"] for s in chosen)


def search_queries(grown: Expansion, chosen: Sequence[dict]) -> dict:
    """Task-model queries of the round's minibatch and selection."""
    return {"minibatch": len(grown.answered), "selection": sum(s["queries"] for s in chosen)}
