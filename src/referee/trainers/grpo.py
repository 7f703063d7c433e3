"""Online RL (TRL's GRPOTrainer) with rewards from any referee verifier.

The reward of a completion is the verifier's score. A score the verifier could not read (an invalid
judge verdict) is passed to TRL as None, which it treats as missing (NaN) rather than zero; the count
of such rewards is kept and returned, so a judge that fails often shows up.
"""

from __future__ import annotations

from pathlib import Path

from referee.errors import RefereeError
from referee.trainers.common import TrainSettings, fit, load_policy, loss_history, peft_config, save_checkpoint, trl_args
from referee.verifiers.base import PointwiseVerifier


class VerifierReward:
    """A TRL reward function backed by a PointwiseVerifier, counting unreadable scores."""

    def __init__(self, verifier: PointwiseVerifier):
        self.verifier = verifier
        self.__name__ = f"reward_{getattr(verifier, 'name', 'verifier')}"
        self.scored = 0
        self.invalid = 0

    def __call__(self, prompts, completions, golds=None, **kwargs) -> list[float | None]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        # gold answers per completion, for a checker that takes them per call (``exact``)
        scores = self.verifier.score_many(list(prompts), texts, **({} if golds is None else {"golds": golds}))
        self.scored += len(scores)
        self.invalid += sum(not s.valid for s in scores)
        return [s.value if s.valid else None for s in scores]


def train_grpo(base: str, prompts: list, verifier: PointwiseVerifier, out_dir: str | Path,
               settings: TrainSettings | None = None, num_generations: int = 4,
               max_completion_length: int = 64, beta: float = 0.0) -> tuple[str, dict]:
    """Train ``base`` to raise the verifier's score; returns (checkpoint spec, history and reward counts).

    ``prompts`` are strings or chats; extra TRL options go in ``settings.trl``.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    settings = settings or TrainSettings()
    if not prompts:
        raise RefereeError("grpo: no prompts to train on")
    rows = [{"prompt": [{"role": "user", "content": p}] if isinstance(p, str) else p} for p in prompts]
    model, tokenizer = load_policy(base)
    reward = VerifierReward(verifier)
    out_dir = Path(out_dir)
    batch = max(settings.batch_size, num_generations)
    batch -= batch % num_generations
    args = trl_args(GRPOConfig, out_dir, settings, num_generations=num_generations, beta=beta,
                    max_completion_length=max_completion_length, per_device_train_batch_size=batch)
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer, peft_config=peft_config(settings))
    fit(trainer)
    spec = save_checkpoint(trainer, out_dir, base, "grpo", settings)
    scored, invalid = _summed_over_processes(trainer, [reward.scored, reward.invalid])
    return spec, {"history": loss_history(trainer), "rewards_scored": scored, "rewards_invalid": invalid}


def _summed_over_processes(trainer, counts: list[int]) -> list[int]:
    """Each process scores its own completions: the counts of all of them (the same counts in one process)."""
    import torch

    return trainer.accelerator.reduce(torch.tensor(counts, device=trainer.accelerator.device), "sum").tolist()
