"""Judge template optimisation: the ProTeGi search (``referee.optimize.search``) on a pairwise judge's
template, for agreement with human labels. Beyond the paper, which optimises task prompts.

    split one labelled pair file into training and held-out pairs (a seeded hash of each pair's text)
    beam <- {the hand-written template's request: its ``user`` section}
    for each of `rounds` rounds:
        beam <- Select(Expand(beam)), on the training pairs
        the best of the new beam is scored on the held-out pairs
    write the last round's best as a template file, RUN/best_template.txt (``referee judge --template``)
    score always-longer, the hand-written template and the optimised one on the held-out pairs and on
        every other pair file given

Only the request (``user``) is edited: every other section (system message, verdict formats, the
multi-turn request, few-shot blocks) stays as the hand-written template has it, and every version keeps
the request's placeholders and ``{format}``, where the verdict format goes (``optimize.judge_prompt``).
The task model is the judge: a ``PairwiseJudge`` with the candidate template, its verdict read as the
probabilities of [[A]], [[B]], [[C]] (or parsed from its reply, ``verdict: generative``) in both orders,
combined by ``swap`` (average or conservative). A bandit pull's reward is the share of its training
pairs on which the judge chose what people chose; the gradient model is shown the pairs it got wrong:
the question, both answers, people's choice and the judge's.

Only pairs people labelled A or B count (human ties and unlabelled pairs are left out, and counted).
Accuracy counts a judge tie or an unreadable verdict as a miss, with a 95% bootstrap interval. Stages: the
search's, then ``initial-held-out`` and ``round-R-held-out``, ``longer-SET``, and ``initial-SET`` /
``final-SET`` for each other pair file SET (its file name, made unique).
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import Field

from referee import stats
from referee.audit.agreement import pairwise_agreement
from referee.draws import content_unit
from referee.errors import RefereeError
from referee.io import atomic_text
from referee.io.tables import source_name
from referee.judges.build import JudgeConfig
from referee.judges.rendering import chat_text
from referee.judges.pairwise import PairwiseJudge
from referee.judges.templates import PLACEHOLDER, PLACEHOLDERS, SECTION, Template, load_template, parse_template
from referee.models.base import Model
from referee.optimize.instructions import JUDGING, Mistake
from referee.optimize.judge_prompt import REJECTIONS, JudgePrompt, shown_pair
from referee.optimize.search import (NOTHING_GROWN, Expansion, SearchConfig, initial_record, load_roles,
                                     search_invalid, search_queries, search_round, step_counts, train_reward)
from referee.protocols import Result, register
from referee.runs import Run, fingerprint
from referee.supervisors import baseline_judge, llm_judge
from referee.tasks.pairs import Pair, load_pairs, shared_pairs

INPUTS = ("question", "answer_a", "answer_b", "examples", "reference")  # what the judge fills in a request
SHOWN = ("question", "answer_a", "answer_b")  # what every request must show
FOREIGN = tuple(f"{{{name}}}" for name in sorted(PLACEHOLDERS - {*INPUTS, "format"}))
HELD_OUT = "held-out"
JUDGES = ("always longer", "hand-written", "optimised")


class JudgeTemplateOptimizationConfig(SearchConfig):
    protocol: str = "judge_template_optimization"
    pairs: str  # labelled pairs (LLMBar or any format load_pairs reads), split into training and held-out
    held_out: float = Field(0.5, gt=0, lt=1)  # the share of those pairs held out
    other: list[str] = []  # more labelled pair files, to report agreement on
    template: str = "pairwise"  # the hand-written judge template: a shipped name or a .txt path
    swap: Literal["average", "conservative"] = "average"
    verdict: Literal["probability", "generative"] = "probability"
    shown_chars: int = Field(1500, ge=50, le=100_000)  # of each question and answer, in the gradient requests


Config = JudgeTemplateOptimizationConfig


@register("judge_template_optimization", JudgeTemplateOptimizationConfig,
          "ProTeGi on a pairwise judge's template: agreement with human labels, held out and on other pair files")
def run_judge_template_optimization(cfg: Config, run: Run) -> Result:
    data = load_data(cfg)
    base = load_template(cfg.template)
    slots = request_slots(base)
    initial = initial_record(base.sections["user"])
    beam = [initial]                                                             # B0 = {p0}
    roles = load_roles(cfg, run.model)
    task = Judging(cfg, base, slots, data, roles.task)
    held = [score(cfg, run, task, "initial-held-out", initial, data.held_out)]
    rounds = [round_summary(0, initial, held[0])]
    for r in range(1, cfg.rounds + 1):
        beam, grown, chosen = search_round(cfg, run, roles, task, beam, r)
        held.append(score(cfg, run, task, f"round-{r}-held-out", beam[0], data.held_out))
        rounds.append(round_summary(r, beam[0], held[-1], grown, chosen))
    best_file = write_best_template(run.folder / "best_template.txt", cfg, task, rounds)
    sets = {HELD_OUT: compared(cfg, run, HELD_OUT, data.held_out, held[0], held[-1])}
    for name, pairs in data.others.items():
        sets[name] = compared(cfg, run, name, pairs, score(cfg, run, task, f"initial-{name}", initial, pairs),
                              score(cfg, run, task, f"final-{name}", beam[0], pairs))
    metrics = {"judge_template_optimization": summary(cfg, base, data, rounds, sets, best_file)}
    run.save_metrics(metrics)
    return Result(metrics, [headline_row(name, s, judge) for name, s in sets.items() for judge in JUDGES],
                  f"Judge template {base.name} optimised on {len(data.train)} training pairs of {Path(cfg.pairs).name} "
                  f"(judge {cfg.task_model}, swap {cfg.swap}): accuracy with human labels, judge ties as misses, "
                  f"95% intervals")


# ---- data ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Data:
    train: list[Pair]
    held_out: list[Pair]
    others: dict[str, list[Pair]]  # set name -> its labelled pairs
    left_out: dict[str, int]  # file -> pairs without a human label A or B

    @property
    def key(self) -> str:
        return fingerprint({"train": self.train, "held_out": self.held_out})


def load_data(cfg: Config) -> Data:
    """The split file's labelled pairs, split by a seeded hash of their text; the other files' labelled pairs."""
    for path in cfg.other:
        if Path(path).resolve() == Path(cfg.pairs).resolve():
            raise RefereeError(f"setting 'other': {path} is the file being split; its held-out pairs are reported "
                               f"already")
    left_out: dict[str, int] = {}
    pairs = distinct_ids(labelled(cfg.pairs, left_out))
    held = [p for p in pairs if held_out_draw(p, cfg.seed) < cfg.held_out]
    train = [p for p in pairs if held_out_draw(p, cfg.seed) >= cfg.held_out]
    if not train or not held:
        raise RefereeError(f"{cfg.pairs}: holding out a share of {cfg.held_out} of its {len(pairs)} labelled pairs "
                           f"leaves {len(train)} for training and {len(held)} held out; give more pairs or another "
                           f"share")
    others = {name: labelled(path, left_out) for name, path in zip(set_names(cfg.other), cfg.other)}
    for path, pairs in zip(cfg.other, others.values()):
        _refuse_selection_pairs(path, train, pairs)
    return Data(train, held, others, left_out)


def _refuse_selection_pairs(path: str, train: list[Pair], pairs: list[Pair]) -> None:
    """The search selects templates on the training pairs; an 'other' file that shares pairs with them (the
    same question and answers, either order) would report a figure on selection data, so the run refuses."""
    shared = shared_pairs(train, pairs)
    if shared:
        raise RefereeError(f"setting 'other': {path} shares {len(shared)} pair(s) with the training pairs the "
                           f"template is chosen on (first: {shared[0]}); give a file without them")


def labelled(path: str, left_out: dict[str, int]) -> list[Pair]:
    """The pairs of a file that people labelled A or B (the rest counted in ``left_out``)."""
    pairs = load_pairs(path)
    kept = [p for p in pairs if p.label in ("A", "B")]
    if not kept:
        raise RefereeError(f"{path}: no pair has a human label A or B (1 or 2) for the judge to agree with")
    left_out[path] = len(pairs) - len(kept)
    return kept


def distinct_ids(pairs: list[Pair]) -> list[Pair]:
    """The pairs with ids made distinct (a file may repeat a question id for several answer pairs), so each
    training pair is one item of the search."""
    counts, seen = Counter(p.id for p in pairs), Counter()
    out = []
    for p in pairs:
        seen[p.id] += 1
        out.append(replace(p, id=f"{p.id}#{seen[p.id]}") if counts[p.id] > 1 else p)
    return out


def held_out_draw(pair: Pair, seed: int) -> float:
    """A number in [0, 1) from the seed and the pair's text: the same pair falls on the same side whatever
    its position or id, and identical pairs on the same side."""
    return content_unit(seed, pair.question, pair.answer_a, pair.answer_b)


def set_names(paths: list[str]) -> list[str]:
    """A name per other pair file for stages and the table: its file name, made unique."""
    names: list[str] = []
    for path in paths:
        stem, k = source_name(path), 1
        name = stem
        while name in names or name == HELD_OUT:
            k += 1
            name = f"{stem}-{k}"
        names.append(name)
    return names


# ---- the hand-written template ---------------------------------------------------------------------
def request_slots(base: Template) -> tuple[str, ...]:
    """The placeholders of the hand-written request that every version keeps, in their order; refused in one
    line when the request cannot serve a pairwise judge."""
    request = base.sections["user"]
    found = list(dict.fromkeys(f"{{{name}}}" for name in PLACEHOLDER.findall(request)))
    missing = [f"{{{name}}}" for name in SHOWN if f"{{{name}}}" not in found]
    if missing:
        raise RefereeError(f"template {base.source}: section 'user' has no {', '.join(missing)}; a pairwise judge's "
                           f"request shows the question and both answers ({{question}}, {{answer_a}}, {{answer_b}})")
    foreign = [name for name in found if name in FOREIGN]
    if foreign:
        raise RefereeError(f"template {base.source}: section 'user' uses {', '.join(foreign)}, which a pairwise "
                           f"judge cannot fill there")
    return tuple(name for name in found if name.strip("{}") in INPUTS)


def template_text(base: Template, request: str, comments: tuple[str, ...] = ()) -> str:
    """A judge template file: the sections of ``base``, with ``request`` as its ``user`` section."""
    lines = [f"# {c}" for c in comments]
    for name, text in {**base.sections, "user": request}.items():
        lines += [f"=== {name} ===", text]
    return "\n".join(lines) + "\n"


# ---- the task: judging pairs -----------------------------------------------------------------------
class Judging:
    """Judging pairs as the search's task: the judge, with a candidate request in the hand-written template,
    gives a verdict on each pair; it is right when it chose what people chose."""

    wording = JUDGING

    def __init__(self, cfg: Config, base: Template, slots: tuple[str, ...], data: Data, model: Model):
        self.cfg, self.base, self.slots = cfg, base, slots
        self.train = data.train
        self.judge = llm_judge(model, JudgeConfig(template=cfg.template, verdict=cfg.verdict, swap=cfg.swap,
                                                  seed=cfg.seed))
        self.identity = {"judge": model, "verdict": cfg.verdict, "swap": cfg.swap, "seed": cfg.seed,
                         "template": {k: v for k, v in base.sections.items() if k != "user"}}
        self.data_key = data.key
        self.rules = (slots, FOREIGN, SECTION.pattern)

    def template(self, candidate: dict) -> JudgePrompt:
        return JudgePrompt(candidate["text"], self.slots, FOREIGN, SECTION.pattern)

    def judge_with(self, candidate: dict) -> PairwiseJudge:
        """The judge with the candidate's request, its template read as the written file would be."""
        judge = copy.copy(self.judge)
        judge.template = parse_template(template_text(self.base, candidate["text"]), candidate["id"],
                                        f"candidate {candidate['id']}")
        return judge

    def answer(self, jobs: list[tuple[dict, Pair]], desc: str) -> list[dict]:
        """The judge's record of each (candidate, pair), with the verdict as the answer (None when
        unreadable) and whether people chose the same; one judging call per candidate."""
        by_candidate: dict[str, tuple[dict, list[int]]] = {}
        for i, (candidate, _) in enumerate(jobs):
            by_candidate.setdefault(candidate["id"], (candidate, []))[1].append(i)
        out: list = [None] * len(jobs)
        for candidate, rows in by_candidate.values():
            for i, rec in zip(rows, self.judge_with(candidate).judge_pairs([jobs[i][1] for i in rows])):
                winner = rec["winner"]
                out[i] = {"prompt": candidate["id"], "item": jobs[i][1].id, **rec,
                          "answer": None if winner == "invalid" else winner, "correct": winner == rec["label"]}
        return out

    def mistake(self, record: dict, pair: Pair) -> Mistake:
        return Mistake(pair.id, shown_pair(chat_text(pair.question), pair.answer_a, pair.answer_b,
                                           self.cfg.shown_chars), record["label"], record["answer"])


