"""A prompt template: the text the task model reads, with a declared placeholder where each input goes.

An edit is only worth running when it still has a place for the input (and, when one is declared, the
sentence that tells the model how to answer): ``flaw`` says what an edited text lost, so the protocol can
reject and count it instead of spending model calls on a prompt that cannot work.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Protocol

from referee.errors import RefereeError

LOST_PLACEHOLDER = "lost_placeholder"
LOST_FORMAT = "lost_format"


class Rewritable(Protocol):
    """What the search needs of a prompt under work, whatever the prompt is for: its text, why a rewrite
    could not replace it, and what every rewrite must keep, in the editor's words."""

    text: str

    def flaw(self, text: str) -> str | None: ...

    def rules(self) -> str: ...


@dataclass(frozen=True)
class PromptTemplate:
    text: str
    placeholder: str = "{text}"
    format_instruction: str | None = None  # a sentence every version must keep verbatim, e.g. "Answer Yes or No."

    @property
    def id(self) -> str:
        """A short name from the text alone: the same prompt written twice is one candidate."""
        return prompt_id(self.text)

    def render(self, item: str) -> str:
        """The prompt the task model reads for one input."""
        return self.text.replace(self.placeholder, item)

    def flaw(self, text: str) -> str | None:
        """Why ``text`` cannot replace this prompt (it lost the placeholder or the answer format), or None."""
        if self.placeholder not in text:
            return LOST_PLACEHOLDER
        if self.format_instruction and self.format_instruction not in text:
            return LOST_FORMAT
        return None

    def rules(self) -> str:
        """What every new version must keep, in the editor's words: the placeholder (and the answer-format
        sentence, if declared)."""
        keep = f"Keep the placeholder {self.placeholder} exactly as written: it is where each text is inserted."
        if self.format_instruction:
            keep += f' Keep the sentence "{self.format_instruction}" word for word.'
        return keep

    def rewritten(self, text: str) -> "PromptTemplate":
        """The same rules around another text."""
        return dataclasses.replace(self, text=text)


def prompt_id(text: str) -> str:
    return "p" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def checked_template(text: str, placeholder: str, format_instruction: str | None, where: str) -> PromptTemplate:
    """The initial template, refused in one line (naming ``where`` it came from) when it lacks what every
    edit will be required to keep."""
    if not placeholder:
        raise RefereeError(f"{where}: the placeholder is empty; declare one such as {{text}}")
    if not text.strip():
        raise RefereeError(f"{where}: the template is empty")
    template = PromptTemplate(text, placeholder, format_instruction or None)
    problem = template.flaw(text)
    if problem == LOST_PLACEHOLDER:
        raise RefereeError(f"{where}: the template has no placeholder {placeholder} for the input; put it where "
                           f"each text should go")
    if problem == LOST_FORMAT:
        raise RefereeError(f"{where}: the template does not contain the declared answer format "
                           f"{format_instruction!r}")
    return template
