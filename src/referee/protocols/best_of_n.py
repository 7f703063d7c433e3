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
   percentile bootstraps over problems. The curves go to ``metrics.json``; the report
   (``referee.reports.best_of_n``) draws them as ``plots/best_of_n.png``.
5. **Active selection.** The "convincing wrong answers" - wrong final answer, high PRM score - go to
   ``records/convincing_wrong.jsonl`` in TRL's stepwise format with null labels, ready to be labelled
   (PRM800K chose what people labelled this way).

Steps 1, 2 (one stage per verifier) and 5 are stages of the run, named after their records
(``samples``, ``scores-NAME``, ``convincing_wrong``): a rerun in the same folder reads back each one
whose inputs did not change, and recomputes the others and everything after them. The selection rules and
the curves are ``referee.verifiers.selection``; a verifier's scores of the samples, ``referee.verifiers.sample_scores``.

Verifiers are named in the config by kind: ``orm``, ``prm`` and ``rm`` load a trained verifier with
``referee.supervisors`` (the spec ``KIND:PATH``); ``judge`` and ``judge-additive`` grade with an LLM judge
on the model spec in ``path`` (1-10 or additive 0-5 rubric, probability verdicts); ``exact`` is the
programmatic answer check (an oracle: its curve is pass@N); ``python`` calls ``factory: "module:function"``
(with ``path`` if given; the spec ``python:MODULE:FUNCTION@PATH``) for any other verifier object.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from referee import progress, supervisors
from referee.config import MAX_PROMPTS, MAX_RESAMPLES, MAX_SAMPLES, ProtocolConfig, SamplingConfig, StrictModel
from referee.errors import RefereeError
from referee.io import file_sha256
from referee.models.fingerprints import weights_fingerprint
from referee.protocols import Result, register
from referee.runs import Run
from referee.tasks.math import INSTRUCTION, MathProblem, StepwiseRecord, answers_match, extract_answer, gold_answer, split_steps
from referee.verifiers.sample_scores import VerifierScores, score_samples
from referee.verifiers.selection import Method, ProblemSamples, accuracy_curves
from referee.verifiers.selection import sizes, subsets  # noqa: F401  (still importable from here)


# ---- config ----------------------------------------------------------------------------------------
class VerifierSpec(StrictModel):
    kind: Literal["orm", "prm", "rm", "exact", "judge", "judge-additive", "python"]
    path: str | None = None  # the trained verifier's folder (orm, prm, rm), the judge's model spec (judge,
    #                          judge-additive: an LLM grading judge), or an argument for python
    factory: str | None = None  # "module:function" for kind python


class ArithmeticSettings(StrictModel):
    n: int = Field(50, le=MAX_PROMPTS)
    steps: int = 2
    max_number: int = 20
    max_factor: int = 3
    ops: list[str] = ["add", "sub", "mul", "div"]
    seed: int = 0


class ActiveSettings(StrictModel):
    verifier: str | None = None  # a prm verifier's name; default: the first prm
    top: int = Field(50, ge=1, le=MAX_PROMPTS)
    per_problem: int = Field(1, ge=1, le=MAX_SAMPLES)


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
    n_max: int = Field(16, ge=1, le=MAX_SAMPLES)
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, max_new_tokens=256)
    verifiers: dict[str, VerifierSpec] = {}
    methods: list[str] | None = None  # default: every method the verifiers allow
    subsets: int = Field(200, ge=1, le=MAX_RESAMPLES)
    bootstrap: int = Field(1000, ge=1, le=MAX_RESAMPLES)
    active: ActiveSettings = ActiveSettings()


# ---- the protocol ----------------------------------------------------------------------------------
@register("best_of_n", BestOfNConfig, "sample N solutions, pick by verifiers / votes; accuracy-vs-N curves")
def run_best_of_n(config: BestOfNConfig, run: Run) -> Result:
    """The steps of the module docstring, one line each."""
    problems = load_problems(config)
    samples = sample(config, run, problems)                                   # 1. sample
    scores = {name: score(config, run, name, spec, problems, samples)        # 2. score
              for name, spec in config.verifiers.items()}
    methods = chosen_methods(config, scores)                                  # 3. select
    curves = accuracy_vs_n(config, run, samples, scores, methods)             # 4. curves
    active = export_convincing_wrong(config, run, problems, samples, scores)  # 5. active selection
    metrics = {"best_of_n": summary(config, problems, samples, scores, curves, active)}
    run.save_metrics(metrics)
    return Result(metrics, headline(curves, config.n_max),
                  f"best-of-N accuracy on {config.task} ({len(problems)} problems, {config.model}), 95% intervals")


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