# ---- scoring ---------------------------------------------------------------------------------------
@dataclass
class Scored:
    """One judge's records on a set of pairs, and its agreement with people (``pairwise_agreement``)."""

    records: list[dict]
    agreement: dict


def score(cfg: Config, run: Run, task: Judging, name: str, candidate: dict, pairs: list[Pair]) -> Scored:
    """A candidate request's verdicts on ``pairs`` (records ``name``) and their agreement with people."""
    inputs = {"task": task.identity, "prompt": candidate["text"], "items": pairs}
    records = run.run_stage(name, inputs, lambda: task.answer([(candidate, p) for p in pairs], name))
    return Scored(records, agreement(cfg, records))


def score_longer(cfg: Config, run: Run, name: str, pairs: list[Pair]) -> Scored:
    """Always-longer's verdicts on ``pairs`` (records ``longer-NAME``)."""
    records = run.run_stage(f"longer-{name}", {"judge": "baseline:longer", "items": pairs},
                            lambda: baseline_judge("baseline:longer").judge_pairs(pairs))
    return Scored(records, agreement(cfg, records))


def agreement(cfg: Config, records: list[dict]) -> dict:
    return stats.jsonable(pairwise_agreement(records, n_boot=cfg.bootstrap, seed=cfg.seed))


def compared(cfg: Config, run: Run, name: str, pairs: list[Pair], initial: Scored, final: Scored) -> dict:
    """Always-longer, the hand-written template and the optimised one on one set of pairs."""
    judged = (score_longer(cfg, run, name, pairs), initial, final)
    return {"pairs": len(pairs), "judges": {judge: s.agreement for judge, s in zip(JUDGES, judged)}}


