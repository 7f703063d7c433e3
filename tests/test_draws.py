"""The one seeded draw gives exactly the numbers its copies gave: published splits and samples depend on them.

Each old formula is written out here as it stood in its module before the copies were merged."""

import hashlib
import json
import random

from referee.draws import content_unit, seeded_unit
from referee.judges.baselines import RandomJudge
from referee.protocols.judge_template_optimization import held_out_draw
from referee.tasks.gsm8k import split_held_out
from referee.tasks.math import MathProblem
from referee.tasks.pairs import Pair

ALPHABET = "abcxyz019 :|#\"\\é漢🙂"


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 12))) for _ in range(n)]


def _unit(blob: bytes) -> float:
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") / 2 ** 64


def test_passages_layout_is_unchanged():
    for i, item_id in enumerate(_texts(300, 1)):
        seed, purpose = i % 7, ["split", "order", "distractor", "critics-dev"][i % 4]
        assert seeded_unit(seed, purpose, item_id) == _unit(f"{seed}:{purpose}:{item_id}".encode())


def test_gsm8k_held_out_split_is_unchanged():
    ids = _texts(300, 2)
    problems = [MathProblem(id=i, question="q", answer="1") for i in dict.fromkeys(ids)]
    for seed in (0, 3):
        _, held = split_held_out(problems, 0.3, seed=seed)
        old = [p.id for p in problems if _unit(f"{seed}:{p.id}".encode()) < 0.3]
        assert [p.id for p in held] == old and 0 < len(old) < len(problems)
        assert all(seeded_unit(seed, None, p.id) == _unit(f"{seed}:{p.id}".encode()) for p in problems)


def _pairs(n: int) -> list[Pair]:
    texts = _texts(4 * n, 3)
    return [Pair(texts[4 * i], [{"role": "user", "content": texts[4 * i + 1]}] if i % 2 else texts[4 * i + 1],
                 texts[4 * i + 2], texts[4 * i + 3]) for i in range(n)]


def test_random_baseline_coins_are_unchanged():
    judge = RandomJudge(seed=5, swap="conservative")
    for p in _pairs(150):
        for order in ("AB", "BA"):
            key = json.dumps([5, p.id, p.question, p.answer_a, p.answer_b, order], ensure_ascii=False)
            assert judge._draw(p, order) == _unit(key.encode())


def test_template_search_held_out_draw_is_unchanged():
    for i, p in enumerate(_pairs(300)):
        blob = json.dumps([i, p.question, p.answer_a, p.answer_b], ensure_ascii=False).encode("utf-8")
        assert held_out_draw(p, i) == _unit(blob) == content_unit(i, p.question, p.answer_a, p.answer_b)
