"""Trained verifiers: Bradley-Terry reward model, outcome RM and process RM, on any HF causal LM.

All three are a scalar head on a backbone's hidden states (frozen backbone, or LoRA), saved as a
folder and loaded back with ``load_verifier(kind, path)``.
"""

from __future__ import annotations

import json
from pathlib import Path

from referee.errors import RefereeError
from referee.rewards.bradley_terry import RewardModel, train_reward_model
from referee.rewards.data import (PreferencePair, Solution, StepSolution, load_preferences, load_solutions,
                                  load_steps, split_steps)
from referee.rewards.heads import CONFIG_NAME, RewardNet
from referee.rewards.orm import OutcomeRM, train_outcome_rm
from referee.rewards.prm import ProcessRM, train_process_rm
from referee.rewards.training import TrainOptions

STRUCTURAL = ("kind", "base", "base_folder", "hidden_size", "max_length", "separator", "lora")
KINDS = {"rm": RewardModel, "orm": OutcomeRM, "prm": ProcessRM}

__all__ = ["KINDS", "OutcomeRM", "PreferencePair", "ProcessRM", "RewardModel", "RewardNet", "Solution",
           "StepSolution", "TrainOptions", "load_preferences", "load_solutions", "load_steps", "load_verifier",
           "saved_kind", "split_steps", "train_outcome_rm", "train_process_rm", "train_reward_model"]


def saved_kind(path) -> str:
    """The kind ("rm", "orm", "prm") a saved verifier folder was trained as."""
    config_path = Path(path) / CONFIG_NAME
    if not config_path.exists():
        raise RefereeError(f"{path}: not a saved verifier (no {CONFIG_NAME})")
    try:
        return json.loads(config_path.read_text())["kind"]
    except (ValueError, KeyError):
        raise RefereeError(f"{config_path}: missing setting 'kind'") from None


def load_verifier(kind: str, path, *, device: str | None = None, batch_size: int = 8):
    """Load a saved verifier; ``kind`` must match what it was trained as."""
    if kind not in KINDS:
        raise RefereeError(f"verifier kind {kind!r}: expected one of {', '.join(KINDS)}")
    found = saved_kind(path)
    if found != kind:
        raise RefereeError(f"{path}: this verifier was trained as {found!r}, not {kind!r}")
    net, config = RewardNet.load(path, device=device, batch_size=batch_size)
    cls = KINDS[kind]
    extra = {k: v for k, v in config.items() if k not in STRUCTURAL}
    if kind == "prm":
        return cls(net, extra, threshold=float(config.get("threshold", 0.5)))
    return cls(net, extra)