# ---- 1. sample -------------------------------------------------------------------------------------
def sample(config: BestOfNConfig, run: Run, problems: list[MathProblem]) -> list[dict]:
    """``n_max`` checked samples per problem, problem by problem (records ``samples``)."""
    model = run.model(config.model)
    chats = [p.chat(config.instruction) for p in problems]

    def compute() -> list[dict]:
        outputs = model.generate(chats, config.sampling.to_sampling(config.seed), n=config.n_max, desc="sample")
        return [checked_sample(p, config.instruction, j, c) for p, outs in zip(problems, outputs)
                for j, c in enumerate(outs)]

    inputs = {"policy": model, "chats": chats, "problems": [(p.id, p.answer) for p in problems],
              "sampling": config.sampling, "n_max": config.n_max, "seed": config.seed}
    return run.run_stage("samples", inputs, compute)


def checked_sample(problem: MathProblem, instruction: str, index: int, completion) -> dict:
    """One sample's record: its text, its final answer, and whether that answer is the gold one."""
    found = extract_answer(completion.text)
    ok = answers_match(found, gold_answer(problem.answer))
    return {"id": problem.id, "sample": index, "prompt": problem.prompt(instruction),
            "completion": completion.text, "extracted": found.text,
            "answer_key": found.key(), "answer": problem.answer, "correct": ok,
            "status": "correct" if ok else ("wrong" if found.found else "no_answer"),
            "finish_reason": completion.finish_reason}


# ---- 2. score --------------------------------------------------------------------------------------
def build_verifier(name: str, spec: VerifierSpec, problems: list[MathProblem], instruction: str, load_model=None):
    """The verifier object a config entry names (see the module doc for the kinds), built by the one
    factory (``referee.supervisors``) from the entry's spec string."""
    if spec.kind == "python":
        if not spec.factory or ":" not in spec.factory:
            raise RefereeError(f"best_of_n: verifier '{name}': kind python needs factory: 'module:function'")
        return supervisors.build_verifier(f"python:{spec.factory}" + (f"@{spec.path}" if spec.path else ""))
    if spec.kind == "exact":
        return supervisors.build_verifier("exact", {p.prompt(instruction): p.answer for p in problems})
    if not spec.path:
        what = "the judge's model spec" if spec.kind.startswith("judge") else "the trained verifier's folder"
        raise RefereeError(f"best_of_n: verifier '{name}': kind {spec.kind} needs 'path' ({what})")
    return supervisors.build_verifier(f"{spec.kind}:{spec.path}", load_model=load_model)


def verifier_weights(spec: VerifierSpec, load_model) -> str | None:
    """The fingerprint of the verifier's folder (a trained verifier's head, adapter and config) or of a
    judge's model, so a verifier retrained in place is scored again; None for a verifier with neither."""
    if spec.kind.startswith("judge") and spec.path:
        return load_model(spec.path).fingerprint
    if spec.path and Path(spec.path).is_file():  # a python factory's data file
        return file_sha256(spec.path)
    return weights_fingerprint(spec.path) if spec.path and Path(spec.path).is_dir() else None


def score(config: BestOfNConfig, run: Run, name: str, spec: VerifierSpec, problems: list[MathProblem],
          samples: list[dict]) -> VerifierScores:
    """One verifier's scores of every sample (records ``scores-NAME``). The verifier is only loaded when
    the scores have to be computed: a trained one is the slow part of a rerun."""
    def compute() -> list[dict]:
        verifier = build_verifier(name, spec, problems, config.instruction, run.model)
        arrays, steps = score_samples(name, verifier, [s["prompt"] for s in samples],
                                      [s["completion"] for s in samples])
        return [{"id": s["id"], "sample": s["sample"], "text_sha": _sha(s["completion"]),
                 "verifier": spec.model_dump(), **{k: _none_if_nan(v[i]) for k, v in arrays.items()},
                 **({"steps": steps[i]} if steps is not None else {})} for i, s in enumerate(samples)]

    inputs = {"verifier": spec, "weights": verifier_weights(spec, run.model),
              "samples": [(s["id"], s["sample"], s["prompt"], s["completion"], s["answer"]) for s in samples]}
    return VerifierScores.from_records(run.run_stage(f"scores-{name}", inputs, compute))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else x


# ---- 3. select, 4. curves --------------------------------------------------------------------------
def available_methods(scores: dict[str, VerifierScores]) -> list[Method]:
    """Every method the scores allow: a weighted vote only on scores that are never negative."""
    methods = [Method("random", "random"), Method("majority", "majority")]
    for verifier, got in scores.items():
        methods += [Method(s, "best", s) for s in got.arrays]
        if all(not x < 0 for x in got.arrays[got.ranking]):  # nan (invalid) counts as no vote
            methods.append(Method(f"{verifier}_vote", "vote", got.ranking))
    return methods


def chosen_methods(config: BestOfNConfig, scores: dict[str, VerifierScores]) -> list[Method]:
    """The methods setting, checked against what the scores allow (default: all of them)."""
    methods = available_methods(scores)
    if config.methods is None:
        return methods
    known = {m.name: m for m in methods}
    for name in config.methods:
        if name not in known:
            extra = "" if not name.endswith("_vote") else " (a weighted vote needs non-negative scores)"
            raise RefereeError(f"best_of_n: setting 'methods': unknown method {name!r}{extra}; "
                               f"available: {', '.join(known)}")
    return [known[n] for n in config.methods]


