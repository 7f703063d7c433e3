"""What the optimiser's models are asked, in words: the gradient model explains a prompt's mistakes (the
textual gradient), the editor rewrites the prompt to fix one such explanation, and paraphrases it.

The prompt under work is shown between marker lines, and a rewritten prompt is asked for between
``<prompt>`` tags, so that a reply can be read without guessing where the prompt starts and ends.
``WORDING`` is part of the stages' fingerprints: changing what the models are asked recomputes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from referee.optimize.template import PromptTemplate

PROMPT_START, PROMPT_END = "=== prompt ===", "=== end of prompt ==="

GRADIENT = """A language model was given the prompt below to label short texts.

{prompt_block}

With this prompt it gave the wrong label on these examples:

{mistakes}

What is wrong with the prompt that could have caused these mistakes? Name one concrete flaw (something \
unclear, missing or misleading in the prompt) in two or three sentences, and say what would fix it."""

EDIT = """A language model was given the prompt below to label short texts.

{prompt_block}

With this prompt it gave the wrong label on these examples:

{mistakes}

A reviewer diagnosed the problem as follows:
{gradient}

Rewrite the prompt so that it fixes this problem. {rules}
Write only the new prompt, between <prompt> and </prompt>."""

PARAPHRASE = """Say the prompt below in other words, keeping what it asks for.

{prompt_block}

{rules}
Write only the new prompt, between <prompt> and </prompt>."""

WORDING = {"gradient": GRADIENT, "edit": EDIT, "paraphrase": PARAPHRASE, "markers": [PROMPT_START, PROMPT_END]}


@dataclass(frozen=True)
class Mistake:
    """One minibatch item a prompt got wrong, as the gradient model and the editor see it."""

    item: str  # the item's id
    text: str
    gold: str  # the right label word
    answer: str | None  # the model's label word; None when its answer was unreadable


def show_prompt(template: PromptTemplate) -> str:
    return f"{PROMPT_START}\n{template.text}\n{PROMPT_END}"


def show_mistakes(mistakes: list[Mistake]) -> str:
    return "\n\n".join(f"Example {i}:\n{m.text}\nRight label: {m.gold}\nModel's label: "
                       f"{m.answer if m.answer is not None else '(no readable label)'}"
                       for i, m in enumerate(mistakes, start=1))


def rules(template: PromptTemplate) -> str:
    """What every new version must keep: the placeholder (and the answer-format sentence, if declared)."""
    keep = f"Keep the placeholder {template.placeholder} exactly as written: it is where each text is inserted."
    if template.format_instruction:
        keep += f' Keep the sentence "{template.format_instruction}" word for word.'
    return keep


def gradient_request(template: PromptTemplate, mistakes: list[Mistake]) -> str:
    return GRADIENT.format(prompt_block=show_prompt(template), mistakes=show_mistakes(mistakes))


def edit_request(template: PromptTemplate, mistakes: list[Mistake], gradient: str) -> str:
    return EDIT.format(prompt_block=show_prompt(template), mistakes=show_mistakes(mistakes),
                       gradient=gradient.strip(), rules=rules(template))


def paraphrase_request(template: PromptTemplate) -> str:
    return PARAPHRASE.format(prompt_block=show_prompt(template), rules=rules(template))


def written_prompt(reply: str) -> str | None:
    """The prompt between the last complete pair of <prompt> tags of a reply; None when there is none or it
    is empty (a reply cut off before its closing tag has no prompt either)."""
    found = re.findall(r"<prompt>(.*?)</prompt>", reply, flags=re.DOTALL | re.IGNORECASE)
    text = found[-1].strip() if found else ""
    return text or None
