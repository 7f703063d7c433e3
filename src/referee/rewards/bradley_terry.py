"""Bradley-Terry reward model: a scalar reward per answer, trained so chosen answers outscore rejected.

Loss per pair: -log sigmoid(r_chosen - r_rejected) + c * (r_chosen + r_rejected)^2. The second term
(off when c = 0; TRL calls c ``center_rewards_coefficient``) keeps rewards near zero, so that rewards
from different runs and prompts stay on a comparable scale without changing which answer wins.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from referee.chat import as_chat
from referee.rewards.data import PreferencePair
from referee.rewards.heads import RewardNet
from referee.rewards.training import Example, TrainOptions, fit
from referee.verifiers.base import Comparison, PairwiseVerifier, PointwiseVerifier, Score


def pair_loss(logits: torch.Tensor, examples: list[Example], center: float = 0.0) -> torch.Tensor:
    """Bradley-Terry loss over a batch whose logits run chosen, rejected, chosen, rejected, ..."""
    r = logits.view(-1, 2)
    loss = -F.logsigmoid(r[:, 0] - r[:, 1]).mean()
    if center:
        loss = loss + center * ((r[:, 0] + r[:, 1]) ** 2).mean()
    return loss


class RewardModel(PointwiseVerifier, PairwiseVerifier):
    """Scores an answer with a scalar reward (higher is better); compares two by their rewards."""

    kind = "rm"

    def __init__(self, net: RewardNet, config: dict | None = None):
        self.net = net
        self.config = config or {}
        self.name = f"rm:{net.base_spec}"

    def rewards(self, prompts: Sequence, responses: Sequence[str]) -> list[float]:
        seqs = [self.net.encode_answer(as_chat(p), r) for p, r in zip(prompts, responses)]
        return [v[0] for v in self.net.score(seqs, desc="rewards")]

    def score_many(self, prompts, responses) -> list[Score]:
        return [Score(value=r, detail={"reward": r}) for r in self.rewards(prompts, responses)]

    def compare_many(self, prompts, a, b) -> list[Comparison]:
        ra = self.rewards(list(prompts) * 2, list(a) + list(b))
        ra, rb = ra[:len(a)], ra[len(a):]
        out = []
        for x, y in zip(ra, rb):
            p = 1.0 / (1.0 + math.exp(-(x - y))) if abs(x - y) < 700 else float(x > y)
            winner = "A" if x > y else "B" if y > x else "tie"
            out.append(Comparison(winner, p_a=p, detail={"reward_a": x, "reward_b": y}))
        return out

    def save(self, out, extra: dict | None = None):
        return self.net.save(out, self.kind, {**self.config, **(extra or {})})


def train_reward_model(base: str, pairs: list[PreferencePair], options: TrainOptions | None = None, *,
                       center: float = 0.0, device: str | None = None, max_length: int = 1024,
                       net: RewardNet | None = None) -> tuple[RewardModel, dict]:
    """Train a Bradley-Terry head (frozen backbone or LoRA) on preference pairs."""
    options = options or TrainOptions()
    net = net or RewardNet(base, device=device, max_length=max_length, batch_size=options.batch_size)
    examples = [Example([net.encode_answer(p.prompt, p.chosen), net.encode_answer(p.prompt_of_rejected, p.rejected)])
                for p in pairs]
    metrics = fit(net, examples, lambda lg, ex: pair_loss(lg, ex, center), options, desc="training RM")
    metrics["center_rewards_coefficient"] = center
    metrics["truncated"] = sum(s.cut > 0 for ex in examples for s in ex.seqs)  # sequences that lost their start
    return RewardModel(net, {"training": metrics}), metrics
