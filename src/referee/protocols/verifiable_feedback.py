"""Does feedback improve a model? One self-rewarding iteration on problems an exact checker can grade,
in arms that differ only in who judges the candidates the DPO pairs are made from.

    problems = synthetic arithmetic (referee.tasks.arithmetic), four disjoint sets from one seed:
               SFT demonstrations, EFT gradings, pair prompts, held-out evaluation
    M1 = M0 fine-tuned on reference solutions (IFT) and on gradings of solutions (EFT: the 0-5 grade of a
         reference or a deliberately corrupted solution, given by the step checker, as the target)
    M1 samples K candidates for every pair prompt (once: all arms share them)
    for each arm, a judge grades every candidate:
        self      M1 itself, its 0-5 grade read as probabilities (the self-rewarding paper's judge)
        checker   the exact step checker's 0-5 grade (a perfect verifier: the upper bound)
        verifier  an outcome reward model (frozen backbone, linear head) trained on M1's checked
                  candidates, two folds split by problem: no candidate is scored by a head that saw it
        pairs = the widest-margin (chosen, rejected) pairs of each prompt under that judge (ties skipped)
        M2[arm] = DPO(M1, pairs), M1 as the reference
    every model answers the held-out problems (greedy); the exact checker grades them.

What is reported: each model's held-out accuracy and the change against M1 with a paired bootstrap
interval (the same problems for every model); how far each arm's judge agrees with the checker on the
candidates (AUC of its scores for right against wrong) and how often its chosen answer is really the
better one (a higher checker grade); answer length and step count; the cost ledger.

Each step is a stage of the run (``referee.runs``): killed and started again, the run reads finished
stages back. Checkpoints are stages too. The problem sets and the checker's verdict are in
``referee.feedback.arithmetic``, the measurements in ``referee.feedback.checker_metrics``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from referee.config import MAX_PROMPTS, MAX_SAMPLES, ProtocolConfig, SamplingConfig, StrictModel
from referee.draws import seeded_unit
from referee.errors import RefereeError
from referee.feedback.arithmetic import ANSWER_RULE, ArithmeticSettings, checked, distinct_problem_sets
from referee.feedback.checker_metrics import (candidate_summary, counts, judge_agreement, model_summaries,
                                              pair_quality)
from referee.feedback.eft import eft_examples, grading_conversations
from referee.feedback.preference_pairs import top_pairs
from referee.judges.build import JudgeConfig
from referee.models.base import Sampling
from referee.protocols import Result, register, stages
from referee.runs import Run
from referee.supervisors import llm_judge
from referee.tasks.arithmetic import sft_records
from referee.tasks.math import MathProblem
from referee.trainers import TrainSettings

ARMS = ("self", "checker", "verifier")
SETS = ("eval", "sft", "eft", "pairs")  # drawn in this order: the held-out set never depends on the others


class VerifierSettings(StrictModel):
    base: str | None = None  # the reward model's backbone; default: M0
    epochs: int = Field(30, ge=1)
    lr: float = Field(1e-2, gt=0)
    folds: int = Field(2, ge=2, le=10)


class VerifiableFeedbackConfig(ProtocolConfig):
    protocol: str = "verifiable_feedback"
    model: str = "embedded"  # M0
    task: ArithmeticSettings = ArithmeticSettings()
    sft_problems: int = Field(96, ge=1, le=MAX_PROMPTS)
    eft_problems: int = Field(24, ge=0, le=MAX_PROMPTS)
    pair_problems: int = Field(96, ge=2, le=MAX_PROMPTS)
    eval_problems: int = Field(128, ge=2, le=MAX_PROMPTS)
    # Which held-out problems are scored: "dev", the seed's own held-out set, for choosing recipes and
    # settings; "test", problems from a namespace no tuning touches, for a reported figure. The training
    # sets are the same either way, so a test run reuses a dev run's cache up to the evaluations.
    evaluate_on: Literal["dev", "test"] = "dev"
    candidates: int = Field(8, ge=2, le=MAX_SAMPLES)
    pairs_per_prompt: int = Field(2, ge=1, le=MAX_SAMPLES)
    arms: list[Literal["self", "checker", "verifier"]] = list(ARMS)
    judge_template: str = "steps_0to5"
    # At 0.7 the wrong candidates are mistakes M1 is likely to make; at 1.0 many were ones it seldom makes.
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=1.0, max_new_tokens=64)
    eval_max_new_tokens: int = Field(64, ge=1)
    # Demonstrations are short and gradings long: batches of similar length waste less on padding. Two
    # accumulated batches of 4 train as one of 8 and keep the quick start's peak memory under 6 GB.
    sft: TrainSettings = TrainSettings(learning_rate=1e-3, epochs=1, batch_size=4, gradient_accumulation=2,
                                       max_length=384, trl={"train_sampling_strategy": "group_by_length"})
    # DPO plus an NLL term on the chosen answer (iterative reasoning preference optimisation, Pang et al. 2024).
    dpo: TrainSettings = TrainSettings(learning_rate=5e-4, epochs=1, batch_size=4, max_length=256,
                                       trl={"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0]})
    dpo_beta: float = Field(0.1, gt=0)
    verifier: VerifierSettings = VerifierSettings()


@register("verifiable_feedback", VerifiableFeedbackConfig,
          "Self-rewarding on arithmetic: self-judge vs exact checker vs trained verifier, scored by the checker")
def run_verifiable_feedback(cfg: VerifiableFeedbackConfig, run: Run) -> Result:
    if not cfg.arms or len(set(cfg.arms)) != len(cfg.arms):
        raise RefereeError("verifiable_feedback: 'arms' should name each of self, checker, verifier at most once, "
                           "and at least one")
    problems = _problem_sets(run, cfg)
    evaluate = {}  # model name -> per-problem records of its held-out answers

    # M0, then M1 = M0 + SFT on demonstrations and on step-checker gradings
    evaluate["M0"] = _evaluate(run, cfg, "M0", cfg.model, problems["eval"])
    m1 = _sft(run, cfg, problems["sft"], problems["eft"])
    evaluate["M1"] = _evaluate(run, cfg, "M1", m1, problems["eval"])

    # M1's candidates, graded by the checker once; each arm's judge scores them, pairs, DPO, evaluation
    candidates = _candidates(run, cfg, m1, problems["pairs"])
    arms = {}
    for arm in cfg.arms:
        scores = _judge(run, cfg, arm, m1, candidates)
        pairs = _pairs(run, cfg, arm, candidates, scores)
        m2 = _dpo(run, cfg, arm, m1, pairs)
        evaluate[f"M2-{arm}"] = _evaluate(run, cfg, f"M2-{arm}", m2, problems["eval"])
        run.release(m2)  # five policies, two reward models and a trainer would not fit in 6 GB together
        arms[arm] = {"model": m2, "judge": judge_agreement(candidates, scores, cfg.seed),
                     "pairs": pair_quality(pairs, len(problems["pairs"]), cfg.seed)}

    models = {"M0": cfg.model, "M1": m1} | {f"M2-{a}": arms[a]["model"] for a in cfg.arms}
    metrics = run.save_metrics({"models": models, "arms": arms, "split": cfg.evaluate_on,
                                "evaluation": model_summaries(evaluate, cfg.seed),
                                "candidates": candidate_summary(candidates, cfg.seed)})
    return Result(metrics, _headline(metrics), "feedback on arithmetic: held-out accuracy by exact check")


# ---- the steps ---------------------------------------------------------------------------------
def _problem_sets(run: Run, cfg: VerifiableFeedbackConfig) -> dict[str, list[MathProblem]]:
    """Sets of distinct problems: a question in one set appears in no other (nor twice in one). With
    ``evaluate_on: test`` the held-out set ("eval") is the test set; the dev set is still drawn, unused, so
    that the training sets are those of the dev run."""
    sizes = {"eval": cfg.eval_problems, "sft": cfg.sft_problems, "eft": cfg.eft_problems, "pairs": cfg.pair_problems}
    test = cfg.eval_problems if cfg.evaluate_on == "test" else 0
    sets = distinct_problem_sets(cfg.task, sizes, cfg.seed, "verifiable_feedback", test=test)
    inputs = {"task": cfg.task, "sizes": sizes, "seed": cfg.seed} | ({"test": test} if test else {})
    run.run_stage("problems", inputs, lambda: [p.to_record() | {"set": name} for name, ps in sets.items() for p in ps])
    return {**sets, "eval": sets["test"]} if test else sets


def _sft(run: Run, cfg: VerifiableFeedbackConfig, sft_problems: list[MathProblem],
         eft_problems: list[MathProblem]) -> str:
    """M1: demonstrations plus step-checked gradings rendered exactly as the self-judge will see them."""
    gradings = eft_examples(eft_problems, cfg.seed)

    def rows() -> list[dict]:
        grader = llm_judge(run.model(cfg.model), JudgeConfig(mode="single", template=cfg.judge_template))
        return sft_records(sft_problems) + grading_conversations(grader, gradings)

    data = run.run_stage("m1_training_data", {"model": run.model(cfg.model), "sft": [p.id for p in sft_problems],
                                              "eft": gradings, "template": cfg.judge_template}, rows)
    run.release(cfg.model)  # M0 is done (evaluated, gradings rendered): free it before training
    return stages.sft(run, "sft_m1", name="m1", base=cfg.model, data=data, settings=cfg.sft,
                      report={"eft_grades": counts(g["score"] for g in gradings)})


def eval_stage(model_name: str) -> str:
    """The stage holding a model's held-out answers: M2-self -> eval_m2_self."""
    return "eval_" + model_name.lower().replace("-", "_")


