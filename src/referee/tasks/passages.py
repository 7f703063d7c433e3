"""Reading-comprehension items for debate and consultancy: a passage, a question and two candidate answers,
one right. Debaters read the passage, the judge may not (Khan et al. 2024).

Formats, recognised per line by their fields (``load_passage_items`` reads both; ``load_cosmosqa`` only the first):

- CosmosQA: ``id``, ``context``, ``question``, ``answer0``..``answer3``, ``label`` (index of the right answer);
- generic: ``id``, ``passage``, ``question``, ``answers`` (two distinct strings), ``correct`` (0 or 1).

Every rule below is a hash of (seed, item id), never of the file's order, so an item gets the same
distractor, order and split wherever it sits in the file and however many items are loaded.

Distractor (CosmosQA). The wrong answer shown is drawn by the hash from the labelled answer's rivals, leaving
out empty ones and ones equal to it after ``quotes.normalise`` (case, punctuation, spacing). "Catch-all"
answers ("None of the above choices .", "all of the above", "none of these", ...: ``is_catch_all``) mean
nothing when only two answers are shown, so:

- a catch-all is never the distractor; an item whose only rivals are catch-alls is dropped, counted as
  ``only_catch_all_distractors`` (CosmosQA has none: at most one of its four answers is a catch-all);
- an item whose *right* answer is a catch-all is dropped, counted as ``correct_is_catch_all`` (about 9% of
  the CosmosQA validation half).

A generic line is taken as written: its two answers are the pair, catch-all or not.

Order. Which answer is shown first is a coin per item (the hash), for both formats: the right answer comes
first on about half the items, and ``correct`` says where it is. A file that always lists the right answer
first still gives both orders.

Loaders return a ``PassageSet``: a plain list of ``PassageItem`` that also carries ``dropped`` (reason ->
count, every reason present, zeros included). Bad lines raise one ``RefereeError`` line naming file, line
and field.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Iterable

from referee.draws import seeded_unit
from referee.errors import RefereeError
from referee.io import read_records, require
from referee.tasks.quotes import normalise

SPLITS = ("train", "validation", "test")
DROP_REASONS = ("correct_is_catch_all", "only_catch_all_distractors")

_CATCH_ALL = re.compile(r"(none|all|neither|both) of (the )?(above|these|those|following|choices|options|answers)"
                        r"( (choices|options|answers))?")


@dataclass(frozen=True)
class PassageItem:
    id: str
    passage: str
    question: str
    answers: tuple[str, str]  # in the order shown to readers: answers[0] is shown first ("answer 1")
    correct: int  # 0 or 1: the index in `answers` of the right one
    where: str = ""  # "FILE:LINE" it came from, for error messages and records


class PassageSet(list):
    """The loaded items (it is the list itself) plus ``dropped``: how many lines were left out, per reason."""

    def __init__(self, items: Iterable[PassageItem] = (), dropped: dict[str, int] | None = None):
        super().__init__(items)
        self.dropped = {reason: 0 for reason in DROP_REASONS} | (dropped or {})

    @property
    def items(self) -> list[PassageItem]:
        return list(self)


def is_catch_all(answer: str) -> bool:
    """True for an answer about the other answers ("None of the above choices .", "All of the above")."""
    return _CATCH_ALL.fullmatch(normalise(answer)) is not None


def _text(obj: dict, field: str, where: str) -> str:
    """A required string field that is not blank, stripped."""
    value = require(obj, field, str, where).strip()
    if not value:
        raise RefereeError(f"{where}: field '{field}' is empty")
    return value


def _item_id(obj: dict, where: str) -> str:
    value = require(obj, "id", (str, int), where)
    if isinstance(value, bool) or not str(value).strip():
        raise RefereeError(f"{where}: field 'id' should be a non-empty string or integer, got {value!r}")
    return str(value).strip()


def _index(obj: dict, field: str, size: int, where: str, what: str) -> int:
    """An index field (an int, or a string of one) that points at one of ``size`` answers."""
    value = require(obj, field, (int, str), where)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise RefereeError(f"{where}: field '{field}' should be 0-{size - 1} (an index into {what}), got {value!r}")
    return value


def _shown(item_id: str, right: str, wrong: str, seed: int) -> tuple[tuple[str, str], int]:
    """(answers in the order shown, index of the right one): the right answer first when the coin says so."""
    if seeded_unit(seed, "order", item_id) < 0.5:
        return (right, wrong), 0
    return (wrong, right), 1


def _cosmosqa(obj: dict, where: str, seed: int) -> PassageItem | str:
    """An item from a CosmosQA line, or the reason it is dropped."""
    item_id = _item_id(obj, where)
    passage, question = _text(obj, "context", where), _text(obj, "question", where)
    for first in ("answer0", "answer1"):
        require(obj, first, str, where)
    count = 0
    while f"answer{count}" in obj:
        require(obj, f"answer{count}", str, where)
        count += 1
    answers = [obj[f"answer{i}"].strip() for i in range(count)]
    names = f"answer0..answer{count - 1}"
    label = _index(obj, "label", count, where, names)
    right = answers[label]
    if not right:
        raise RefereeError(f"{where}: field 'answer{label}' (the labelled answer) is empty")
    if is_catch_all(right):
        return "correct_is_catch_all"
    rivals = [a for i, a in enumerate(answers) if i != label and a and normalise(a) != normalise(right)]
    if not rivals:
        raise RefereeError(f"{where}: fields {names}: no answer distinct from the labelled one "
                           f"(answer{label}); an item needs two distinct answers")
    usable = [a for a in rivals if not is_catch_all(a)]
    if not usable:
        return "only_catch_all_distractors"
    wrong = usable[int(seeded_unit(seed, "distractor", item_id) * len(usable))]
    shown, correct = _shown(item_id, right, wrong, seed)
    return PassageItem(item_id, passage, question, shown, correct, where)


def _generic(obj: dict, where: str, seed: int) -> PassageItem:
    item_id = _item_id(obj, where)
    passage, question = _text(obj, "passage", where), _text(obj, "question", where)
    answers = require(obj, "answers", list, where)
    if len(answers) != 2 or not all(isinstance(a, str) and a.strip() for a in answers):
        raise RefereeError(f"{where}: field 'answers' should be a list of two non-empty strings, got {answers!r}")
    if normalise(answers[0]) == normalise(answers[1]):
        raise RefereeError(f"{where}: field 'answers' should hold two distinct answers, got {answers!r}")
    correct = _index(obj, "correct", 2, where, "'answers'")
    right, wrong = answers[correct].strip(), answers[1 - correct].strip()
    shown, correct = _shown(item_id, right, wrong, seed)
    return PassageItem(item_id, passage, question, shown, correct, where)


def _load(path: str | os.PathLike, seed: int, generic: bool) -> PassageSet:
    items, dropped, first_line = PassageSet(), {}, {}
    for lineno, obj in read_records(path):
        where = f"{path}:{lineno}"
        if generic and "answers" in obj:
            item = _generic(obj, where, seed)
        elif generic and "context" not in obj and "answer0" not in obj:
            raise RefereeError(f"{where}: not a passage item: expected fields id, passage, question, answers, "
                               f"correct (or CosmosQA's id, context, question, answer0..answer3, label)")
        else:
            item = _cosmosqa(obj, where, seed)
        if isinstance(item, str):
            dropped[item] = dropped.get(item, 0) + 1
            continue
        if item.id in first_line:
            raise RefereeError(f"{where}: field 'id': {item.id!r} is already used at line {first_line[item.id]}")
        first_line[item.id] = lineno
        items.append(item)
    items.dropped |= dropped
    if not items:
        left_out = f" ({sum(dropped.values())} dropped: {dropped})" if dropped else ""
        raise RefereeError(f"{path}: no passage items in the file{left_out}")
    return items


def load_cosmosqa(path: str | os.PathLike, seed: int = 0) -> PassageSet:
    """CosmosQA lines as two-answer items (module doc: distractor, catch-alls, order); ``.dropped`` counts
    the lines left out."""
    return _load(path, seed, generic=False)


def load_passage_items(path: str | os.PathLike, seed: int = 0) -> PassageSet:
    """Generic or CosmosQA lines (recognised per line) as two-answer items; ``.dropped`` as in
    ``load_cosmosqa``."""
    return _load(path, seed, generic=True)


def split_items(items: Iterable[PassageItem], seed: int = 0,
                shares: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> dict[str, list[PassageItem]]:
    """Train / validation / test by a hash of (seed, id): deterministic, disjoint, independent of order and
    of which other items are present. Items keep their order within each part."""
    shares = tuple(shares)
    if (len(shares) != 3 or not all(isinstance(s, (int, float)) and math.isfinite(s) and s >= 0 for s in shares)
            or abs(sum(shares) - 1) > 1e-6):
        raise RefereeError(f"split shares should be three non-negative numbers (train, validation, test) "
                           f"summing to 1, got {shares}")
    parts: dict[str, list[PassageItem]] = {name: [] for name in SPLITS}
    for item in items:
        u = seeded_unit(seed, "split", item.id)
        name = "train" if u < shares[0] else "validation" if u < shares[0] + shares[1] else "test"
        parts[name].append(item)
    return parts
