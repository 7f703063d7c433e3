"""How good is a trained verifier: accuracy with bootstrap intervals, each beside a trivial baseline.

- reward model: pairwise accuracy (chosen scored above rejected; an exact tie counts half) beside the
  always-longer baseline (pick the longer answer, in characters), which many preference sets reward;
- outcome RM: accuracy at P = 0.5 beside the best constant guess (the evaluated set's majority class), and AUC;
- process RM: per-step accuracy beside the majority class, and how often the first step predicted
  wrong is the first step labelled wrong (None = no wrong step) on fully labelled solutions.
"""

from __future__ import annotations

from referee.rewards.data import PreferencePair, StepSolution
from referee.stats import Estimate, auc, bootstrap, mean_ci, paired_diff
from referee.tasks.math import Solution


def _hit(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def longer_hits(pairs: list[PreferencePair]) -> list[float]:
    """Per pair: 1 if the chosen answer is the longer, 0.5 on equal length, else 0."""
    return [_hit(len(p.chosen), len(p.rejected)) for p in pairs]


def eval_pairs(rm, pairs: list[PreferencePair], seed: int = 0) -> dict:
    """Pairwise accuracy of a reward model (anything with ``rewards(prompts, answers)``) and the length
    baseline; an exact tie of rewards counts as half a hit."""
    r = rm.rewards([p.prompt for p in pairs] + [p.prompt_of_rejected for p in pairs],
                   [p.chosen for p in pairs] + [p.rejected for p in pairs])
    chosen, rejected = r[:len(pairs)], r[len(pairs):]
    hits = [_hit(c, w) for c, w in zip(chosen, rejected)]
    margins = [c - w for c, w in zip(chosen, rejected)]
    longer = longer_hits(pairs)
    return {"pairs": len(pairs), "accuracy": mean_ci(hits, seed=seed),
            "always_longer": mean_ci(longer, seed=seed),
            "minus_always_longer": paired_diff(hits, longer, seed=seed),  # the same pairs: a paired interval
            "mean_margin": sum(margins) / len(margins), "hits": hits}


def eval_outcomes(orm, solutions: list[Solution], seed: int = 0) -> dict:
    labelled = [s for s in solutions if s.label is not None]
    scores = [sc.value for sc in orm.score_many([s.prompt for s in labelled], [s.response for s in labelled])]
    truth = [s.label >= 0.5 for s in labelled]
    majority = sum(truth) * 2 >= len(truth)
    return {"solutions": len(labelled), "unlabelled_skipped": len(solutions) - len(labelled),
            "accuracy": mean_ci([float((p >= 0.5) == t) for p, t in zip(scores, truth)], seed=seed),
            "majority_class": mean_ci([float(t == majority) for t in truth], seed=seed),
            "auc": bootstrap(auc, scores, [float(t) for t in truth], seed=seed)}


def first_wrong(labels: list[float | None]) -> int | None:
    return next((i for i, t in enumerate(labels) if t is not None and t < 0.5), None)


def eval_steps(prm, solutions: list[StepSolution], seed: int = 0) -> dict:
    probs = prm.score_steps([s.prompt for s in solutions], [s.steps for s in solutions])
    step_hits, truths = [], []
    for s, ps in zip(solutions, probs):
        for p, t in zip(ps, s.labels):
            if t is not None:
                step_hits.append(float((p >= prm.threshold) == (t >= 0.5)))
                truths.append(t >= 0.5)
    majority = sum(truths) * 2 >= len(truths)
    full = [(s, ps) for s, ps in zip(solutions, probs) if s.labels and all(t is not None for t in s.labels)]
    first = [float(prm.summary(ps)["first_wrong_step"] == first_wrong(s.labels)) for s, ps in full if ps]
    return {"solutions": len(solutions), "labelled_steps": len(step_hits),
            "step_accuracy": mean_ci(step_hits, seed=seed),
            "majority_class": mean_ci([float(t == majority) for t in truths], seed=seed),
            "first_wrong_step_match": mean_ci(first, seed=seed)}


def fmt(est: Estimate) -> str:
    return est.fmt(3)
