"""referee's supervisors in a user's own TRL training: a judge, reward model or checker as a GRPO reward
function, and referee's preference records as a TRL DPO dataset (and back).

    from trl import GRPOTrainer
    from referee.integrations.trl import reward_function
    trainer = GRPOTrainer(model=..., reward_funcs=[reward_function("judge:embedded", cache="judge.sqlite")],
                          train_dataset=...)

A reward function scores a batch at once (``score_many``), keeps its judge's answers in ``cache`` when
given, and never turns an unreadable grade into a number: it returns None there, which TRL reads as "no
reward from this function" (NaN, left out of the sum), and counts it (``scored``, ``invalid``, and the
``referee/invalid_rate`` metric TRL logs beside its own).
"""

from __future__ import annotations

import os
from typing import Iterable

from referee.errors import RefereeError
from referee.trainers.dpo import to_preference
from referee.trainers.grpo import VerifierReward

PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")


def reward_function(supervisor, *, answer_column: str = "answer", cache: str | os.PathLike | None = None,
                    name: str | None = None) -> VerifierReward:
    """A TRL reward function (``prompts, completions, **columns -> list[float | None]``) from a scorer
    spec (``judge:M``, ``judge-additive:M``, ``rm:``/``orm:``/``prm:FOLDER``, ``exact``,
    ``python:MODULE:FUNCTION``) or a built scorer. ``exact`` reads each completion's gold answer from the
    dataset column ``answer_column``, which TRL hands to reward functions (1 right, 0 wrong; a completion
    that states no answer is wrong)."""
    if isinstance(supervisor, str) and supervisor == "exact":
        from referee.supervisors import build_verifier

        return LoggedReward(build_verifier("exact", golds_per_call=True), name or "reward_exact", answer_column)
    if isinstance(supervisor, str):
        from referee.supervisors import build_verifier, model_loader

        supervisor = build_verifier(supervisor, None, model_loader(cache))
    if not hasattr(supervisor, "score_many"):
        raise RefereeError(f"reward_function: {type(supervisor).__name__} does not score single answers; give a "
                           "scorer spec (judge:M, rm:FOLDER, exact, ...) or an object with score_many")
    return LoggedReward(supervisor, name)


class LoggedReward(VerifierReward):
    """``VerifierReward`` that also hands TRL its share of unreadable scores for each batch, and for a
    checker, the gold answers from the dataset column ``gold_column``."""

    def __init__(self, verifier, name: str | None = None, gold_column: str | None = None):
        super().__init__(verifier)
        if name:
            self.__name__ = name
        self.gold_column = gold_column

    def __call__(self, prompts, completions, **columns) -> list[float | None]:
        golds = None
        if self.gold_column is not None:
            if self.gold_column not in columns:
                given = ", ".join(sorted(k for k in columns if k not in ("trainer_state", "log_extra", "log_metric")))
                raise RefereeError(f"reward {self.__name__!r}: the dataset has no column {self.gold_column!r} with "
                                   f"gold answers (columns: {given or 'none'}); name it with answer_column=")
            golds = [str(a) for a in columns[self.gold_column]]
        rewards = super().__call__(prompts, completions, golds=golds)
        log_metric = columns.get("log_metric")
        if callable(log_metric) and rewards:
            log_metric("referee/invalid_rate", sum(r is None for r in rewards) / len(rewards))
        return rewards


def to_dpo_dataset(records: Iterable[dict], keep: tuple[str, ...] = ()):
    """referee preference records (``prompt``, ``chosen``, ``rejected``: strings or chats, as RLAIF,
    self-rewarding and ``referee debate export`` write them) as a TRL conversational preference
    ``datasets.Dataset``; ``keep`` names extra fields to carry along (``id``, ``margin``)."""
    from datasets import Dataset

    rows = []
    for i, record in enumerate(records, start=1):
        row = to_preference(record, f"preference record {i}")
        missing = [k for k in keep if k not in record]
        if missing:
            raise RefereeError(f"preference record {i}: missing field '{missing[0]}' (asked for by keep=)")
        rows.append({**row, **{k: record[k] for k in keep}})
    if not rows:
        raise RefereeError("to_dpo_dataset: no preference records")
    return Dataset.from_list(rows)


def from_dpo_dataset(dataset) -> list[dict]:
    """A TRL preference dataset (standard or conversational; explicit prompt) as referee records, which
    ``referee judge --pairs``, ``referee train dpo`` and ``load_pairs`` read: chosen is answer A, so a
    judge's agreement with the data is its agreement with the chosen side."""
    records = []
    for i, row in enumerate(dataset, start=1):
        missing = [f for f in PREFERENCE_FIELDS if f not in row]
        if missing:
            raise RefereeError(f"DPO dataset row {i}: missing field '{missing[0]}' (TRL's preference format has "
                               "prompt, chosen and rejected)")
        record = {"id": str(row.get("id", i)), "prompt": row["prompt"]}
        for side in ("chosen", "rejected"):
            value = row[side]
            record[side] = value[-1]["content"] if isinstance(value, list) and value else value
            if not isinstance(record[side], str):
                raise RefereeError(f"DPO dataset row {i}: field '{side}' should be a string or a list of turns")
        records.append(record)
    return records
