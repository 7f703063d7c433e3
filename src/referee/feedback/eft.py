"""Evaluation fine-tuning (EFT) data: graded answers turned into training conversations for a judge."""

from __future__ import annotations

from referee.judges import GradingJudge


def grading_conversations(grader: GradingJudge, examples: list[dict]) -> list[dict]:
    """Each ``{"prompt", "response", "score"}`` rendered exactly as ``grader`` will show it when it judges,
    with ``[[score]]`` as the reply: the format the probability verdict reads back."""
    rows = []
    for e in examples:
        chat, _ = grader.build_chat([{"role": "user", "content": e["prompt"]}], e["response"], None)
        rows.append({"messages": chat + [{"role": "assistant", "content": f"[[{e['score']}]]"}]})
    return rows