def _evaluate(run: Run, cfg: VerifiableFeedbackConfig, name: str, spec: str, problems: list[MathProblem]) -> list[dict]:
    """The model's greedy answer to every held-out problem, checked exactly."""
    model = run.model(spec)

    def answer() -> list[dict]:
        outs = model.generate([p.chat() for p in problems], Sampling(temperature=0.0,
                              max_new_tokens=cfg.eval_max_new_tokens, seed=cfg.seed), desc=f"{name} answers")
        return [{"id": p.id, "split": cfg.evaluate_on, "answer": row[0].text,
                 "completion_tokens": row[0].completion_tokens, **checked(p, row[0].text)}
                for p, row in zip(problems, outs)]

    return run.run_stage(eval_stage(name), {"model": model, "problems": [p.id for p in problems], "rule": ANSWER_RULE,
                                            "max_new_tokens": cfg.eval_max_new_tokens, "seed": cfg.seed}, answer)


def _candidates(run: Run, cfg: VerifiableFeedbackConfig, spec: str, problems: list[MathProblem]) -> list[dict]:
    """``candidates`` samples from M1 per pair prompt, each with the checker's verdict (kept for measuring
    the judges; only the checker arm builds pairs from it)."""
    model = run.model(spec)

    def sample() -> list[dict]:
        outs = model.generate([p.chat() for p in problems], cfg.sampling.to_sampling(cfg.seed), n=cfg.candidates,
                              desc="M1 candidates")
        return [{"id": p.id, "prompt": p.prompt(), "candidate": j, "text": c.text,
                 "completion_tokens": c.completion_tokens, **checked(p, c.text)}
                for p, row in zip(problems, outs) for j, c in enumerate(row)]

    return run.run_stage("candidates", {"model": model, "problems": [p.id for p in problems], "n": cfg.candidates,
                                        "sampling": cfg.sampling, "seed": cfg.seed, "rule": ANSWER_RULE}, sample)


