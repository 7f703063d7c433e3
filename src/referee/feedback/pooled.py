"""One effect over several runs: the change of a model's held-out accuracy against M1, pooled over
``verifiable_feedback`` run folders (seeds), from the records each run kept.

Each run contributes its problems' paired differences (M2 right minus M1 right, per held-out problem).
The pooled change is their mean over all problems; its interval resamples problems within each run
(a stratified bootstrap), so every resample keeps each run's size, as the experiment did.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from referee.errors import RefereeError
from referee.io import read_jsonl
from referee.config import load_config_file
from referee.stats import LEVEL, N_BOOT, Estimate, paired_diff


def _stage(model: str) -> str:
    return "eval_" + model.lower().replace("-", "_")


def _diffs(folder: Path, model: str) -> tuple[np.ndarray, dict]:
    config = load_config_file(folder / "config.yaml")
    if config.get("protocol") != "verifiable_feedback":
        raise RefereeError(f"{folder}: not a verifiable_feedback run (protocol {config.get('protocol')!r})")
    paths = [folder / "records" / f"{_stage(m)}.jsonl" for m in ("M1", model)]
    for p in paths:
        if not p.is_file():
            raise RefereeError(f"{p}: missing; has this run evaluated {model} (its 'arms', or run it to the end)?")
    base, new = ([obj for _, obj in read_jsonl(p)] for p in paths)
    if [r["id"] for r in base] != [r["id"] for r in new]:
        raise RefereeError(f"{folder}: M1 and {model} answered different problems")
    diffs = np.array([float(n["correct"]) - float(b["correct"]) for b, n in zip(base, new)])
    return diffs, {"ids": [r["id"] for r in base], "folder": str(folder), "seed": config.get("seed", 0),
                   "split": config.get("evaluate_on", "dev"),
                   "problems": len(diffs),
                   "m1_accuracy": float(np.mean([b["correct"] for b in base])),
                   "accuracy": float(np.mean([n["correct"] for n in new])),
                   "flipped_right": int((diffs > 0).sum()), "flipped_wrong": int((diffs < 0).sum()),
                   "change": paired_diff([float(n["correct"]) for n in new], [float(b["correct"]) for b in base])
                   .to_dict()}


def pooled_change(folders: list[str | os.PathLike], model: str = "M2-checker", n_boot: int = N_BOOT,
                  seed: int = 0) -> dict:
    """Per-run and pooled change of ``model`` against M1 (module doc)."""
    if not folders:
        raise RefereeError("pool: give at least one run folder")
    per_run, all_diffs, seen = [], [], {}
    for folder in folders:
        diffs, summary = _diffs(Path(folder), model)
        ids = {r for r in summary.pop("ids")}
        for other, their in seen.items():
            if ids & their:
                raise RefereeError(f"pool: {folder} and {other} share {len(ids & their)} held-out problems (the same "
                                   f"seed?); pooling them would count those problems twice")
        seen[str(folder)] = ids
        if per_run and summary["split"] != per_run[0]["split"]:
            raise RefereeError(f"pool: {folder} was scored on its {summary['split']} problems, {per_run[0]['folder']} "
                               f"on its {per_run[0]['split']} problems; pool runs of one split")
        per_run.append(summary)
        all_diffs.append(diffs)
    rng = np.random.default_rng(seed)
    total = sum(len(d) for d in all_diffs)
    boots = np.zeros(n_boot)
    for d in all_diffs:
        boots += d[rng.integers(0, len(d), size=(n_boot, len(d)))].sum(axis=1)
    boots /= total
    alpha = (1 - LEVEL) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    pooled = Estimate(float(np.concatenate(all_diffs).mean()), float(lo), float(hi), total)
    return {"model": model, "split": per_run[0]["split"], "runs": per_run, "pooled": pooled.to_dict(),
            "flipped_right": sum(r["flipped_right"] for r in per_run),
            "flipped_wrong": sum(r["flipped_wrong"] for r in per_run)}
