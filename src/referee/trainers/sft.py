"""Supervised fine-tuning on demonstrations (TRL's SFTTrainer), loss on the assistant's reply only."""

from __future__ import annotations

from pathlib import Path

from referee.errors import RefereeError
from referee.trainers.common import (TrainSettings, as_turns, fit, load_policy, peft_config, save_checkpoint,
                                     trl_args)


def to_prompt_completion(example: dict, where: str) -> dict:
    """A demonstration as TRL's conversational prompt/completion: everything before the last
    assistant turn is the prompt, that turn is the completion (so only it is trained on)."""
    if "messages" in example:
        msgs = as_turns(example["messages"], "user", f"{where}: field 'messages'")
        if msgs[-1]["role"] != "assistant":
            raise RefereeError(f"{where}: 'messages' should end with an assistant turn")
        return {"prompt": msgs[:-1], "completion": [msgs[-1]]}
    if "prompt" in example and "completion" in example:
        return {"prompt": as_turns(example["prompt"], "user", f"{where}: field 'prompt'"),
                "completion": as_turns(example["completion"], "assistant", f"{where}: field 'completion'")}
    raise RefereeError(f"{where}: expected 'messages' or 'prompt' and 'completion'")


def train_sft(base: str, examples: list[dict], out_dir: str | Path, settings: TrainSettings | None = None) -> tuple[str, list]:
    """Fine-tune ``base`` on demonstrations; returns (checkpoint spec, loss history)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from referee.trainers.common import loss_history

    settings = settings or TrainSettings()
    if not examples:
        raise RefereeError("sft: no training examples")
    rows = [to_prompt_completion(e, f"sft example {i + 1}") for i, e in enumerate(examples)]
    model, tokenizer = load_policy(base)
    out_dir = Path(out_dir)
    args = trl_args(SFTConfig, out_dir, settings, max_length=settings.max_length)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=peft_config(settings))
    fit(trainer)
    return save_checkpoint(trainer, out_dir, base, "sft", settings), loss_history(trainer)
