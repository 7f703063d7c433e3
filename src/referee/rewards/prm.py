"""Process reward model: P(step is correct) for every step of a solution, each step judged alone.

The input is the prompt followed by the steps, each ending in a separator (a newline by default); the
head reads the hidden state at each step's separator, which (causal attention) has seen only that
step and the ones before it. So every step is an independent classification given its prefix, as in
Lightman et al.'s PRM, and one forward pass serves all steps. Targets may be soft (Monte-Carlo
fractions); steps without a label stay in the context but add nothing to the loss.

A solution's score is the product of its step probabilities (the chance every step is right);
the minimum and the first step predicted wrong (probability below ``threshold``) are reported too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from referee.chat import as_chat
from referee.rewards.data import StepLabelStats, StepSolution, split_steps
from referee.rewards.heads import RewardNet
from referee.rewards.training import Example, TrainOptions, fit
from referee.verifiers.base import Score, StepVerifier


def step_loss(logits: torch.Tensor, examples: list[Example]) -> torch.Tensor:
    """Mean binary cross-entropy over the labelled steps of a batch (soft targets allowed)."""
    flat = [t for ex in examples for t in ex.target]
    mask = torch.tensor([t is not None for t in flat], device=logits.device)
    targets = torch.tensor([0.0 if t is None else t for t in flat], dtype=logits.dtype, device=logits.device)
    if not bool(mask.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[mask], targets[mask])


def _prob(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit)) if logit > -700 else 0.0


class ProcessRM(StepVerifier):
    kind = "prm"

    def __init__(self, net: RewardNet, config: dict | None = None, threshold: float = 0.5):
        self.net = net
        self.config = config or {}
        self.threshold = threshold
        self.name = f"prm:{net.base_spec}"

    def score_steps(self, prompts, steps_list: list[list[str]]) -> list[list[float]]:
        """P(step correct) for each step of each solution, batched; an empty solution gives []."""
        todo = [i for i, steps in enumerate(steps_list) if steps]
        seqs = [self.net.encode_steps(as_chat(prompts[i]), list(steps_list[i])) for i in todo]
        scores = self.net.score(seqs, desc="PRM") if seqs else []
        out: list[list[float]] = [[] for _ in steps_list]
        for i, logits in zip(todo, scores):
            out[i] = [_prob(x) for x in logits]
        return out

    def score_many(self, prompts, responses) -> list[Score]:
        """Responses split into steps on newlines; value = product of step probabilities.

        A response with no steps (blank) cannot be scored: value None, valid False.
        """
        steps_list = [split_steps(r, newline_only=True) for r in responses]
        out = []
        for steps, probs in zip(steps_list, self.score_steps(prompts, steps_list)):
            if not probs:
                out.append(Score(value=None, valid=False, detail={"error": "no steps in the response"}))
                continue
            out.append(Score(value=math.prod(probs), detail=self.summary(probs)))
        return out

    def summary(self, probs: list[float]) -> dict:
        wrong = next((i for i, p in enumerate(probs) if p < self.threshold), None)
        return {"product": math.prod(probs), "min": min(probs), "steps": probs, "first_wrong_step": wrong}

    def save(self, out, extra: dict | None = None):
        return self.net.save(out, self.kind, {**self.config, "threshold": self.threshold, **(extra or {})})


def train_process_rm(base: str, solutions: list[StepSolution], options: TrainOptions | None = None, *,
                     stats: StepLabelStats | None = None, device: str | None = None, max_length: int = 1024,
                     separator: str = "\n", net: RewardNet | None = None) -> tuple[ProcessRM, dict]:
    """Train per-step classification; solutions with no labelled step are left out and counted."""
    options = options or TrainOptions()
    net = net or RewardNet(base, device=device, max_length=max_length, separator=separator,
                           batch_size=options.batch_size)
    used = [s for s in solutions if s.steps and any(t is not None for t in s.labels)]
    examples = [Example([net.encode_steps(s.prompt, s.steps)], list(s.labels)) for s in used]
    metrics = fit(net, examples, step_loss, options, desc="training PRM")
    metrics["solutions_without_labels"] = len(solutions) - len(used)
    metrics["labelled_steps"] = sum(t is not None for s in used for t in s.labels)
    if stats is not None:
        metrics["labels"] = stats.as_dict()
    return ProcessRM(net, {"training": metrics}), metrics