def _judge(run: Run, cfg: VerifiableFeedbackConfig, arm: str, m1: str, candidates: list[dict]) -> list[float | None]:
    """Each candidate's score under the arm's judge; None where the judge's verdict was unreadable."""
    if arm == "checker":
        return [float(c["grade"]) for c in candidates]
    if arm == "self":
        model = run.model(m1)

        def grade() -> list[dict]:
            grader = llm_judge(model, JudgeConfig(mode="single", template=cfg.judge_template, seed=cfg.seed))
            grades = grader.grade([c["prompt"] for c in candidates], [c["text"] for c in candidates])
            return [{"id": c["id"], "candidate": c["candidate"], "score": g.value, "valid": g.get("valid"),
                     "probs": g.get("probs")} for c, g in zip(candidates, grades)]

        records = run.run_stage("judge_self", {"model": model, "candidates": candidates,
                                               "template": cfg.judge_template, "seed": cfg.seed}, grade)
    else:
        # keyed on the backbone's weights, without holding them: the reward model loads its own copy
        records = run.run_stage("judge_verifier", {"base": run.model_key(cfg.verifier.base or cfg.model),
                                                   "candidates": candidates, "settings": cfg.verifier,
                                                   "seed": cfg.seed},
                                lambda: _cross_fitted_verifier(run, cfg, candidates))
    return [r["score"] for r in records]


