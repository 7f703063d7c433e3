"""A critic model's critique of each answer, with the answer's words it quotes located for highlighting.

The critic is asked (``templates/critics/critique.txt``) to quote the words of the answer that hold each
problem inside ``<quote></quote>``. A quote found in the answer (``tasks.quotes.locate_quote``) is
highlighted there; one that is not is shown in the critique as "not in the answer", so a critic that
invents quotes shows it. Critiques can also come from a file (any critic, a person, a larger model):
JSONL with ``id``, ``answer`` (0 or 1 for pairs; 0 for steps) and ``critique``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources

from referee import progress
from referee.errors import RefereeError
from referee.io import read_records
from referee.labels.items import LabelItem
from referee.models.base import Model, Sampling
from referee.tasks.quotes import find_quotes, locate_quote


@dataclass(frozen=True)
class Critique:
    item: str
    answer: int  # which answer of the item (pairs: 0 = A, 1 = B in the file's order; steps: 0)
    text: str
    source: str  # the critic's spec, or the file it came from

    def to_record(self) -> dict:
        return {"id": self.item, "answer": self.answer, "critique": self.text, "source": self.source}


def template() -> str:
    return (resources.files("referee") / "templates" / "critics" / "critique.txt").read_text()


def question_text(question: list) -> str:
    """The chat before the answer as plain text: the last user message, earlier turns labelled."""
    if len(question) == 1:
        return question[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in question)


def solution_text(item: LabelItem, index: int) -> str:
    """The answer a critique is about: one answer of a pair, or the steps of a solution, numbered."""
    if item.mode == "pairs":
        return item.answers[index]
    return "\n".join(f"Step {i + 1}: {s}" for i, s in enumerate(item.answers))


def targets(item: LabelItem) -> list[int]:
    return [0, 1] if item.mode == "pairs" else [0]


def critique_items(model: Model, items: list[LabelItem], max_new_tokens: int = 200, seed: int = 0,
                   prompt: str | None = None) -> list[Critique]:
    """The critic's critique of every answer of every item, greedy (a model's cache makes a rerun free)."""
    prompt = prompt or template()
    wanted = [(item, i) for item in items for i in targets(item)]
    chats = [[{"role": "user", "content": prompt.format(question=question_text(item.question),
                                                          answer=solution_text(item, i))}] for item, i in wanted]
    outs = model.generate(chats, Sampling(temperature=0.0, max_new_tokens=max_new_tokens, seed=seed),
                          desc="critiques")
    return [Critique(item.id, i, row[0].text.strip(), model.spec) for (item, i), row in zip(wanted, outs)]


def load_critiques(path: str | os.PathLike, items: list[LabelItem]) -> list[Critique]:
    """Critiques from a JSONL file; each must name an item and one of its answers."""
    known = {item.id: item for item in items}
    out = []
    for pos, obj in read_records(path):
        where = f"{path}:{pos}"
        for name in ("id", "critique"):
            if name not in obj:
                raise RefereeError(f"{where}: missing field '{name}'")
        item = known.get(str(obj["id"]))
        if item is None:
            continue  # critiques of items not being labelled (another --limit) are fine
        answer = obj.get("answer", 0)
        if answer not in targets(item):
            raise RefereeError(f"{where}: field 'answer' should be one of {targets(item)} for item {item.id!r}")
        if not isinstance(obj["critique"], str):
            raise RefereeError(f"{where}: field 'critique' should be a string")
        out.append(Critique(item.id, answer, obj["critique"], str(path)))
    progress.say(f"{len(out)} critiques read from {path}")
    return out


def segments(text: str, quotes: list[str]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, highlighted) runs, a piece highlighted where one of ``quotes`` stands."""
    marked = [False] * len(text)
    for q in quotes:
        span = locate_quote(q, text)
        if span:
            marked[span[0]:span[1]] = [True] * (span[1] - span[0])
    out: list[tuple[str, bool]] = []
    for ch, m in zip(text, marked):
        if out and out[-1][1] == m:
            out[-1] = (out[-1][0] + ch, m)
        else:
            out.append((ch, m))
    return out


def critique_view(critique: Critique, answer_texts: list[str]) -> dict:
    """What the page shows of a critique: its text in runs (quotes marked found or not found in the
    answer), and the quotes found, to highlight in the answer."""
    quotes = find_quotes(critique.text)
    found = [q for q in quotes if any(locate_quote(q, t) for t in answer_texts)]
    runs, rest = [], critique.text
    for q in quotes:
        tag = f"<quote>{q}</quote>"
        at = rest.lower().find(tag.lower())
        if at < 0:
            continue
        runs.append({"text": rest[:at], "quote": None})
        runs.append({"text": q, "quote": "found" if q in found else "missing"})
        rest = rest[at + len(tag):]
    runs.append({"text": rest, "quote": None})
    return {"runs": [r for r in runs if r["text"]], "found": found, "quotes": len(quotes),
            "missing": len(quotes) - len(found)}
