"""Direct preference optimisation on preference pairs (TRL's DPOTrainer), LoRA by default.

With LoRA, the reference model is the starting policy itself (the adapter switched off), which is what
iterated DPO wants: M_t+1 is trained against M_t.
"""

from __future__ import annotations

from pathlib import Path

from referee.errors import RefereeError
from referee.trainers.common import (TrainSettings, as_turns, fit, load_policy, loss_history, peft_config,
                                     save_checkpoint, trl_args)


def to_preference(example: dict, where: str) -> dict:
    """A pair in TRL's conversational preference format."""
    for f in ("prompt", "chosen", "rejected"):
        if f not in example:
            raise RefereeError(f"{where}: missing field '{f}'")
    return {"prompt": as_turns(example["prompt"], "user", f"{where}: field 'prompt'"),
            **{f: as_turns(example[f], "assistant", f"{where}: field '{f}'") for f in ("chosen", "rejected")}}


def train_dpo(base: str, pairs: list[dict], out_dir: str | Path, settings: TrainSettings | None = None,
              beta: float = 0.1) -> tuple[str, list]:
    """Train ``base`` on pairs; returns (checkpoint spec, loss/reward-margin history)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    settings = settings or TrainSettings()
    if not pairs:
        raise RefereeError("dpo: no preference pairs to train on")
    rows = [to_preference(p, f"dpo pair {i + 1}") for i, p in enumerate(pairs)]
    model, tokenizer = load_policy(base)
    if settings.lora is None:
        raise RefereeError("dpo: full fine-tuning needs a separate reference model; keep 'lora' set")
    out_dir = Path(out_dir)
    args = trl_args(DPOConfig, out_dir, settings, beta=beta, max_length=settings.max_length)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft_config(settings))
    fit(trainer)
    return save_checkpoint(trainer, out_dir, base, "dpo", settings), loss_history(trainer)