def _cross_fitted_verifier(run: Run, cfg: VerifiableFeedbackConfig, candidates: list[dict]) -> list[dict]:
    """An outcome reward model per fold, trained on the candidates of the other folds' problems (labels from
    the checker) and scoring this fold's: every score comes from a head that never saw the candidate."""
    from referee.rewards.orm import train_outcome_rm
    from referee.rewards.training import TrainOptions
    from referee.tasks.math import Solution

    k = cfg.verifier.folds
    fold = [int(seeded_unit(cfg.seed, "verifier-fold", c["id"]) * k) for c in candidates]
    scores: list[float | None] = [None] * len(candidates)
    training = []
    for f in range(k):
        train = [Solution([{"role": "user", "content": c["prompt"]}], c["text"], label=float(c["correct"]))
                 for c, g in zip(candidates, fold) if g != f]
        held = [i for i, g in enumerate(fold) if g == f]
        if not held:
            continue
        if not train or len({s.label for s in train}) < 2:
            raise RefereeError(f"verifiable_feedback: the verifier's fold {f + 1} has only "
                               f"{'right' if train and train[0].label else 'wrong'} candidates to learn from; "
                               f"sample more (pair_problems, candidates) or drop the 'verifier' arm")
        options = TrainOptions(epochs=cfg.verifier.epochs, lr=cfg.verifier.lr, seed=cfg.seed)
        orm, fit = train_outcome_rm(cfg.verifier.base or cfg.model, train, options, max_length=512)
        got = orm.score_many([[{"role": "user", "content": candidates[i]["prompt"]}] for i in held],
                             [candidates[i]["text"] for i in held])
        for i, s in zip(held, got):
            scores[i] = s.value
        training.append({"fold": f + 1, "train": len(train), "scored": len(held), **fit})
    run.save_metrics({"verifier_training": training})
    return [{"id": c["id"], "candidate": c["candidate"], "fold": g + 1, "score": s}
            for c, g, s in zip(candidates, fold, scores)]


def _pairs(run: Run, cfg: VerifiableFeedbackConfig, arm: str, candidates: list[dict],
           scores: list[float | None]) -> list[dict]:
    """Each prompt's widest-margin pairs under the arm's scores, with the checker's grades of both sides."""
    def build() -> list[dict]:
        out = []
        for start in range(0, len(candidates), cfg.candidates):
            group = candidates[start:start + cfg.candidates]
            for pair in top_pairs(group[0]["prompt"], [c["text"] for c in group],
                                  scores[start:start + cfg.candidates], cfg.pairs_per_prompt):
                chosen, rejected = group[pair["chosen_index"]], group[pair["rejected_index"]]
                out.append(pair | {"id": group[0]["id"], "chosen_grade": chosen["grade"],
                                   "rejected_grade": rejected["grade"], "chosen_correct": chosen["correct"],
                                   "rejected_correct": rejected["correct"]})
        return out

    pairs = run.run_stage(f"pairs_{arm}", {"candidates": candidates, "scores": scores, "k": cfg.pairs_per_prompt},
                          build)
    if not pairs:
        raise RefereeError(f"verifiable_feedback: the {arm} judge tied every prompt's candidates, so there are no "
                           f"pairs to train on; records so far are in {run.folder}")
    return pairs


def _dpo(run: Run, cfg: VerifiableFeedbackConfig, arm: str, m1: str, pairs: list[dict]) -> str:
    rows = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs]
    return stages.dpo(run, f"dpo_{arm}", name=f"m2_{arm}", base=m1, pairs=rows, settings=cfg.dpo, beta=cfg.dpo_beta)


# ---- the headline (the measurements are referee.feedback.checker_metrics) --------------------
def _headline(metrics: dict) -> list[dict]:
    rows = []
    for name, m in metrics["evaluation"].items():
        arm = metrics["arms"].get(name[3:], {}) if name.startswith("M2-") else {}
        change = m["change_vs_m1"] or {}
        rows.append({"model": name, "accuracy": m["accuracy"]["value"],
                     "change_vs_M1": change.get("value"), "change_low": change.get("low"),
                     "change_high": change.get("high"),
                     "pairs": arm.get("pairs", {}).get("pairs"),
                     "chosen_really_better": (arm.get("pairs", {}).get("chosen_really_better") or {}).get("value"),
                     "judge_auc": ((arm.get("judge") or {}).get("auc") or {}).get("value"),
                     "mean_chars": m["mean_chars"], "mean_steps": m["mean_steps"]})
    return rows
