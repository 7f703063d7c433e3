"""A pointwise verifier (a reward model, a grading judge) as a pairwise judge: each answer is scored
on its own and the higher score wins, with ``judge_pairs`` records like every other judge's, so the
agreement tools and the audit treat a reward model and an LLM judge alike.

Each answer is scored after its own conversation (multi-turn pairs). Position cannot matter: both
orders are recorded with the same verdict, so position consistency is 100% by construction.
P(A) is the logistic of the score difference (the Bradley-Terry reading of a reward model).
"""

from __future__ import annotations

import math

from referee.judges.records import ORDERS, PairJudge, make_record, shown


class ScoredPairJudge(PairJudge):
    def __init__(self, verifier, name: str | None = None):
        self.verifier = verifier
        self.name = name or f"scored[{getattr(verifier, 'name', 'verifier')}]"

    def judge_pairs(self, pairs) -> list[dict]:
        pairs = list(pairs)
        prompts = [(p.turns_a[:-1] if p.turns_a else p.question) for p in pairs] + \
                  [(p.turns_b[:-1] if p.turns_b else p.question) for p in pairs]
        scores = self.verifier.score_many(prompts, [p.answer_a for p in pairs] + [p.answer_b for p in pairs])
        records = []
        for pair, sa, sb in zip(pairs, scores[:len(pairs)], scores[len(pairs):]):
            if not (sa.valid and sb.valid) or sa.value is None or sb.value is None:
                verdict, p_a = "invalid", None
            else:
                diff = float(sa.value) - float(sb.value)
                verdict = "A" if diff > 0 else "B" if diff < 0 else "tie"
                p_a = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, diff))))
            orders = [{"order": o, "winner_shown": shown(o, verdict), "p_first": None, "probs": None, "mass": None,
                       "raw": None, "attempts": 1} for o in ORDERS]
            record = make_record(pair, orders, "conservative", self.name, "score", p_a)
            record["scores"] = [sa.value, sb.value]
            records.append(record)
        return records
