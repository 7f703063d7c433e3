"""What each annotator is shown, fixed by a seed: the order of a pair's answers, and whether the critique
is shown (the assistance experiment). Both depend on (seed, annotator, item) only, so a reload, a
restart or another machine shows an annotator the same page, and annotators are randomised
independently of each other.

The critique assignment is balanced per annotator: the items are ranked by a seeded draw and the first
``share`` of them (rounded) get the critique, so an annotator who labels everything sees exactly that
share with help; one who stops early sees about that share.
"""

from __future__ import annotations

from referee.draws import seeded_unit


def shown_order(seed: int, annotator: str, item_id: str) -> str:
    """"AB" (the file's first answer on the left) or "BA"."""
    return "AB" if seeded_unit(seed, f"order:{annotator}", item_id) < 0.5 else "BA"


def with_critique(seed: int, annotator: str, item_ids: list[str], share: float) -> set[str]:
    """The items this annotator sees with the critique."""
    ranked = sorted(item_ids, key=lambda i: seeded_unit(seed, f"assist:{annotator}", i))
    return set(ranked[:round(share * len(ranked))])
