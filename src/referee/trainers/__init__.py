"""Trainers: thin, typed wrappers over TRL, transformers and peft.

Each takes a base model spec, data in TRL's formats, and ``TrainSettings``; each writes a checkpoint
folder (LoRA adapter + base spec, see ``referee.models.checkpoints``) and returns its spec, which every
other part of referee accepts as a model. Settings under ``trl:`` pass straight to TRL's config, so
distributed options (accelerate, DeepSpeed, FSDP, bf16, gradient checkpointing) work unchanged.
"""

from referee.trainers.common import LoraSettings, TrainSettings
from referee.trainers.dpo import train_dpo
from referee.trainers.grpo import train_grpo
from referee.trainers.sft import train_sft

__all__ = ["LoraSettings", "TrainSettings", "train_dpo", "train_grpo", "train_sft"]