def accuracy_vs_n(config: BestOfNConfig, run: Run, samples: list[dict], scores: dict[str, VerifierScores],
                  methods: list[Method]) -> dict:
    """The curves of every method: {method: {N: {"accuracy", "low", "high"}}}."""
    with run.stage("curves"):
        return accuracy_curves(per_problem(samples, scores, config.n_max), methods, config.subsets,
                               config.bootstrap, config.seed)


def all_score_arrays(scores: dict[str, VerifierScores]) -> dict[str, list[float]]:
    return {k: v for got in scores.values() for k, v in got.arrays.items()}


def per_problem(samples: list[dict], scores: dict[str, VerifierScores], n_max: int) -> list[ProblemSamples]:
    """The samples (``n_max`` per problem, in order) and their scores as one ``ProblemSamples`` per problem."""
    arrays = all_score_arrays(scores)
    out = []
    for start in range(0, len(samples), n_max):
        rows, sl = samples[start:start + n_max], slice(start, start + n_max)
        out.append(ProblemSamples.build([r["correct"] for r in rows], [r["answer_key"] for r in rows],
                                        {k: v[sl] for k, v in arrays.items()}))
    return out


def summary(config: BestOfNConfig, problems: list[MathProblem], samples: list[dict],
            scores: dict[str, VerifierScores], curves: dict, active: dict | None) -> dict:
    """The metrics of a run: what was sampled, how much could not be read, the curves, what was exported."""
    n = len(samples)
    return {
        "task": config.task, "problems": len(problems), "n_max": config.n_max, "samples": n,
        "sample_accuracy": sum(s["correct"] for s in samples) / n,
        "no_answer_samples": sum(s["status"] == "no_answer" for s in samples),
        "wrong_samples": sum(s["status"] == "wrong" for s in samples),
        "invalid_scores": {k: int(np.isnan(np.asarray(v)).sum()) for k, v in all_score_arrays(scores).items()},
        "subsets": config.subsets, "tie_break": "uniform at random (expected accuracy)",
        "curves": {m: {str(size): v for size, v in c.items()} for m, c in curves.items()},
        **({"convincing_wrong": active} if active is not None else {}),
    }


def headline(curves: dict, n_max: int) -> list[dict]:
    """One row per method: accuracy and its interval with one sample, and with all ``n_max``."""
    rows = []
    for method, by_n in curves.items():
        row = {"method": method}
        for size in dict.fromkeys((1, n_max)):
            point = by_n[size]
            row.update({f"N={size}": point["accuracy"], f"N={size} low": point["low"],
                        f"N={size} high": point["high"]})
        rows.append(row)
    return rows


# ---- 5. active selection ---------------------------------------------------------------------------
def export_convincing_wrong(config: BestOfNConfig, run: Run, problems: list[MathProblem], samples: list[dict],
                            scores: dict[str, VerifierScores]) -> dict | None:
    """Wrong-answer samples the PRM likes best, as unlabelled stepwise records (records
    ``convincing_wrong``); None if no PRM is set."""
    name = config.active.verifier or next((n for n, got in scores.items() if got.stepwise), None)
    if name is None:
        return None
    if name not in scores:
        raise RefereeError(f"best_of_n: setting 'active.verifier': no verifier named {name!r}")
    chosen = scores[name]
    ranking = chosen.arrays[chosen.ranking]
    wrong = [i for i, s in enumerate(samples) if s["status"] == "wrong" and not math.isnan(ranking[i])]
    wrong.sort(key=lambda i: -ranking[i])

    def compute() -> list[dict]:
        return [r.to_record() for r in convincing_wrong(config, problems, samples, wrong, ranking, name,
                                                         chosen.steps)]

    inputs = {"active": config.active, "verifier": name, "instruction": config.instruction,
              "problems": problems, "samples": samples, "scores": ranking, "steps": chosen.steps}
    records = run.run_stage("convincing_wrong", inputs, compute)
    progress.say(f"best_of_n: {len(records)} convincing wrong answers in {run.records_path('convincing_wrong')}")
    return {"verifier": name, "exported": len(records), "candidates": len(wrong)}


def convincing_wrong(config: BestOfNConfig, problems: list[MathProblem], samples: list[dict], wrong: list[int],
                     ranking: list[float], name: str, step_scores: list | None) -> list[StepwiseRecord]:
    """The best-ranked ``wrong`` samples, at most ``per_problem`` per problem and ``top`` in all."""
    by_id = {p.id: p for p in problems}
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
                 "score": ranking[i], "verifier": name}
        if step_scores is not None:
            extra["step_scores"] = step_scores[i]
        if "values" in p.meta:  # synthetic arithmetic: the exact labels, for checking the PRM
            from referee.tasks.arithmetic import check_solution

            check = check_solution(p, steps)
            extra["exact_labels"] = [v.ok for v in check.steps]
            extra["exact_first_error"] = check.first_error
        records.append(StepwiseRecord(p.prompt(config.instruction), steps, [None] * len(steps), extra))
        if len(records) >= config.active.top:
            break
    return records
