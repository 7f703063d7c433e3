"""Expanding a beam prompt into successors (ProTeGi's Expand): group the minibatch mistakes, ask for
textual gradients (what is wrong with the prompt), ask the editor to apply each gradient, paraphrase the
edits (Monte-Carlo search around them), then keep at most ``expansion`` distinct successors per parent.

Every call here is one batched ``generate`` over all jobs of a step (all beam members together), so a step
costs one pass of the model however wide the beam is. Each sample has its own seed through the model's
cache, so a killed run asks again only for what was not finished.

A rewrite is asked for between <prompt> tags. Where the backend continues a prefilled reply (local models;
servers given ?tokenizer=), the reply is begun with the opening tag and stopped at the closing one: the
embedded 135M model wrote no tagged prompt in any of 16 replies at temperature 0.3 and 0.7 when only asked,
and kept the placeholder and the answer format in 4 of 16 when its reply was begun for it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from referee.models.base import Model, Sampling, continues_final_message
from referee.optimize.instructions import (CLOSE_TAG, REPLY_OPENING, Mistake, Wording, edit_request, gradient_request,
                                          paraphrase_request, prefilled_prompt, written_prompt)
from referee.optimize.template import Rewritable

ACCEPTED, NO_EDIT, UNCHANGED = "accepted", "no_edit", "unchanged"


@dataclass(frozen=True)
class Rewrite:
    """A rewritten prompt (None when the reply holds none) and the reply it was read from."""

    text: str | None
    reply: str


def group_mistakes(mistakes: list[Mistake], per_group: int, groups: int, rng: random.Random) -> list[list[Mistake]]:
    """At most ``groups`` groups of ``per_group`` mistakes, drawn without repeats (the last may be smaller)."""
    drawn = rng.sample(mistakes, min(len(mistakes), per_group * groups))
    return [drawn[i:i + per_group] for i in range(0, len(drawn), per_group)]


def textual_gradients(model: Model, sampling: Sampling, jobs: list[tuple[Rewritable, list[Mistake]]], n: int,
                      wording: Wording) -> list[list[str | None]]:
    """``n`` explanations of what is wrong with each prompt, given its mistakes; None for an empty reply."""
    replies = _ask(model, sampling, [gradient_request(t, m, wording) for t, m in jobs], n, "textual gradients")
    return [[text.strip() or None for text in row] for row in replies]


def edits(model: Model, sampling: Sampling, jobs: list[tuple[Rewritable, list[Mistake], str]], n: int,
          wording: Wording) -> list[list[Rewrite]]:
    """``n`` rewrites of each prompt that apply one gradient."""
    return _ask_for_prompts(model, sampling, [edit_request(t, m, g, wording) for t, m, g in jobs], n, "edits")


def paraphrases(model: Model, sampling: Sampling, templates: list[Rewritable], n: int) -> list[list[Rewrite]]:
    """``n`` paraphrases of each prompt."""
    return _ask_for_prompts(model, sampling, [paraphrase_request(t) for t in templates], n, "paraphrases")


def verdict(parent: Rewritable, text: str | None) -> str:
    """What becomes of a rewrite: accepted, or why not (no edit, unchanged, or the rule it broke)."""
    if text is None:
        return NO_EDIT
    if text == parent.text:
        return UNCHANGED
    return parent.flaw(text) or ACCEPTED


def capped(successors: list[str], cap: int, rng: random.Random) -> list[str]:
    """Distinct successor texts, at most ``cap`` of them drawn at random (seeded), in their first order."""
    distinct = list(dict.fromkeys(successors))
    if len(distinct) <= cap:
        return distinct
    keep = set(rng.sample(range(len(distinct)), cap))
    return [t for i, t in enumerate(distinct) if i in keep]


def _ask_for_prompts(model: Model, sampling: Sampling, requests: list[str], n: int, desc: str) -> list[list[Rewrite]]:
    if not continues_final_message(model):
        replies = _ask(model, sampling, requests, n, desc)
        return [[Rewrite(written_prompt(text), text) for text in row] for row in replies]
    if not requests:
        return []
    chats = [[{"role": "user", "content": r}, {"role": "assistant", "content": REPLY_OPENING}] for r in requests]
    outs = model.generate(chats, replace(sampling, stop=(*sampling.stop, CLOSE_TAG)), n=n, desc=desc)
    return [[Rewrite(prefilled_prompt(c.text, c.finish_reason), c.text) for c in row] for row in outs]


def _ask(model: Model, sampling: Sampling, requests: list[str], n: int, desc: str) -> list[list[str]]:
    if not requests:
        return []
    outs = model.generate([[{"role": "user", "content": r}] for r in requests], sampling, n=n, desc=desc)
    return [[c.text for c in row] for row in outs]
