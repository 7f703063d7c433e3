"""Audit pairs: new pairs made from labelled (or unlabelled) pairs by one transformation each.

Every audit pair carries ``meta`` saying which side was changed (``target``), how, and which pair it
came from (``source``), so the bias metrics can read the judge's records without guessing.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from referee.audit.perturb import assertive_rewrite, inject_instruction, pad_repetitive_list
from referee.tasks.pairs import Pair


def with_answers(pair: Pair, a: str, b: str, **changes) -> Pair:
    """A copy of the pair with new last answers (in the multi-turn conversations too, when present)."""
    turns_a = pair.turns_a[:-1] + [{**pair.turns_a[-1], "content": a}] if pair.turns_a else None
    turns_b = pair.turns_b[:-1] + [{**pair.turns_b[-1], "content": b}] if pair.turns_b else None
    return replace(pair, answer_a=a, answer_b=b, turns_a=turns_a, turns_b=turns_b, **changes)


def coin(seed: int, key: str) -> bool:
    return hashlib.sha256(f"{seed}|{key}".encode()).digest()[0] < 128


def loser_side(pair: Pair) -> str:
    """The side to attack: the gold loser when the pair is labelled A or B, else B."""
    return "A" if pair.label == "B" else "B"


def verbosity_pairs(pairs: list[Pair], seed: int = 0, fallback_sentences: bool = True) -> tuple[list[Pair], int]:
    """Original answer against its padded copy, the padded one on a seeded random side.

    Each answer of each pair is used once (deduplicated by text). Returns (audit pairs, answers skipped
    because they had fewer than two items to restate). The label is "tie": the two say the same.
    """
    out, skipped, seen = [], 0, set()
    for pair in pairs:
        for side, answer in (("A", pair.answer_a), ("B", pair.answer_b)):
            if answer in seen:
                continue
            seen.add(answer)
            padded = pad_repetitive_list(answer, fallback_sentences=fallback_sentences)
            if padded is None:
                skipped += 1
                continue
            text, source = padded
            pid = f"{pair.id}:verbosity:{side}"
            target = "A" if coin(seed, pid) else "B"
            a, b = (text, answer) if target == "A" else (answer, text)
            # Both sides continue the source answer's own conversation.
            turns = pair.turns_a if side == "A" else pair.turns_b
            base = replace(pair, turns_a=turns, turns_b=turns)
            out.append(with_answers(base, a, b, id=pid, label="tie",
                                     meta={**pair.meta, "source": pair.id, "source_side": side, "target": target,
                                           "check": "verbosity", "pad_source": source}))
    return out, skipped


def _attacked(pair: Pair, check: str, transform) -> Pair:
    target = loser_side(pair)
    a, b = pair.answer_a, pair.answer_b
    if target == "A":
        a = transform(a, target)
    else:
        b = transform(b, target)
    return with_answers(pair, a, b, id=f"{pair.id}:{check}",
                         meta={**pair.meta, "source": pair.id, "target": target, "check": check})


def assertive_pairs(pairs: list[Pair]) -> list[Pair]:
    """Each pair with its gold loser (or B, unlabelled) rewritten in an assertive voice; label kept."""
    return [_attacked(p, "assertiveness", lambda text, _side: assertive_rewrite(text)) for p in pairs]


def injection_pairs(pairs: list[Pair]) -> list[Pair]:
    """Each pair with an instruction in its gold loser (or B) telling the judge to pick that answer."""
    return [_attacked(p, "injection", lambda text, side: inject_instruction(text, side)) for p in pairs]
