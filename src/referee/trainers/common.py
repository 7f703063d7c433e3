"""What all trainers share: settings, loading the starting policy, saving a checkpoint."""

from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field, model_serializer

from referee import noise, progress
from referee.config import StrictModel
from referee.distributed import is_main_process, wait_for_everyone, world_size
from referee.errors import RefereeError


def as_turns(value: Any, role: str, where: str) -> list[dict]:
    """A training field as chat messages: text is one ``role`` message, a list is checked as messages.
    Anything else (a number, an object) is an error naming the field, before any model is loaded."""
    from referee.chat import as_chat

    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return as_chat(value, where)
    raise RefereeError(f"{where}: should be text or a list of messages, got {type(value).__name__}")


class LoraSettings(StrictModel):
    """The LoRA adapter every protocol trains with unless its config says otherwise. Protocols take these
    defaults rather than restating them; their stage fingerprints hash the values, so changing one here
    retrains every protocol's stages."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


class TrainSettings(StrictModel):
    learning_rate: float = Field(1e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = Field(4, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    max_length: int = Field(512, ge=16)
    seed: int = 0
    lora: LoraSettings | None = LoraSettings()  # None: full fine-tuning
    save_every: int | None = Field(None, ge=1)  # also keep the policy every N steps (OUT/steps/step-N), to
    #                                             measure it against training step
    trl: dict[str, Any] = {}  # passed to TRL's config as they are (bf16, deepspeed, fsdp, ...)

    @model_serializer(mode="wrap")
    def _unset_save_every_left_out(self, handler):
        """Settings without snapshots dump as they did before ``save_every`` existed, so the training stages
        of earlier run folders keep their fingerprints (and are not trained again)."""
        data = handler(self)
        if data.get("save_every") is None:
            data.pop("save_every", None)
        return data


def peft_config(settings: TrainSettings):
    if settings.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=settings.lora.r, lora_alpha=settings.lora.alpha, lora_dropout=settings.lora.dropout,
                      target_modules=settings.lora.target_modules, task_type="CAUSAL_LM")


def trl_args(config_cls, out_dir: Path, settings: TrainSettings, **method_args):
    """A TRL config from referee's settings, the method's own arguments and the user's passthrough."""
    import torch

    gpu = torch.cuda.is_available()
    args = dict(output_dir=str(out_dir / "trainer"), bf16=gpu and torch.cuda.is_bf16_supported(),
                learning_rate=settings.learning_rate, num_train_epochs=settings.epochs, max_steps=settings.max_steps,
                per_device_train_batch_size=settings.batch_size,
                gradient_accumulation_steps=settings.gradient_accumulation, seed=settings.seed,
                logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=progress.is_quiet(),
                # accelerate joins processes on CPUs (gloo) only when told they are on CPUs
                use_cpu=not gpu and world_size() > 1)
    if settings.save_every:
        args.update(save_strategy="steps", save_steps=settings.save_every, save_only_model=True)
    elif (out_dir / "trainer" / RESUME_FILE).is_file() and (every := resume_every(settings)):
        args.update(save_strategy="steps", save_steps=every, save_total_limit=1)  # the full state, the last only
    args.update(method_args)
    accepted = set(inspect.signature(config_cls).parameters)
    unknown = set(settings.trl) - accepted
    if unknown:
        raise RefereeError(f"setting 'trl': {config_cls.__name__} has no option(s) {', '.join(sorted(unknown))}")
    args.update(settings.trl)
    config = config_cls(**{k: v for k, v in args.items() if k in accepted})
    if config.world_size != world_size():
        raise RefereeError(f"{world_size()} processes were started but the trainer sees {config.world_size}: each "
                           "would train a copy of its own (on CPUs, leave 'use_cpu' out of --trl)")
    return config


RESUME_FILE = "referee-resume.json"  # in OUT/trainer: which stage's interrupted training may go on there


def resume_every(settings: TrainSettings) -> int:
    """Every how many steps a training inside a run stage keeps its full state (weights, optimiser, RNG) so
    that a killed run goes on from there: ``REFEREE_RESUME_EVERY`` steps (0: never); by default 10 for LoRA,
    whose state is small, and never for a full fine-tune, whose optimiser state is twice the model."""
    value = os.environ.get("REFEREE_RESUME_EVERY", "").strip()
    if not value:
        return 10 if settings.lora is not None else 0
    if not value.isdigit():
        raise RefereeError(f"REFEREE_RESUME_EVERY should be a whole number of steps (0: never), got {value!r}")
    return int(value)


