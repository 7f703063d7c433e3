"""Seeded draws: a number in [0, 1) fixed by a seed and what it is for, never by position or run.

Splits, orders, coins and samples all come from one hash, so the same item falls the same way in any
batch, subset or rerun. Every published split and sample depends on these exact numbers: a new kind of
draw gets a new ``purpose``, never a new layout.
"""

from __future__ import annotations

import hashlib
import json


def hash_unit(key: str) -> float:
    """The first 8 bytes of SHA-256(key) as a number in [0, 1)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2 ** 64


def seeded_unit(seed: int, purpose: str | None, item_id: str) -> float:
    """A number in [0, 1) fixed by the seed, what it decides and the item's id.

    ``purpose=None`` is the older two-part layout ``seed:id`` that GSM8K's held-out split was drawn with;
    it is kept so that split does not move."""
    return hash_unit(f"{seed}:{item_id}" if purpose is None else f"{seed}:{purpose}:{item_id}")


def content_unit(seed: int, *parts) -> float:
    """A number in [0, 1) fixed by the seed and some texts (a pair's question and answers, say): for items
    whose ids say nothing (files that number them 1, 2, ...) or draws that must follow the content."""
    return hash_unit(json.dumps([seed, *parts], ensure_ascii=False))
