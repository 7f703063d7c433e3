"""What a judge should have said: training chats for fine-tuning a model into a judge.

Each chat is the judge's own prompt (the same template, fitting and truncation ``judge_pairs`` and
``grade`` use, so training and judging see the same text) followed by the verdict as the assistant's
reply: ``[[A]]``, ``[[B]]``, ``[[C]]`` (tie) or ``[[7]]``. A probability judge reads P(A) / P(B) /
P(C) right after "[[", which is exactly the token these targets teach.

Pairs are trained in both shown orders, so position cannot carry the label. A reason (chain of
thought) comes first where the data has one, with its answer names ("Answer A", "Response B", ...)
exchanged in the swapped order so that it still points at the right answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from referee.chat import as_chat
from referee.errors import RefereeError
from referee.judges.records import ORDERS, shown
from referee.tasks.pairs import Pair

LETTER = {"first": "A", "second": "B", "tie": "C"}
TIE_POLICIES = ("train", "drop", "error")  # a tie label: the [[C]] target, left out (counted), or refused
_NAMED = re.compile(r"\b(Answer|Response|Assistant|Output)\s+([AB])\b")


def verdict_text(letter: str, reason: str | None = None) -> str:
    """The judge's reply: the reason (if any), then the verdict marker."""
    marker = f"[[{letter}]]"
    return f"{reason.strip()}\n\nVerdict: {marker}" if reason and reason.strip() else marker


def swap_names(reason: str) -> str:
    """A reason written about order AB, rewritten for order BA ("Answer A" <-> "Answer B")."""
    return _NAMED.sub(lambda m: f"{m.group(1)} {'B' if m.group(2) == 'A' else 'A'}", reason)


@dataclass
class ExampleReport:
    """What became of the labelled data: nothing is dropped without being counted here."""

    pairs: int = 0
    examples: int = 0
    truncated: int = 0  # chats whose answers were cut to fit the prompt budget
    with_reason: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why -> count

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def pairwise_examples(judge, pairs: list[Pair], ties: str = "train", reasons: bool = False
                      ) -> tuple[list[dict], ExampleReport]:
    """Training chats for a pairwise judge (``PairwiseJudge``): every labelled pair in both orders.

    Unlabelled pairs are skipped and counted; tie labels follow ``ties`` (see TIE_POLICIES). With
    ``reasons`` the pair's ``meta["reason"]`` (written about order AB) goes before the verdict.
    """
    if ties not in TIE_POLICIES:
        raise RefereeError(f"judge training: ties should be one of {', '.join(TIE_POLICIES)}, got {ties!r}")
    report, out = ExampleReport(), []
    for pair in pairs:
        if pair.label is None:
            report.skip("no label")
            continue
        if pair.label == "tie":
            if ties == "error":
                raise RefereeError(f"pair {pair.id}: label 'tie', but this judge is trained without a tie class "
                                   f"(set ties to 'train' for a [[C]] target or 'drop' to leave ties out)")
            if ties == "drop":
                report.skip("tie label")
                continue
        reason = pair.meta.get("reason") if reasons else None
        report.pairs += 1
        report.with_reason += bool(reason)
        for order in ORDERS:
            chat, cut = judge.build_chat(pair, order, pair.reference if judge.reference == "given" else None)
            letter = LETTER[shown(order, pair.label)]
            text = verdict_text(letter, reason if order == "AB" or not reason else swap_names(reason))
            out.append({"messages": chat + [{"role": "assistant", "content": text}], "id": f"{pair.id}:{order}",
                        "order": order})
            report.examples += 1
            report.truncated += cut
    return out, report


def grading_examples(judge, items: list[dict]) -> tuple[list[dict], ExampleReport]:
    """Training chats for a grading judge (``GradingJudge``) from items with ``prompt`` (a chat),
    ``response`` and ``score`` (a whole number on the template's scale); optional ``reason``,
    ``reference`` and ``id``. A score off the scale is an error naming the item."""
    report, out = ExampleReport(), []
    for n, item in enumerate(items):
        score = item.get("score")
        if score is None:
            report.skip("no score")
            continue
        if not isinstance(score, (int, float)) or score != int(score) or not judge.low <= score <= judge.high:
            raise RefereeError(f"item {item.get('id', n + 1)}: field 'score' should be a whole number from "
                               f"{judge.low} to {judge.high} (the template's scale), got {score!r}")
        chat, cut = judge.build_chat(as_chat(item["prompt"], f"item {item.get('id', n + 1)}: field 'prompt'"),
                                     item["response"],
                                     item.get("reference") if judge.reference == "given" else None)
        text = verdict_text(str(int(score)), item.get("reason"))
        out.append({"messages": chat + [{"role": "assistant", "content": text}], "id": str(item.get("id", n + 1))})
        report.pairs += 1
        report.examples += 1
        report.truncated += cut
        report.with_reason += bool(item.get("reason"))
    return out, report
