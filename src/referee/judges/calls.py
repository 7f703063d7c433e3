"""The judge's model calls: its own reference answers, generation with retries of unreadable verdicts,
and verdict probabilities read through ``model.choice`` (where the verdict goes, and on a score scale)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from referee.models.base import Model, Sampling

PREFIX = "[["  # the judge's verdict starts with this; its next token is the verdict
RETRY_TEMPERATURE = 0.7  # a greedy judge would repeat itself; retries sample


def self_references(model: Model, questions: list[list[dict]], max_new_tokens: int) -> list[str]:
    """The judge's own greedy answer to each question (one call; repeated questions answered once)."""
    unique: dict[str, list[dict]] = {}
    for q in questions:
        unique.setdefault(repr(q), q)
    keys = list(unique)
    outs = model.generate([unique[k] for k in keys], Sampling(temperature=0.0, max_new_tokens=max_new_tokens),
                          desc="judge: own reference answers")
    by_key = {k: o[0].text.strip() for k, o in zip(keys, outs)}
    return [by_key[repr(q)] for q in questions]


@dataclass
class Attempted:
    value: object | None  # the parsed verdict, None if every attempt was unreadable
    raw: str  # the judge's last output
    attempts: int
    why: str | None  # why the last output was unreadable


def generate_parsed(model: Model, chats: list[list[dict]], sampling: Sampling,
                    parse: Callable[[str], tuple[object | None, str | None]], max_retries: int,
                    desc: str) -> list[Attempted]:
    """Generate once per chat, parse, and sample again (new seed) only the unreadable ones."""
    results: list[Attempted | None] = [None] * len(chats)
    todo = list(range(len(chats)))
    for attempt in range(max_retries + 1):
        if not todo:
            break
        s = sampling if attempt == 0 else Sampling(
            temperature=sampling.temperature if sampling.temperature > 0 else RETRY_TEMPERATURE,
            top_p=sampling.top_p, max_new_tokens=sampling.max_new_tokens, stop=sampling.stop,
            seed=sampling.seed + attempt)
        outs = model.generate([chats[i] for i in todo], s, desc=desc if attempt == 0 else f"{desc} (retry {attempt})")
        still = []
        for i, out in zip(todo, outs):
            text = out[0].text
            value, why = parse(text)
            results[i] = Attempted(value, text, attempt + 1, why)
            if value is None:
                still.append(i)
        todo = still
    return results  # type: ignore[return-value]


def choice_rows(model: Model, chats: list[list[dict]], options, prefixes: list[str], desc: str):
    """``model.choice`` with a prefix per chat: one call per distinct prefix (usually just one)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prefixes):
        groups.setdefault(p, []).append(i)
    out = [None] * len(chats)
    for prefix, idx in groups.items():
        for i, r in zip(idx, model.choice([chats[i] for i in idx], options, prefix=prefix, desc=desc)):
            out[i] = r
    return out


def scale_probs(model: Model, chats: list[list[dict]], prefixes: list[str], low: int, high: int,
                desc: str) -> list[tuple[dict[int, float], float]]:
    """P(score) for each whole score in [low, high] after each prefix, and the mass on the first digit.

    One pass reads the first digit. Scores that share a first digit (1 and 10..19) need a second pass
    after that digit, between the closing "]]" and the second digit; both passes read single tokens.
    """
    strings = {str(v): v for v in range(low, high + 1)}
    firsts = sorted({s[0] for s in strings})
    first = choice_rows(model, chats, {c: [c] for c in firsts}, prefixes, desc)
    probs = [{} for _ in chats]
    for c in firsts:
        members = [s for s in strings if s[0] == c]
        if len(members) == 1:
            for r, res in enumerate(first):
                probs[r][strings[members[0]]] = res.probs[c]
            continue
        opts = {s: [s[1:] if len(s) > 1 else "]]"] for s in members}
        second = choice_rows(model, chats, opts, [p + c for p in prefixes], f"{desc} (second digit)")
        for r, (res1, res2) in enumerate(zip(first, second)):
            for s in members:
                probs[r][strings[s]] = res1.probs[c] * res2.probs[s]
    return [(p, res.mass) for p, res in zip(probs, first)]


def cot_prefix(reasoning: str) -> str:
    """Where a reasoning judge's verdict goes: at its own last "[[" if it wrote one, else appended."""
    at = reasoning.rfind(PREFIX)
    if at >= 0:
        return reasoning[:at] + PREFIX
    return reasoning.rstrip() + "\n\nVerdict: " + PREFIX


def verdict_prefixes(model: Model, chats: list[list[dict]], sampling: Sampling, cot: bool,
                     desc: str) -> tuple[list[str | None], list[str]]:
    """Where each verdict's probabilities are read: right after "[[", or, for a chain-of-thought judge,
    after its own reasoning. Returns (the reasoning texts or None, the assistant prefixes)."""
    if not cot:
        return [None] * len(chats), [PREFIX] * len(chats)
    raws = [o[0].text for o in model.generate(chats, sampling, desc=desc)]
    return raws, [cot_prefix(r) for r in raws]
