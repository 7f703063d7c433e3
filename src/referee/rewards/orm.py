"""Outcome reward model: P(a whole solution reaches the right answer), a binary classifier.

Trained on solutions sampled from a policy and labelled by a programmatic verifier (or by people);
targets may be soft (a probability) as well as 0/1. Read out at the solution's last token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from referee.chat import as_chat
from referee.rewards.data import Solution
from referee.rewards.heads import RewardNet
from referee.rewards.training import Example, TrainOptions, fit
from referee.verifiers.base import PointwiseVerifier, Score


def sigmoid(x: float) -> float:
    return float(torch.sigmoid(torch.tensor(x, dtype=torch.float64)))


def outcome_loss(logits: torch.Tensor, examples: list[Example]) -> torch.Tensor:
    targets = torch.tensor([ex.target for ex in examples], dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, targets)


class OutcomeRM(PointwiseVerifier):
    """Score.value = P(correct) of the whole solution; detail has the logit."""

    kind = "orm"

    def __init__(self, net: RewardNet, config: dict | None = None):
        self.net = net
        self.config = config or {}
        self.name = f"orm:{net.base_spec}"

    def score_many(self, prompts, responses) -> list[Score]:
        seqs = [self.net.encode_answer(as_chat(p), r) for p, r in zip(prompts, responses)]
        return [Score(value=sigmoid(v[0]), detail={"logit": v[0]}) for v in self.net.score(seqs, desc="ORM")]

    def save(self, out, extra: dict | None = None):
        return self.net.save(out, self.kind, {**self.config, **(extra or {})})


def train_outcome_rm(base: str, solutions: list[Solution], options: TrainOptions | None = None, *,
                     device: str | None = None, max_length: int = 1024,
                     net: RewardNet | None = None) -> tuple[OutcomeRM, dict]:
    """Train the outcome classifier; unlabelled solutions are left out and counted."""
    options = options or TrainOptions()
    net = net or RewardNet(base, device=device, max_length=max_length, batch_size=options.batch_size)
    labelled = [s for s in solutions if s.label is not None]
    examples = [Example([net.encode_answer(s.prompt, s.response)], s.label) for s in labelled]
    metrics = fit(net, examples, outcome_loss, options, desc="training ORM")
    metrics["unlabelled_skipped"] = len(solutions) - len(labelled)
    metrics["positive_rate"] = sum(s.label for s in labelled) / len(labelled)
    return OutcomeRM(net, {"training": metrics}), metrics
