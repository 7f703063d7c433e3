"""Best-of-N: sample N solutions per problem once, then compare ways of picking one.

1. **Sample.** ``n_max`` solutions per problem from the policy, through the model's ``generate`` with
   ``n=n_max`` (so every sample is cached and a rerun costs nothing). Each is checked against the gold
   answer; a solution with no extractable answer counts as wrong and is counted apart.
2. **Score.** Every configured verifier scores every sample: ORMs, reward models and any other
   ``PointwiseVerifier`` give one number; a PRM (anything with ``score_steps``) gives a probability per
   step, summarised as their product and their minimum. Unreadable scores are counted, never guessed.
3. **Select.** For N = 1, 2, 4, ... up to ``n_max``, each method picks one sample out of a subset of N:

   - ``random``: any one, uniformly (scored as the subset's fraction of right samples);
   - ``majority``: the most frequent final answer (samples without one do not vote);
   - ``V`` / ``V_product`` / ``V_min``: the sample the verifier V scores highest;
   - ``V_vote``: the answer with the largest total score (weighted vote; needs scores >= 0).

   Ties (between samples with equal top scores, or answers with equal votes) are broken uniformly at
   random, and the *expected* accuracy under that rule is what is counted: with two answers tied and one
   of them right, the problem scores 0.5. No rule that favours the first sample, or the right answer.
4. **Curves.** Each point is the accuracy averaged over problems and, per problem, over ``subsets``
   random subsets of size N drawn from the ``n_max`` samples (PRM800K's evaluation); when there are at
   most ``subsets`` distinct subsets, all of them are used and the point is exact. Intervals are
   percentile bootstraps over problems. The curves go to ``metrics.json`` and ``plots/best_of_n.png``.
5. **Active selection.** The "convincing wrong answers" - wrong final answer, high PRM score - go to
   ``records/convincing_wrong.jsonl`` in TRL's stepwise format with null labels, ready to be labelled
   (PRM800K chose what people labelled this way).

Verifiers are named in the config by kind: ``orm``, ``prm`` and ``rm`` load a trained verifier with
``referee.rewards.load_verifier(kind, path)``; ``exact`` is the programmatic answer check (an oracle:
its curve is pass@N); ``python`` calls ``factory: "module:function"`` (with ``path`` if given) for any
other verifier object.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field

from referee import progress
from referee.config import ProtocolConfig, SamplingConfig, StrictModel
from referee.errors import RefereeError
from referee.figures import save_figure
from referee.protocols import register
from referee.runs import Run
from referee.tasks.math import INSTRUCTION, MathProblem, StepwiseRecord, answers_match, extract_answer, gold_answer, split_steps

# ---- selection math (pure numpy; one problem at a time) --------------------------------------------


@dataclass
class ProblemSamples:
    """One problem's samples as arrays: right or not, final-answer ids (-1: none), verifier scores."""

    correct: np.ndarray  # (n,) bool
    answer_ids: np.ndarray  # (n,) int, -1 where the sample has no final answer
    answer_correct: np.ndarray  # (A,) bool: is answer id a the right one
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # (n,) float, nan where invalid

    @classmethod
    def build(cls, correct, answer_keys, scores=None) -> "ProblemSamples":
        keys = sorted({k for k in answer_keys if k is not None})
        index = {k: i for i, k in enumerate(keys)}
        ids = np.array([index[k] if k is not None else -1 for k in answer_keys], dtype=int)
        correct = np.asarray(correct, dtype=bool)
        ans_ok = np.zeros(len(keys), dtype=bool)
        for i, k in enumerate(answer_keys):
            if k is not None and correct[i]:
                ans_ok[index[k]] = True
        return cls(correct, ids, ans_ok, {k: np.asarray(v, dtype=float) for k, v in (scores or {}).items()})


def _tie_mean(values: np.ndarray, wins: np.ndarray) -> np.ndarray:
    """Expected value over the winners of each row (uniform tie-breaking); rows without winners give 0."""
    count = wins.sum(axis=1)
    total = (values * wins).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def select_random(p: ProblemSamples, idx: np.ndarray) -> np.ndarray:
    return p.correct[idx].mean(axis=1)