def mark_resumable(out_dir: Path, stage: str, key: str) -> None:
    """Let the training into ``out_dir`` keep states to resume from, for the stage keyed ``key``."""
    trainer_dir = Path(out_dir) / "trainer"
    trainer_dir.mkdir(parents=True, exist_ok=True)
    (trainer_dir / RESUME_FILE).write_text(json.dumps({"stage": stage, "key": key}), encoding="utf-8")


def resumable_key(out_dir: Path) -> str | None:
    """The key of the stage whose interrupted training left states in ``out_dir``, if any did."""
    try:
        return json.loads((Path(out_dir) / "trainer" / RESUME_FILE).read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def last_state(trainer_dir: Path) -> Path | None:
    """The latest complete state an interrupted training kept: transformers writes trainer_state.json last,
    and a state without the optimiser's (a ``save_every`` snapshot) is no place to go on from."""
    if not (trainer_dir / RESUME_FILE).is_file():
        return None
    done = [p for p in trainer_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()
            and (p / "optimizer.pt").is_file() and p.name.split("-")[-1].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def load_policy(spec: str):
    """The starting policy as a plain model with any adapters merged in, so a new adapter trains on
    top of it and, for DPO, the adapter-free model is the reference (M_t when training M_t+1)."""
    from referee.models.checkpoints import load_merged

    noise.reapply()  # the trainers have imported transformers, datasets and TRL by now: quiet them
    model, tokenizer = load_merged(spec)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def save_checkpoint(trainer, out_dir: Path, base_spec: str, kind: str, settings: TrainSettings) -> str:
    """Save the adapter (or full weights), the tokenizer and the base spec; return the new spec.

    Every process takes part, since weights sharded across them (DeepSpeed ZeRO-3, FSDP) are gathered to
    save them; the main process alone writes, and all return once the checkpoint is in place."""
    from transformers.trainer import TRAINING_ARGS_NAME

    from referee.models.checkpoints import steady_adapter_config, write_marker

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if is_main_process():
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # weights and tokenizer, from the main process
    if is_main_process():
        # The pickled training arguments it adds are no part of the model (and would change its fingerprint).
        (tmp / TRAINING_ARGS_NAME).unlink(missing_ok=True)
        steady_adapter_config(tmp)
        history = [h for h in trainer.state.log_history if "loss" in h]
        # Every checkpoint gets the marker that says it is finished; a full fine-tune's weights stand alone.
        write_marker(tmp, base_spec, kind, settings=settings.model_dump(mode="json"),
                     final_loss=history[-1]["loss"] if history else None, full=settings.lora is None)
        if settings.save_every:  # otherwise its checkpoints are resume states, gone with the folder below
            _keep_steps(out_dir / "trainer", tmp / "steps", base_spec, kind, settings)
        shutil.rmtree(out_dir / "trainer", ignore_errors=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    wait_for_everyone()
    return f"hf:{out_dir}"


def _keep_steps(trainer_dir: Path, steps_dir: Path, base_spec: str, kind: str, settings: TrainSettings) -> None:
    """The trainer's step snapshots (``save_every``) as checkpoints of their own, ``steps/step-N``, each
    with the marker that lets ``hf:OUT/steps/step-N`` load it; the trainer's bookkeeping left out."""
    from transformers.trainer import TRAINING_ARGS_NAME

    from referee.models.checkpoints import steady_adapter_config, write_marker

    for snapshot in sorted(trainer_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        step = int(snapshot.name.split("-")[1])
        for name in (TRAINING_ARGS_NAME, "trainer_state.json", "rng_state.pth", "optimizer.pt", "scheduler.pt"):
            (snapshot / name).unlink(missing_ok=True)
        steady_adapter_config(snapshot)
        write_marker(snapshot, base_spec, kind, step=step, settings=settings.model_dump(mode="json"),
                     full=settings.lora is None)
        steps_dir.mkdir(parents=True, exist_ok=True)
        snapshot.rename(steps_dir / f"step-{step}")


def fit(trainer) -> None:
    """Train. The step bar shows unless --quiet; the dict of numbers transformers prints to stdout at each
    step (the loss history, which is returned anyway) shows only with --verbose."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    if progress.is_quiet():
        trainer.remove_callback(PrinterCallback)
    elif noise.active() and trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_step_bar())
    state = last_state(Path(trainer.args.output_dir))
    if state is not None:
        progress.say(f"resuming an interrupted training at step {state.name.split('-')[-1]} ({state})")
    trainer.train(resume_from_checkpoint=str(state) if state is not None else None)


def _step_bar():
    """transformers' step bar, without the dict of numbers it writes under itself at every step."""
    from transformers.trainer_callback import ProgressCallback

    class StepBar(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return StepBar


def loss_history(trainer) -> list[dict]:
    return [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in trainer.state.log_history]
