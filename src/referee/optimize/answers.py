"""The task model's answer to a prompt, read as one of the label words.

The probability route reads the label words' probabilities at the start of the model's reply through
``model.choice`` (as judges read verdicts): no parsing, and the probabilities are kept. Servers that give
no log-probabilities take the generative route: a short greedy reply, in which the first label word that
appears as a whole word (any case) is the answer. Either way an answer that cannot be read (no probability
mass on any label word, or a reply naming none) is None: counted as invalid, and never a right answer.

A small model's probabilities lean on one label word whatever the input (on LIAR the embedded model says "No"
whatever the statement and the prompt, while its P(Yes) still ranks lies above truths a little better than
chance: docs/results/prompt-optimisation.md). ``calibrated`` removes that lean per prompt, as batch calibration does for
judges (Zhou et al. 2024): each word's probability is divided by its mean over the items the prompt answered
in the same call, and the answer is the largest of those ratios. It reads the model's probabilities only,
never a label, so calibrating on the test items themselves leaks nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from referee.models.base import Model, Sampling

MODES = ("probability", "generative")


@dataclass(frozen=True)
class AnswerReading:
    """How answers are read: ``prefix`` is written for the model before its answer (probability route);
    ``max_new_tokens`` bounds a generative reply."""

    mode: str = "probability"
    calibration: str = "none"  # none | batch (probability route)
    prefix: str = ""
    max_new_tokens: int = 8
    seed: int = 0


@dataclass(frozen=True)
class Answer:
    label: int | None  # index into the label words; None when unreadable
    probs: dict[str, float] | None = None  # probability route
    raw: str | None = None  # generative route: the reply
    calibrated: dict[str, float] | None = None  # batch calibration: each probability over its batch mean

    def record(self, words: list[str]) -> dict:
        out = {"answer": None if self.label is None else words[self.label], "probs": self.probs, "raw": self.raw}
        return out if self.calibrated is None else {**out, "calibrated": self.calibrated}


def read_answers(model: Model, prompts: list[str], words: list[str], how: AnswerReading,
                 desc: str = "task answers", groups: list | None = None) -> list[Answer]:
    """One answer per rendered prompt, each sent as a single user message, in one batched call. With batch
    calibration, ``groups`` names each prompt's group (the template it was rendered from): answers are
    calibrated within their group (default: all in one)."""
    if not prompts:
        return []
    chats = [[{"role": "user", "content": p}] for p in prompts]
    if how.mode == "probability":
        results = model.choice(chats, {w: [w] for w in words}, prefix=how.prefix, desc=desc)
        answers = [Answer(words.index(r.best) if r.mass > 0 else None, dict(r.probs)) for r in results]
        return calibrated_by_group(answers, words, groups) if how.calibration == "batch" else answers
    sampling = Sampling(temperature=0.0, max_new_tokens=how.max_new_tokens, seed=how.seed)
    replies = model.generate(chats, sampling, desc=desc)
    return [Answer(parse_label(out[0].text, words), raw=out[0].text) for out in replies]


def calibrated_by_group(answers: list[Answer], words: list[str], groups: list | None) -> list[Answer]:
    """``calibrated`` applied within each group of answers, in their order."""
    members: dict = {}
    for i, g in enumerate(groups if groups is not None else [None] * len(answers)):
        members.setdefault(g, []).append(i)
    out = list(answers)
    for rows in members.values():
        for i, a in zip(rows, calibrated([answers[i] for i in rows], words)):
            out[i] = a
    return out


def calibrated(answers: list[Answer], words: list[str]) -> list[Answer]:
    """Batch calibration of one prompt's answers: P(word) / mean P(word) over ``answers``; unreadable answers
    stay unreadable, and a word no answer gave any probability is never chosen."""
    readable = [a for a in answers if a.label is not None and a.probs]
    means = {w: sum(a.probs.get(w, 0.0) for a in readable) / len(readable) for w in words} if readable else {}
    out = []
    for a in answers:
        if a.label is None or not a.probs:
            out.append(a)
            continue
        ratios = {w: a.probs.get(w, 0.0) / means[w] if means[w] > 0 else 0.0 for w in words}
        out.append(Answer(max(range(len(words)), key=lambda i: ratios[words[i]]), a.probs, a.raw, ratios))
    return out


def parse_label(text: str, words: list[str]) -> int | None:
    """The index of the label word the reply names first (a whole word, any case), or None."""
    first: tuple[int, int] | None = None
    for index, word in enumerate(words):
        found = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE)
        if found and (first is None or found.start() < first[0]):
            first = (found.start(), index)
    return None if first is None else first[1]
