"""Classification data for weak-to-strong experiments: texts with one of a few declared classes.

Every loader returns ``Example`` objects whose ``label`` is an index into the declared classes. A
label outside the classes, an empty text or a missing field is an error naming the file, the line and
the field: a weak-to-strong number computed on silently mangled labels would mean nothing.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from typing import Sequence

from referee.errors import RefereeError
from referee.io import read_records


@dataclass
class Example:
    id: str
    text: str
    label: int  # index into the task's classes
    meta: dict = field(default_factory=dict)


@dataclass
class Task:
    """A classification data set: examples plus the names of their classes (index = label)."""

    name: str
    classes: list[str]
    examples: list[Example]
    source: str = ""
    dropped: dict = field(default_factory=dict)  # why some records were left out, with counts


def _class_index(value, classes: Sequence, where: str, field_name: str) -> int:
    """The index of ``value`` among the declared classes; numbers and strings compare by their text."""
    if isinstance(value, (dict, list)) or value is None:
        raise RefereeError(f"{where}: field '{field_name}' should be one of {list(classes)}, got {value!r}")
    text = str(value).strip()
    if isinstance(value, bool):
        text = text.lower()
    for i, c in enumerate(classes):
        if text == str(c).strip():
            return i
    raise RefereeError(f"{where}: field '{field_name}' is {value!r}, not one of the declared classes {list(classes)}")


def _text(obj: dict, fields: Sequence[str], where: str) -> str:
    parts = []
    for f in fields:
        if f not in obj:
            raise RefereeError(f"{where}: missing field '{f}'")
        if not isinstance(obj[f], str):
            raise RefereeError(f"{where}: field '{f}' should be a string, got {type(obj[f]).__name__}")
        parts.append(obj[f].strip())
    text = "\n".join(p for p in parts if p)
    if not text:
        raise RefereeError(f"{where}: field '{'/'.join(fields)}' is empty")
    return text


def load_classification(path: str | os.PathLike, text_field: str | Sequence[str], label_field: str,
                        classes: Sequence, name: str | None = None, id_field: str | None = "id") -> Task:
    """Any JSONL (or JSON array) file with a text field (or several, joined by newlines) and a label.

    ``classes`` declares the allowed label values in order; at least two.
    """
    classes = [str(c).lower() if isinstance(c, bool) else str(c) for c in classes]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise RefereeError(f"{path}: declare at least two distinct classes, got {classes}")
    fields = [text_field] if isinstance(text_field, str) else list(text_field)
    examples = []
    for pos, obj in read_records(path):
        where = f"{path}:{pos}"
        if label_field not in obj:
            raise RefereeError(f"{where}: missing field '{label_field}'")
        label = _class_index(obj[label_field], classes, where, label_field)
        ident = str(obj.get(id_field, pos)) if id_field else str(pos)
        examples.append(Example(ident, _text(obj, fields, where), label, {"line": pos}))
    if not examples:
        raise RefereeError(f"{path}: no records in the file")
    return Task(name or os.path.basename(str(path)), classes, _unique_ids(examples), str(path))


def load_csqa2(path: str | os.PathLike) -> Task:
    """CommonsenseQA 2.0: one JSON object per line with ``question`` and ``answer`` (yes / no)."""
    return load_classification(path, "question", "answer", ["no", "yes"], name="csqa2")


def load_liar(path: str | os.PathLike) -> Task:
    """LIAR as binary classification: ``text`` (statement and speaker details) and ``label`` 0 / 1."""
    return load_classification(path, "text", "label", [0, 1], name="liar", id_field=None)


def pair_text(question: str, a: str, b: str) -> str:
    return f"Question:\n{question}\n\nResponse A:\n{a}\n\nResponse B:\n{b}"


def load_pair_task(path: str | os.PathLike, seed: int = 0) -> Task:
    """Labelled preference pairs as "is response A the better one?" (classes B, A).

    Ties and unlabelled pairs are left out (and counted). Files such as TRL's prompt/chosen/rejected
    always put the better answer first, so each pair's sides are swapped by a coin flip seeded from its
    id: otherwise one class would be empty and a model could score perfectly by answering "A".
    """
    from referee.tasks.pairs import load_pairs

    pairs = load_pairs(path)
    examples, ties, unlabelled = [], 0, 0
    for p in pairs:
        if p.label is None:
            unlabelled += 1
            continue
        if p.label == "tie":
            ties += 1
            continue
        question = "\n\n".join(f"{m['role']}: {m['content']}" for m in p.question) if len(p.question) > 1 \
            else p.question[0]["content"]
        a, b, a_better = p.answer_a, p.answer_b, p.label == "A"
        swapped = _coin(f"{seed}:{p.id}")
        if swapped:
            a, b, a_better = b, a, not a_better
        if not question.strip() or not a.strip() or not b.strip():
            raise RefereeError(f"{path}: pair {p.id!r} has an empty question or answer")
        examples.append(Example(str(p.id), pair_text(question, a, b), int(a_better), {"swapped": swapped}))
    if len(examples) < 2:
        raise RefereeError(f"{path}: fewer than two labelled pairs that are not ties")
    return Task("pairs", ["B", "A"], _unique_ids(examples), str(path), {"ties": ties, "unlabelled": unlabelled})


def _coin(key: str) -> bool:
    return hashlib.sha256(key.encode()).digest()[0] & 1 == 1


def _unique_ids(examples: list[Example]) -> list[Example]:
    """Make ids unique (files with repeated ids get a suffix), since records are joined by id."""
    seen: dict[str, int] = {}
    for e in examples:
        if e.id in seen:
            seen[e.id] += 1
            e.id = f"{e.id}#{seen[e.id]}"
        else:
            seen[e.id] = 0
    return examples


# ---- splits ------------------------------------------------------------------------------------
@dataclass
class Split:
    """Part 1 trains the weak supervisor, part 2 is labelled by it for the students, test is held out."""

    weak: list[Example]
    w2s: list[Example]
    test: list[Example]

    def sizes(self) -> dict:
        return {"weak": len(self.weak), "w2s": len(self.w2s), "test": len(self.test)}


def make_split(train: Task, test: Task | None, n_weak: int, n_w2s: int, n_test: int, seed: int,
               where: str = "split") -> Split:
    """Shuffle (seeded) and cut: ``n_weak`` + ``n_w2s`` from ``train``, ``n_test`` from ``test`` (or
    from what is left of ``train`` when no test file is given). 0 for ``n_test`` takes a whole test file.
    """
    for key, n in (("n_weak", n_weak), ("n_w2s", n_w2s)):
        if n < 2:
            raise RefereeError(f"{where}: setting '{key}' must be at least 2, got {n}")
    if n_test < 0 or (n_test == 0 and test is None):
        raise RefereeError(f"{where}: setting 'n_test' must be at least 1 without a test file, got {n_test}")
    rng = random.Random(seed)
    pool = list(train.examples)
    rng.shuffle(pool)
    need = n_weak + n_w2s + (n_test if test is None else 0)
    if need > len(pool):
        settings = "n_weak + n_w2s" + (" + n_test" if test is None else "")
        raise RefereeError(f"{where}: settings {settings} ask for {need} examples but {train.source} has only "
                           f"{len(pool)}; lower them")
    weak, w2s = pool[:n_weak], pool[n_weak:n_weak + n_w2s]
    if test is None:
        held = pool[n_weak + n_w2s:n_weak + n_w2s + n_test]
    else:
        held = list(test.examples)
        if n_test > len(held):
            raise RefereeError(f"{where}: setting 'n_test' asks for {n_test} examples but {test.source} has only "
                               f"{len(held)}; lower it (0 takes the whole file)")
        if n_test:
            random.Random(seed + 1).shuffle(held)
            held = held[:n_test]
    for part, name in ((weak, "n_weak"), (w2s, "n_w2s")):
        if len({e.label for e in part}) < 2:
            raise RefereeError(f"{where}: the {name} part holds only one class; use more examples")
    return Split(weak, w2s, held)