# ---- outputs ---------------------------------------------------------------------------------------
def write_best_template(path: Path, cfg: Config, task: Judging, rounds: list[dict]) -> Path:
    """The last round's best request in the hand-written template, as a file ``referee judge --template``
    reads (read back here to be sure)."""
    final, initial = rounds[-1], rounds[0]
    comments = (f"Judge template {task.base.source} with its request (section 'user') optimised",
                f"by ProTeGi for agreement with human labels on {len(task.train)} training pairs of {cfg.pairs}",
                f"(judge {cfg.task_model}, swap {cfg.swap}): round {final['round']}'s best, candidate {final['best']}.",
                f"Held-out accuracy {_shown(final['held_out_accuracy'])}; hand-written "
                f"{_shown(initial['held_out_accuracy'])}.")
    with atomic_text(path) as f:
        f.write(template_text(task.base, final["prompt"], comments))
    load_template(str(path))
    return path


def _shown(estimate: dict) -> str:
    return "n/a" if estimate["value"] is None else f"{estimate['value']:.3f}"


def round_summary(r: int, best: dict, held: Scored, grown: Expansion = NOTHING_GROWN, chosen: list[dict] = ()) -> dict:
    """A round's metrics: its best request and lineage, held-out agreement, and the counts of every step."""
    return {"round": r, "best": best["id"], "prompt": best["text"], "lineage": best,
            "held_out_accuracy": held.agreement["accuracy"], "held_out_judge_ties": held.agreement["judge_tie"],
            "held_out_invalid": held.agreement["invalid"], "train_reward": train_reward(best, chosen),
            **step_counts(grown, REJECTIONS),
            "invalid_answers": search_invalid(grown, chosen) + sum(x["answer"] is None for x in held.records),
            "queries": {**search_queries(grown, chosen), "held_out": len(held.records)}}


