"""Training inside a protocol: each trained model is a stage of the run, written once, in one way.

    spec = stages.sft(run, "sft_m1", name="m1", base=cfg.model, data=rows, settings=cfg.sft)
    spec = stages.dpo(run, "it1_dpo", name="m2", base=spec, pairs=pairs, settings=cfg.dpo, beta=cfg.dpo_beta)
    folder = stages.reward_model(run, "fsbs_rm", name="critique_rm", base=cfg.model, pairs=prefs, options=options)

One rule for all of them (``checkpoint``):
- the stage is keyed by the base model's ``run.model_key`` (read from its files, never by loading its
  weights) and what it is trained on, so changed data or settings train a new model, never reuse one;
- the product is the folder RUN/checkpoints/NAME, removed before training starts, so nothing of a stale
  or half-written model survives into the new one;
- the folder counts as made when its marker, the file its writer puts down last, is there (a policy's
  ``referee-checkpoint.json``, a reward model's ``referee-verifier.json``), and the stage is marked done
  only after that; a killed training leaves the stage not done, and it trains again;
- except that a killed SFT or DPO training goes on where it stopped: it keeps its full state every few steps
  (``trainers.common.resume_every``) in RUN/checkpoints/NAME/trainer, marked with the stage's key, and the
  next run of the same stage with the same key resumes from the latest (any other key clears it).

What training measured goes to metrics.json under the stage's name (or ``report_as``), beside ``report``.

Not here: models whose only product is their predictions inside one stage (weak-to-strong's probes and
LoRA classifiers, ``protocols.weak_to_strong.TrainingStages``) are trained inside that stage and kept as its
records, never as a checkpoint. No protocol trains by GRPO yet (``referee train grpo`` is a command); its
stage belongs here when one does.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from referee import progress
from referee.runs import Run, fingerprint
from referee.trainers import TrainSettings, train_dpo, train_sft
from referee.trainers.sft import longer_than


def checkpoint(run: Run, stage: str, *, base: str, inputs: dict, train: Callable[[Path], None],
               name: str | None = None, marker: str | None = None, into: Path | None = None,
               owned: Sequence[str] = (), resumable: bool = False) -> Path:
    """A model trained from ``base`` by ``train(folder)`` as stage ``stage``, into RUN/checkpoints/NAME
    (NAME defaults to the stage): trained only when no finished one in this run has the same base and
    ``inputs``. Returns the folder.

    ``into`` puts the model in a folder it shares with other files (``referee rm train`` makes the run
    folder itself the verifier): then only ``owned``, the names its writer makes, are removed first."""
    from referee.models.checkpoints import MARKER

    out = into or run.folder / "checkpoints" / (name or stage)
    key = keyed(run, base, inputs)

    def compute() -> None:
        from referee.distributed import is_main_process, wait_for_everyone
        from referee.models.devices import free_memory
        from referee.trainers.common import mark_resumable, resumable_key

        resume_key = fingerprint(key) if resumable and into is None else None
        goes_on = resume_key is not None and resumable_key(out) == resume_key
        clear(out, owned if into else None, keep="trainer" if goes_on else None)
        if resume_key is not None and is_main_process():
            mark_resumable(out, stage, resume_key)
        wait_for_everyone()
        train(out)
        free_memory()  # the trainer's copy of the model and its optimiser are garbage now

    run.run_stage(stage, key, compute, outputs=[out / (marker or MARKER)])
    return out


def clear(folder: Path, owned: Sequence[str] | None, keep: str | None = None) -> None:
    """Remove what a stale or half-written model left: the whole folder (but ``keep``, an interrupted
    training's states of the same stage), or only the ``owned`` names in it (the marker first, so a crash
    part-way leaves nothing that reads as a finished model)."""
    from referee.distributed import is_main_process

    if not is_main_process():  # one process writes the model, so one clears it
        return
    if owned is None:
        for child in (folder.iterdir() if keep and folder.is_dir() else ()):
            if child.name != keep:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        return
    for name in owned:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def keyed(run: Run, base: str, inputs: dict) -> dict:
    """What a training stage is keyed on: its base model's key (from the model's files) and ``inputs``."""
    return {"base": run.model_key(base), **inputs}


def sft(run: Run, stage: str, *, base: str, data: list[dict], settings: TrainSettings, name: str | None = None,
        report: dict | None = None, report_as: str | None = None) -> str:
    """``base`` fine-tuned on demonstrations (TRL's conversational rows); returns the checkpoint's spec."""
    def train(out: Path) -> None:
        progress.say(f"{stage}: SFT on {len(data)} examples")
        cut = longer_than(base, data, settings.max_length)  # TRL cuts their replies: said, never hidden
        _, history = train_sft(base, data, out, settings)
        run.save_metrics({report_as or stage: {"examples": len(data), "longer_than_max_length": cut, **(report or {}),
                                               "loss_history": history}})

    inputs = {"data": data, "settings": settings}
    return f"hf:{checkpoint(run, stage, base=base, inputs=inputs, train=train, name=name, resumable=True)}"


def dpo(run: Run, stage: str, *, base: str, pairs: list[dict], settings: TrainSettings, beta: float,
        name: str | None = None, report: dict | None = None, report_as: str | None = None) -> str:
    """``base`` trained by DPO on preference pairs against itself as the reference; returns the spec. The
    pairs are keyed as given (fields beyond prompt, chosen and rejected included) and trained on those three."""
    def train(out: Path) -> None:
        progress.say(f"{stage}: DPO on {len(pairs)} pairs")
        _, history = train_dpo(base, pairs, out, settings, beta=beta)
        run.save_metrics({report_as or stage: {"pairs": len(pairs), **(report or {}), "loss_history": history}})

    inputs = {"pairs": pairs, "settings": settings, "beta": beta}
    return f"hf:{checkpoint(run, stage, base=base, inputs=inputs, train=train, name=name, resumable=True)}"


def reward_model(run: Run, stage: str, *, base: str, pairs: Sequence, options, name: str | None = None,
                 center: float = 0.0, max_length: int = 1024, key: dict[str, Any] | None = None,
                 report: dict | None = None) -> Path:
    """A Bradley-Terry reward model (a head on ``base``, frozen or with LoRA) trained on ``pairs``
    (``PreferencePair``) with ``options`` (``TrainOptions``); returns its folder, for
    ``supervisors.build_verifier(f"rm:{folder}")``. ``key``, when given, is what the stage is keyed on besides the
    base, instead of the pairs and every setting: it must name all that changes the head."""
    from referee.rewards.heads import CONFIG_NAME

    def train(out: Path) -> None:
        from referee.rewards.bradley_terry import train_reward_model

        progress.say(f"{stage}: reward model on {len(pairs)} pairs")
        rm, history = train_reward_model(base, list(pairs), options, center=center, max_length=max_length)
        rm.save(out)
        run.save_metrics({stage: {**(report or {}), "training": history}})

    if key is None:
        key = {"pairs": list(pairs), "options": options, "center": center, "max_length": max_length}
    return checkpoint(run, stage, base=base, inputs=key, train=train, name=name, marker=CONFIG_NAME)
