"""Supervised fine-tuning on demonstrations (TRL's SFTTrainer), loss on the assistant's reply only."""

from __future__ import annotations

from pathlib import Path

from referee import progress
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


def overlong(tokenizer, rows: list[dict], max_length: int) -> int:
    """How many prompt/completion rows are longer than ``max_length`` tokens as the chat template renders
    them: TRL keeps their start, so their reply is cut short (and the row dropped when none of it fits)."""
    return sum(len(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True,
                                                 return_dict=True)["input_ids"]) > max_length for r in rows)


def longer_than(base: str, examples: list[dict], max_length: int) -> int:
    """``overlong`` for demonstrations in any form ``train_sft`` takes, counted with ``base``'s tokenizer
    (no weights loaded): for a report written before training, or without it."""
    from referee.models.openai import load_tokenizer

    rows = [to_prompt_completion(e, f"sft example {i + 1}") for i, e in enumerate(examples)]
    return overlong(load_tokenizer(base), rows, max_length)


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
    cut = overlong(tokenizer, rows, settings.max_length)
    if cut:
        progress.say(f"sft: {cut} of {len(rows)} examples are longer than max_length {settings.max_length} "
                     "tokens: TRL cuts their replies short (raise max_length to keep them whole)")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=peft_config(settings))
    fit(trainer)
    return save_checkpoint(trainer, out_dir, base, "sft", settings), loss_history(trainer)
