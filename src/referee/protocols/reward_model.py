"""Train a verifier on a data file: a Bradley-Terry reward model on preference pairs (``rm``), an
outcome RM on labelled solutions (``orm``) or a process RM on labelled steps (``prm``), each a scalar
head on a local backbone (``referee.rewards``).

The run folder is the verifier's folder: the head (and LoRA adapter) lie beside the config.yaml that
trained them, and any command that takes a saved verifier takes the folder. Training is one stage,
keyed by the backbone's weights, the training records and the settings: run again unchanged, the
saved verifier is kept; change any of them and it is trained again (``stages.checkpoint``, into the run
folder: only the verifier's own files are cleared first).

Under a launcher (``torchrun``, ``accelerate launch``) every process runs the protocol and trains its
share (``referee.rewards.training``); the main one writes the verifier and the run's files. N processes
take N batches per step, so the number of processes counts among the settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from referee.config import ProtocolConfig, StrictModel
from referee.protocols import Result, register
from referee.runs import Run


class TrainingConfig(StrictModel):
    """The settings of ``referee.rewards.training.TrainOptions`` (the seed is the run's); epochs and lr
    left empty take the defaults of the mode (frozen backbone or LoRA)."""

    epochs: int | None = None
    lr: float | None = None
    batch_size: int = 16  # per process
    lora: bool = False  # train LoRA adapters too, not only the head on a frozen backbone
    val_frac: float = 0.1  # held out to keep the epoch with the lowest held-out loss (0: the last epoch)

    def to_options(self, seed: int):
        from referee.rewards.training import TrainOptions

        return TrainOptions(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, lora=self.lora,
                            val_frac=self.val_frac, seed=seed)


class RewardModelConfig(ProtocolConfig):
    protocol: str = "reward_model"
    kind: Literal["rm", "orm", "prm"]
    data: str  # training data in the format of the kind (see referee.rewards.data)
    base: str = "embedded"  # the backbone: embedded or hf:PATH
    limit: int | None = Field(None, ge=1)  # use only the first records
    training: TrainingConfig = TrainingConfig()
    center: float = 0.0  # rm: centering coefficient c in c*(r_chosen + r_rejected)^2
    neutral: str = "positive"  # prm: a neutral step (0 of 1/0/-1) counts as positive, negative, or skip
    labels: str = "auto"  # prm: integer label scheme auto, binary (1/0) or ternary (1/0/-1)
    max_length: int = Field(1024, ge=1)  # tokens per input; longer ones lose tokens from the left
    device: str | None = None  # where to train (default: cuda when available); not what is trained

    @model_validator(mode="after")
    def _training_settings_make_sense(self) -> "RewardModelConfig":
        self.training.to_options(self.seed).resolved()  # raises on impossible settings, before any work
        return self


# Settings that do not change what is trained: where the files are and which device does the work.
NOT_TRAINED_ON = {"protocol", "out", "data", "base", "device"}


@register("reward_model", RewardModelConfig, "train a reward model, outcome RM or process RM on a data file")
def run_reward_model(config: RewardModelConfig, run: Run) -> Result:
    from referee.distributed import world_size
    from referee.protocols import stages
    from referee.rewards.heads import ADAPTER_DIR, CONFIG_NAME, HEAD_NAME

    items, stats = load_training_data(config)
    inputs = {"data": items, "settings": config.model_dump(exclude=NOT_TRAINED_ON),
              **({"processes": world_size()} if world_size() > 1 else {})}  # one: the key it always had
    stages.checkpoint(run, "train", base=config.base, inputs=inputs, into=run.folder, marker=CONFIG_NAME,
                      owned=[CONFIG_NAME, HEAD_NAME, ADAPTER_DIR],
                      train=lambda folder: train_and_save(config, items, stats, folder))
    # What training measured is saved with the verifier: a kept verifier reports the same as a new one.
    training = json.loads((run.folder / CONFIG_NAME).read_text(encoding="utf-8"))["training"]
    metrics = {"reward_model": {"kind": config.kind, **training}}
    run.save_metrics(metrics)
    row = {"kind": config.kind, "base": config.base, "examples": training["examples"],
           "epochs": training["epochs"], "best_epoch": training["best_epoch"],
           "loss_first_epoch": training["loss_first_epoch"], "loss_last_epoch": training["loss_last_epoch"],
           "best_val_loss": min(training["val_losses"]) if training["val_losses"] else None}
    return Result(metrics, [row], title=_summary(config, training, run.folder))


def load_training_data(config: RewardModelConfig):
    """The training records of the kind, and (prm) the counts of unlabelled and neutral steps."""
    from referee import rewards

    if config.kind == "rm":
        return rewards.load_preferences(config.data, limit=config.limit), None
    if config.kind == "orm":
        return rewards.load_solutions(config.data, limit=config.limit), None
    return rewards.load_steps(config.data, limit=config.limit, neutral=config.neutral, scheme=config.labels)


def train_and_save(config: RewardModelConfig, items: list, stats, folder: Path) -> None:
    from referee import rewards

    options = config.training.to_options(config.seed)
    where = {"device": config.device, "max_length": config.max_length}
    if config.kind == "rm":
        verifier, _ = rewards.train_reward_model(config.base, items, options, center=config.center, **where)
    elif config.kind == "orm":
        verifier, _ = rewards.train_outcome_rm(config.base, items, options, **where)
    else:
        verifier, _ = rewards.train_process_rm(config.base, items, options, stats=stats, **where)
    verifier.save(folder, {"data": config.data, **({"neutral": config.neutral} if config.kind == "prm" else {})})


def _summary(config: RewardModelConfig, m: dict, folder: Path) -> str:
    """What ``referee rm train`` says when done: how the labels were read (prm) and how training went."""
    lines = []
    counts = m.get("labels") or {}
    if counts.get("unlabelled") or counts.get("neutral"):
        lines.append(f"{counts['unlabelled']} steps without a label skipped; {counts['neutral']} neutral steps "
                     + ("skipped" if config.neutral == "skip" else f"counted as {config.neutral}"))
    kept = (f"; kept epoch {m['best_epoch']} (held-out loss {min(m['val_losses']):.4f} on {m['val_examples']})"
            if m["val_losses"] else "")
    lines.append(f"trained {config.kind} on {m['examples']} examples from {config.data}: loss "
                 f"{m['loss_first_epoch']:.4f} (epoch 1) -> {m['loss_last_epoch']:.4f} (epoch {m['epochs']}){kept} "
                 f"in {m['train_seconds']:.1f} s; saved to {folder}")
    return "\n".join(lines)