def summary(cfg: Config, base: Template, data: Data, rounds: list[dict], sets: dict, best_file: Path) -> dict:
    """The metrics: what was measured, the split, each round, and the three judges on every set."""
    return {"pairs": cfg.pairs, "template": base.source, "judge": cfg.task_model, "swap": cfg.swap,
            "verdict": cfg.verdict, "selection": cfg.selection,
            "split": {"seed": cfg.seed, "held_out_share": cfg.held_out, "train": len(data.train),
                      "held_out": len(data.held_out)},
            "left_out": data.left_out, "other": dict(zip(data.others, cfg.other)),
            "initial": rounds[0], "rounds": rounds[1:],
            "final": {"round": rounds[-1]["round"], "prompt": rounds[-1]["prompt"],
                      "held_out_accuracy": rounds[-1]["held_out_accuracy"]},
            "best_template": str(best_file), "sets": sets}


def headline_row(name: str, scored: dict, judge: str) -> dict:
    a = scored["judges"][judge]
    return {"set": name, "judge": judge, "pairs": scored["pairs"], "accuracy": a["accuracy"]["value"],
            "low": a["accuracy"]["low"], "high": a["accuracy"]["high"], "judge ties": a["judge_tie"]["value"],
            "invalid": a["invalid"]["value"]}
