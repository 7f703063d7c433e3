"""A pairwise judge's request as a prompt to optimise: the text of a judge template's ``user`` section.

Every version must keep the places where the judge's inputs go (the question, the two answers, and any
others the hand-written request has, such as worked examples) and the place of the verdict format, which
is never edited, so that verdicts are read as before. It may not name a placeholder the judge cannot fill
there, nor hold a line that would begin another section of the template file: either would stop the
judge. ``flaw`` says which rule a rewrite broke, so the search rejects and counts it instead of running it.

The judges' template vocabulary (which placeholders exist, what a section line looks like) is given by the
caller: this layer does not import the judges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from referee.optimize.template import LOST_FORMAT, LOST_PLACEHOLDER, prompt_id

FOREIGN_PLACEHOLDER = "foreign_placeholder"
SECTION_LINE = "section_line"
FORMAT_SLOT = "{format}"
REJECTIONS = (LOST_PLACEHOLDER, LOST_FORMAT, FOREIGN_PLACEHOLDER, SECTION_LINE)


@dataclass(frozen=True)
class JudgePrompt:
    text: str
    slots: tuple[str, ...]  # placeholders every version keeps, e.g. "{question}", "{answer_a}", "{answer_b}"
    foreign: tuple[str, ...]  # placeholders no version may name: the judge cannot fill them in this section
    section_line: str  # a regular expression matching a line that begins a template section

    @property
    def id(self) -> str:
        return prompt_id(self.text)

    def flaw(self, text: str) -> str | None:
        """Why ``text`` cannot replace this request (the first broken rule, in ``REJECTIONS`` order), or None."""
        if any(slot not in text for slot in self.slots):
            return LOST_PLACEHOLDER
        if FORMAT_SLOT not in text:
            return LOST_FORMAT
        if any(name in text for name in self.foreign):
            return FOREIGN_PLACEHOLDER
        if re.search(self.section_line, text, flags=re.MULTILINE):
            return SECTION_LINE
        return None

    def rules(self) -> str:
        return (f"Keep the placeholders {_listed(self.slots)} exactly as written: they are where the judge's inputs "
                f"are inserted. Keep {FORMAT_SLOT} exactly as written: it is where the instructions for writing the "
                f"verdict go. Use no other placeholder in braces, and no line of the form === name ===.")


def shown_pair(question: str, answer_a: str, answer_b: str, limit: int) -> str:
    """A judged pair as the gradient model and the editor see it, each part cut to ``limit`` characters."""
    return (f"Question:\n{_cut(question, limit)}\n\nAnswer A:\n{_cut(answer_a, limit)}\n\n"
            f"Answer B:\n{_cut(answer_b, limit)}")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]} [... {len(text) - limit} more characters]"


def _listed(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
