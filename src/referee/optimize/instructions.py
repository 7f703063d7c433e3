"""What the optimiser's models are asked, in words: the gradient model explains a prompt's mistakes (the
textual gradient), the editor rewrites the prompt to fix one such explanation, and paraphrases it.

The requests are the same whatever the prompt is for; a ``Wording`` says what it is for (labelling texts,
judging answers) and how each mistake's right and wrong answers are named. The prompt under work is shown
between marker lines, and a rewritten prompt is asked for between ``<prompt>`` tags, so that a reply can
be read without guessing where the prompt starts and ends. ``wording_key`` goes into the stages'
fingerprints: changing what the models are asked recomputes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from referee.optimize.template import Rewritable

PROMPT_START, PROMPT_END = "=== prompt ===", "=== end of prompt ==="

GRADIENT = """A language model was given the prompt below {purpose}.

{prompt_block}

With this prompt {failure} on these examples:

{mistakes}

What is wrong with the prompt that could have caused these mistakes? Name one concrete flaw (something \
unclear, missing or misleading in the prompt) in two or three sentences, and say what would fix it."""

EDIT = """A language model was given the prompt below {purpose}.

{prompt_block}

With this prompt {failure} on these examples:

{mistakes}

A reviewer diagnosed the problem as follows:
{gradient}

Rewrite the prompt so that it fixes this problem. {rules}
Write only the new prompt, between <prompt> and </prompt>."""

PARAPHRASE = """Say the prompt below in other words, keeping what it asks for.

{prompt_block}

{rules}
Write only the new prompt, between <prompt> and </prompt>."""

MISTAKE = "Example {number}:\n{text}\n{right}: {gold}\n{given}: {answer}"

OPEN_TAG, CLOSE_TAG = "<prompt>", "</prompt>"
REPLY_OPENING = OPEN_TAG + "\n"  # how a rewrite's reply is begun for the model, where its backend allows

REQUESTS = {"gradient": GRADIENT, "edit": EDIT, "paraphrase": PARAPHRASE, "mistake": MISTAKE,
            "markers": [PROMPT_START, PROMPT_END], "reply_opening": REPLY_OPENING}


@dataclass(frozen=True)
class Wording:
    """What the prompt is for and how its mistakes are told, in the requests' words."""

    purpose: str  # completes "A language model was given the prompt below ..."
    failure: str  # completes "With this prompt ... on these examples"
    right: str  # names the right answer of a mistake
    given: str  # names the model's answer
    unreadable: str  # stands for an answer that could not be read


LABELLING = Wording("to label short texts", "it gave the wrong label", "Right label", "Model's label",
                    "(no readable label)")
JUDGING = Wording("to judge which of two answers to a user's question is better",
                  "its verdict differed from people's", "People's choice", "Judge's choice", "(no readable verdict)")


@dataclass(frozen=True)
class Mistake:
    """One minibatch item a prompt got wrong, as the gradient model and the editor see it."""

    item: str  # the item's id
    text: str
    gold: str  # the right answer
    answer: str | None  # the model's answer; None when it was unreadable


def wording_key(wording: Wording) -> dict:
    """What the requests' text depends on, for stage fingerprints."""
    return {"requests": REQUESTS, "wording": wording}


def show_prompt(template: Rewritable) -> str:
    return f"{PROMPT_START}\n{template.text}\n{PROMPT_END}"


def show_mistakes(mistakes: list[Mistake], wording: Wording) -> str:
    return "\n\n".join(MISTAKE.format(number=i, text=m.text, right=wording.right, gold=m.gold, given=wording.given,
                                      answer=m.answer if m.answer is not None else wording.unreadable)
                       for i, m in enumerate(mistakes, start=1))


def gradient_request(template: Rewritable, mistakes: list[Mistake], wording: Wording) -> str:
    return GRADIENT.format(purpose=wording.purpose, failure=wording.failure, prompt_block=show_prompt(template),
                           mistakes=show_mistakes(mistakes, wording))


def edit_request(template: Rewritable, mistakes: list[Mistake], gradient: str, wording: Wording) -> str:
    return EDIT.format(purpose=wording.purpose, failure=wording.failure, prompt_block=show_prompt(template),
                       mistakes=show_mistakes(mistakes, wording), gradient=gradient.strip(), rules=template.rules())


def paraphrase_request(template: Rewritable) -> str:
    return PARAPHRASE.format(prompt_block=show_prompt(template), rules=template.rules())


def written_prompt(reply: str) -> str | None:
    """The prompt between the last complete pair of <prompt> tags of a reply; None when there is none or it
    is empty (a reply cut off before its closing tag has no prompt either)."""
    found = re.findall(f"{OPEN_TAG}(.*?){CLOSE_TAG}", reply, flags=re.DOTALL | re.IGNORECASE)
    text = found[-1].strip() if found else ""
    return text or None


def prefilled_prompt(continuation: str, finish_reason: str) -> str | None:
    """The prompt of a reply begun with ``REPLY_OPENING`` and stopped at the closing tag: the continuation,
    None when it is empty or ran to the token limit before closing (a cut-off prompt)."""
    if finish_reason == "length":
        return None
    return continuation.split(CLOSE_TAG)[0].strip() or None