def select_best(p: ProblemSamples, idx: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The top-scored sample of each subset; invalid (nan) scores lose to any valid one."""
    s = np.where(np.isnan(scores[idx]), -np.inf, scores[idx])
    top = s.max(axis=1, keepdims=True)
    return _tie_mean(p.correct[idx].astype(float), s == top)


def select_vote(p: ProblemSamples, idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The answer with the most (weighted) votes in each subset; samples without an answer do not vote."""
    n_answers = len(p.answer_correct)
    if n_answers == 0:
        return np.zeros(len(idx))
    ids = p.answer_ids[idx]  # (S, N)
    w = np.ones(idx.shape) if weights is None else np.nan_to_num(weights[idx], nan=0.0)
    onehot = ids[:, :, None] == np.arange(n_answers)[None, None, :]  # (S, N, A)
    tally = (onehot * w[:, :, None]).sum(axis=1)  # (S, A)
    present = onehot.any(axis=1)
    tally = np.where(present, tally, -np.inf)
    top = tally.max(axis=1, keepdims=True)
    wins = present & (tally >= top - 1e-9)  # sums of float weights: equal up to rounding is a tie
    return _tie_mean(np.broadcast_to(p.answer_correct.astype(float), wins.shape), wins)


def subsets(n_max: int, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(S, n) sample indices: every n-subset when there are at most ``count`` of them, else ``count``
    uniformly random ones (each without repeats)."""
    if math.comb(n_max, n) <= count:
        return np.array(list(itertools.combinations(range(n_max), n)), dtype=int).reshape(-1, n)
    return rng.permuted(np.tile(np.arange(n_max), (count, 1)), axis=1)[:, :n]


def sizes(n_max: int) -> list[int]:
    """1, 2, 4, ... up to n_max (and n_max itself when it is not a power of two)."""
    out = [1 << i for i in range(n_max.bit_length()) if 1 << i <= n_max]
    return out if out[-1] == n_max else out + [n_max]


@dataclass(frozen=True)
class Method:
    """A way to pick: ``kind`` is random, majority, best or vote; ``score`` names the score array used."""

    name: str
    kind: str
    score: str | None = None

    def pick(self, p: ProblemSamples, idx: np.ndarray) -> np.ndarray:
        if self.kind == "random":
            return select_random(p, idx)
        if self.kind == "majority":
            return select_vote(p, idx)
        if self.kind == "best":
            return select_best(p, idx, p.scores[self.score])
        return select_vote(p, idx, p.scores[self.score])


def accuracy_curves(problems: list[ProblemSamples], methods: list[Method], n_subsets: int = 200,
                    n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """{method: {N: {"accuracy", "low", "high"}}}; the same subsets are used for every method."""
    if not problems:
        raise RefereeError("best-of-n: no problems to evaluate")
    n_max = len(problems[0].correct)
    if any(len(p.correct) != n_max for p in problems):
        raise RefereeError("best-of-n: every problem needs the same number of samples")
    rng = np.random.default_rng(seed)
    per = {m.name: {} for m in methods}
    for n in sizes(n_max):
        values = {m.name: np.empty(len(problems)) for m in methods}
        for i, p in enumerate(problems):
            idx = subsets(n_max, n, n_subsets, rng)
            for m in methods:
                values[m.name][i] = m.pick(p, idx).mean()
        for m in methods:
            per[m.name][n] = values[m.name]
    boot = np.random.default_rng(seed + 1).integers(0, len(problems), size=(n_boot, len(problems)))
    alpha = (1 - level) / 2
    out = {}
    for name, by_n in per.items():
        out[name] = {}
        for n, v in by_n.items():
            means = v[boot].mean(axis=1)
            lo, hi = np.quantile(means, [alpha, 1 - alpha])
            out[name][n] = {"accuracy": float(v.mean()), "low": float(lo), "high": float(hi)}
    return out


# ---- config ----------------------------------------------------------------------------------------
class VerifierSpec(StrictModel):
    kind: Literal["orm", "prm", "rm", "exact", "python"]
    path: str | None = None  # the trained verifier's folder (orm, prm, rm), or an argument for python
    factory: str | None = None  # "module:function" for kind python


class ArithmeticSettings(StrictModel):
    n: int = 50
    steps: int = 2
    max_number: int = 20
    max_factor: int = 3
    ops: list[str] = ["add", "sub", "mul", "div"]
    seed: int = 0


class ActiveSettings(StrictModel):
    verifier: str | None = None  # a prm verifier's name; default: the first prm
    top: int = Field(50, ge=1)
    per_problem: int = Field(1, ge=1)


class BestOfNConfig(ProtocolConfig):
    protocol: str = "best_of_n"
    model: str = "embedded"
    task: Literal["arithmetic", "gsm8k"] = "arithmetic"
    problems: str | None = None  # a problems file; for arithmetic, omit it to generate problems
    arithmetic: ArithmeticSettings = ArithmeticSettings()
    split: Literal["all", "train", "held_out"] = "all"
    held_out_fraction: float = Field(0.1, gt=0, lt=1)
    limit: int | None = Field(None, ge=1)
    instruction: str = INSTRUCTION
    n_max: int = Field(16, ge=1)
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, max_new_tokens=256)
    verifiers: dict[str, VerifierSpec] = {}
    methods: list[str] | None = None  # default: every method the verifiers allow
    subsets: int = Field(200, ge=1)
    bootstrap: int = Field(1000, ge=1)
    active: ActiveSettings = ActiveSettings()


# ---- the protocol ----------------------------------------------------------------------------------
def load_problems(config: BestOfNConfig) -> list[MathProblem]:
    if config.task == "gsm8k":
        from referee.tasks.gsm8k import load_gsm8k

        if not config.problems:
            raise RefereeError("best_of_n: setting 'problems' is required for task gsm8k (a GSM8K JSONL path)")
        problems = load_gsm8k(config.problems).problems
    elif config.problems:
        from referee.tasks.arithmetic import load_arithmetic

        problems = load_arithmetic(config.problems)
    else:
        from referee.tasks.arithmetic import Difficulty, generate_problems

        a = config.arithmetic
        problems = generate_problems(a.n, Difficulty(a.steps, a.max_number, a.max_factor, tuple(a.ops)), a.seed)
    if config.split != "all":
        from referee.tasks.gsm8k import split_held_out

        train, held = split_held_out(problems, config.held_out_fraction, config.seed)
        problems = held if config.split == "held_out" else train
    if config.limit is not None:
        problems = problems[:config.limit]
    if not problems:
        raise RefereeError("best_of_n: no problems left after the split and limit")
    return problems


def build_verifier(name: str, spec: VerifierSpec, problems: list[MathProblem], instruction: str):
    """The verifier object a config entry names (see the module doc for the kinds)."""
    if spec.kind == "exact":
        from referee.verifiers.programmatic import ExactAnswerVerifier

        return ExactAnswerVerifier({p.prompt(instruction): p.answer for p in problems})
    if spec.kind == "python":
        if not spec.factory or ":" not in spec.factory:
            raise RefereeError(f"best_of_n: verifier '{name}': kind python needs factory: 'module:function'")
        module, _, fn = spec.factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module), fn)
        except (ImportError, AttributeError) as e:
            raise RefereeError(f"best_of_n: verifier '{name}': cannot import {spec.factory} ({e})") from None
        return factory(spec.path) if spec.path else factory()
    if not spec.path:
        raise RefereeError(f"best_of_n: verifier '{name}': kind {spec.kind} needs 'path' (the trained verifier's folder)")
    try:
        from referee.rewards import load_verifier
    except ImportError:
        raise RefereeError(f"best_of_n: verifier '{name}': kind {spec.kind} needs referee.rewards.load_verifier, "
                           "which this installation does not have yet") from None
    return load_verifier(spec.kind, spec.path)


def is_prm(verifier) -> bool:
    return callable(getattr(verifier, "score_steps", None))


def score_samples(name: str, verifier, prompts: list, texts: list[str]) -> tuple[dict[str, list[float]], list | None]:
    """({score name: one float per sample (nan where invalid)}, per-step scores or None): ``name`` for
    pointwise verifiers, ``name_product`` / ``name_min`` (and the step scores) for PRMs. A PRM answer
    with the wrong number of step scores is invalid for that sample."""
    nan = float("nan")
    if is_prm(verifier):
        steps = [split_steps(t) for t in texts]
        todo = [i for i, s in enumerate(steps) if s]
        per_step = verifier.score_steps([prompts[i] for i in todo], [steps[i] for i in todo]) if todo else []
        if len(per_step) != len(todo):
            raise RefereeError(f"best_of_n: verifier '{name}' returned step scores for {len(per_step)} of "
                               f"{len(todo)} solutions")
        product, minimum = [nan] * len(texts), [nan] * len(texts)
        for i, probs in zip(todo, per_step):
            vals = [float(x) for x in probs]
            if len(vals) == len(steps[i]) and vals and all(math.isfinite(x) for x in vals):
                product[i], minimum[i] = math.prod(vals), min(vals)
        step_scores: list = [None] * len(texts)
        for i, probs in zip(todo, per_step):
            step_scores[i] = [float(x) for x in probs]
        return {f"{name}_product": product, f"{name}_min": minimum}, step_scores
    scores = verifier.score_many(prompts, texts)
    if len(scores) != len(texts):
        raise RefereeError(f"best_of_n: verifier '{name}' returned {len(scores)} scores for {len(texts)} samples")
    return {name: [float(s.value) if s.valid and s.value is not None and math.isfinite(s.value) else nan
                   for s in scores]}, None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else x


def _scores_from_earlier_run(run: Run, name: str, spec: VerifierSpec, samples: list[dict]):
    """The scores a previous run in this folder stored for the very same verifier and samples, or (None, None).

    Scoring with a trained verifier is the slow part of a rerun (samples come from the model cache)."""
    stage = f"scores-{name}"
    if not run.stage_done(stage):
        return None, None
    rows = run.read_records(stage)
    same = len(rows) == len(samples) and all(
        r.get("verifier") == spec.model_dump() and r["id"] == s["id"] and r["sample"] == s["sample"]
        and r.get("text_sha") == _sha(s["completion"]) for r, s in zip(rows, samples))
    if not same:
        return None, None
    keys = [k for k in rows[0] if k not in ("id", "sample", "text_sha", "verifier", "steps")]
    got = {k: [float("nan") if r[k] is None else float(r[k]) for r in rows] for k in keys}
    steps = [r["steps"] for r in rows] if "steps" in rows[0] else None
    progress.say(f"best_of_n: scores of verifier '{name}' read back from {run.records_path(stage)}")
    return got, steps


def available_methods(score_names: dict[str, list[str]], nonnegative: dict[str, bool]) -> list[Method]:
    """Every method the scores allow. ``score_names`` maps a verifier to its score arrays."""
    methods = [Method("random", "random"), Method("majority", "majority")]
    for verifier, names in score_names.items():
        for s in names:
            methods.append(Method(s, "best", s))
        vote_on = names[0]
        if nonnegative[vote_on]:
            methods.append(Method(f"{verifier}_vote", "vote", vote_on))
    return methods


@register("best_of_n", BestOfNConfig, "sample N solutions, pick by verifiers / votes; accuracy-vs-N curves")
def run_best_of_n(config: BestOfNConfig, run: Run) -> dict:
    problems = load_problems(config)
    prompts = [p.prompt(config.instruction) for p in problems]
    chats = [p.chat(config.instruction) for p in problems]
    golds = [gold_answer(p.answer) for p in problems]

    # 1. sample
    model = run.model(config.model)
    with run.stage("sample"):
        outputs = model.generate(chats, config.sampling.to_sampling(config.seed), n=config.n_max, desc="sample")
    samples = []
    for i, (p, gold, outs) in enumerate(zip(problems, golds, outputs)):
        for j, c in enumerate(outs):
            found = extract_answer(c.text)
            ok = answers_match(found, gold)
            samples.append({"id": p.id, "sample": j, "prompt": prompts[i],
                            "completion": c.text, "extracted": found.text,
                            "answer_key": found.key(), "answer": p.answer, "correct": ok,
                            "status": "correct" if ok else ("wrong" if found.found else "no_answer"),
                            "finish_reason": c.finish_reason})
    run.write_records("samples", samples)

    # 2. score
    score_names: dict[str, list[str]] = {}
    all_scores: dict[str, list[float]] = {}
    verifiers = {}
    step_scores: dict[str, list] = {}
    flat_prompts = [prompts[i] for i in range(len(problems)) for _ in range(config.n_max)]
    flat_texts = [s["completion"] for s in samples]
    for name, spec in config.verifiers.items():
        verifiers[name] = build_verifier(name, spec, problems, config.instruction)
        got, steps = _scores_from_earlier_run(run, name, spec, samples)
        if got is None:
            with run.stage(f"score-{name}"):
                got, steps = score_samples(name, verifiers[name], flat_prompts, flat_texts)
            run.write_records(f"scores-{name}", [
                {"id": s["id"], "sample": s["sample"], "text_sha": _sha(s["completion"]),
                 "verifier": spec.model_dump(), **{k: _none_if_nan(v[i]) for k, v in got.items()},
                 **({"steps": steps[i]} if steps is not None else {})} for i, s in enumerate(samples)])
        if steps is not None:
            step_scores[name] = steps
        score_names[name] = list(got)
        all_scores.update(got)

    # 3-4. select and draw the curves
    nonneg = {k: bool(np.all(np.nan_to_num(np.asarray(v), nan=0.0) >= 0)) for k, v in all_scores.items()}
    methods = available_methods(score_names, nonneg)
    if config.methods is not None:
        known = {m.name: m for m in methods}
        for name in config.methods:
            if name not in known:
                extra = "" if not name.endswith("_vote") else " (a weighted vote needs non-negative scores)"
                raise RefereeError(f"best_of_n: setting 'methods': unknown method {name!r}{extra}; "
                                   f"available: {', '.join(known)}")
        methods = [known[n] for n in config.methods]
    per_problem = []
    for i in range(len(problems)):
        rows = samples[i * config.n_max:(i + 1) * config.n_max]
        sl = slice(i * config.n_max, (i + 1) * config.n_max)
        per_problem.append(ProblemSamples.build([r["correct"] for r in rows], [r["answer_key"] for r in rows],
                                                {k: v[sl] for k, v in all_scores.items()}))
    with run.stage("curves"):
        curves = accuracy_curves(per_problem, methods, config.subsets, config.bootstrap, config.seed)
    plot_curves(curves, run.plot_path("best_of_n.png"),
                f"best-of-N on {config.task} ({len(problems)} problems, {config.model})")

    n_samples = len(samples)
    metrics = {"best_of_n": {
        "task": config.task, "problems": len(problems), "n_max": config.n_max, "samples": n_samples,
        "sample_accuracy": sum(s["correct"] for s in samples) / n_samples,
        "no_answer_samples": sum(s["status"] == "no_answer" for s in samples),
        "wrong_samples": sum(s["status"] == "wrong" for s in samples),
        "invalid_scores": {k: int(np.isnan(np.asarray(v)).sum()) for k, v in all_scores.items()},
        "subsets": config.subsets, "tie_break": "uniform at random (expected accuracy)",
        "curves": {m: {str(n): v for n, v in c.items()} for m, c in curves.items()},
    }}

    # 5. active selection
    active = export_convincing_wrong(config, run, problems, samples, all_scores, step_scores, verifiers)
    if active is not None:
        metrics["best_of_n"]["convincing_wrong"] = active
    run.save_metrics(metrics)
    return metrics


def export_convincing_wrong(config: BestOfNConfig, run: Run, problems: list[MathProblem], samples: list[dict],
                            all_scores: dict, step_scores: dict, verifiers: dict) -> dict | None:
    """Wrong-answer samples the PRM likes best, as unlabelled stepwise records; None if no PRM is set."""
    name = config.active.verifier or next((n for n, v in verifiers.items() if is_prm(v)), None)
    if name is None:
        return None
    if name not in verifiers:
        raise RefereeError(f"best_of_n: setting 'active.verifier': no verifier named {name!r}")
    key = f"{name}_product" if is_prm(verifiers[name]) else name
    scores = all_scores[key]
    by_id = {p.id: p for p in problems}
    wrong = [i for i, s in enumerate(samples) if s["status"] == "wrong" and not math.isnan(scores[i])]
    wrong.sort(key=lambda i: -scores[i])
    taken: dict[str, int] = {}
    records = []
    for i in wrong:
        s = samples[i]
        if taken.get(s["id"], 0) >= config.active.per_problem:
            continue
        taken[s["id"]] = taken.get(s["id"], 0) + 1
        p = by_id[s["id"]]
        steps = split_steps(s["completion"])
        extra = {"id": s["id"], "sample": s["sample"], "extracted": s["extracted"], "answer": s["answer"],
                 "score": scores[i], "verifier": name}
        if name in step_scores:
            extra["step_scores"] = step_scores[name][i]
        if "values" in p.meta:  # synthetic arithmetic: the exact labels, for checking the PRM
            from referee.tasks.arithmetic import check_solution

            check = check_solution(p, steps)
            extra["exact_labels"] = [v.ok for v in check.steps]
            extra["exact_first_error"] = check.first_error
        records.append(StepwiseRecord(p.prompt(config.instruction), steps, [None] * len(steps), extra))
        if len(records) >= config.active.top:
            break
    run.write_records("convincing_wrong", [r.to_record() for r in records])
    progress.say(f"best_of_n: {len(records)} convincing wrong answers in {run.records_path('convincing_wrong')}")
    return {"verifier": name, "exported": len(records), "candidates": len(wrong)}


def plot_curves(curves: dict, path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, by_n in curves.items():
        ns = sorted(by_n)
        acc = [by_n[n]["accuracy"] for n in ns]
        ax.plot(ns, acc, marker="o", label=name)
        ax.fill_between(ns, [by_n[n]["low"] for n in ns], [by_n[n]["high"] for n in ns], alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (samples per problem)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=120)
