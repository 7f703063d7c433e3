"""What a person labels: a pair of answers to one question, or one solution split into steps.

Pairs come from any file ``referee judge`` reads (LLMBar, MT-Bench human judgments, TRL preference
pairs); steps from TRL stepwise files (``prompt``, ``completions``; ``labels`` optional: where present
they are the gold the page's agreement is measured against, as in best-of-N's
``records/convincing_wrong.jsonl`` with its null labels, which has none).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from referee.errors import RefereeError
from referee.rewards.data import load_steps
from referee.tasks.pairs import load_pairs

MODES = ("pairs", "steps")
STEP_LABELS = ("+", "0", "-")  # good, neutral (fine but not progress), wrong: PRM800K's scheme


@dataclass
class LabelItem:
    """One thing to label. Pairs: ``answers`` is [A, B] in the file's order and ``gold`` "A", "B", "tie" or
    None. Steps: ``answers`` are the steps and ``gold`` one of 1.0 / 0.0 / None per step (None: no gold,
    or neutral)."""

    id: str
    mode: str
    question: list  # chat messages before the answer(s)
    answers: list[str]
    gold: str | list | None = None
    meta: dict = field(default_factory=dict)

    def to_record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> "LabelItem":
        return cls(**record)

    def has_gold(self) -> bool:
        if self.mode == "pairs":
            return self.gold is not None
        return self.gold is not None and any(g is not None for g in self.gold)


def unique_ids(ids: list[str]) -> list[str]:
    """Ids made unique in order: MT-Bench repeats a question id for every pair of models."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i}#{seen[i]}")
    return out


def load_items(path: str | os.PathLike, mode: str, limit: int | None = None) -> list[LabelItem]:
    """The items of a pairs or stepwise file, the first ``limit`` of them."""
    if mode not in MODES:
        raise RefereeError(f"label: mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "pairs":
        pairs = load_pairs(path)[:limit]
        ids = unique_ids([p.id for p in pairs])
        items = [LabelItem(i, "pairs", p.question, [p.answer_a, p.answer_b], p.label,
                           {"category": p.category} if p.category else {}) for i, p in zip(ids, pairs)]
    else:
        solutions, _ = load_steps(path, limit=limit, neutral="skip", labelled=False)
        ids = unique_ids([s.id for s in solutions])
        items = [LabelItem(i, "steps", s.prompt, s.steps,
                           s.labels if any(v is not None for v in s.labels) else None, s.meta)
                 for i, s in zip(ids, solutions)]
    if not items:
        raise RefereeError(f"{path}: nothing to label")
    return items
