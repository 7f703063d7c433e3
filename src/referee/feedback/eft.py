"""Evaluation fine-tuning (EFT) data: graded answers turned into training conversations for a judge, and
arithmetic solutions (references and corrupted ones) graded by the step checker to make them from."""

from __future__ import annotations

import random

from referee.judges import GradingJudge
from referee.tasks.arithmetic import check_solution, corrupt_solution, step_grade
from referee.tasks.math import MathProblem


def grading_conversations(grader: GradingJudge, examples: list[dict]) -> list[dict]:
    """Each ``{"prompt", "response", "score"}`` rendered exactly as ``grader`` will show it when it judges,
    with ``[[score]]`` as the reply: the format the probability verdict reads back."""
    rows = []
    for e in examples:
        chat, _ = grader.build_chat([{"role": "user", "content": e["prompt"]}], e["response"], None)
        rows.append({"messages": chat + [{"role": "assistant", "content": f"[[{e['score']}]]"}]})
    return rows


def eft_examples(problems: list[MathProblem], seed: int) -> list[dict]:
    """Solutions to grade, half references and half corrupted (one slipped step carried forward), each with
    the step checker's 0-5 grade: the self-judge's training targets come from ground truth."""
    out = []
    for i, p in enumerate(problems):
        solution = p.steps
        if i % 2:
            solution = corrupt_solution(p, random.Random(f"eft-{seed}-{p.id}")) or p.steps
        text = "\n".join(solution)
        out.append({"id": p.id, "prompt": p.prompt(), "response": text, "score": step_grade(check_solution(p, text))})
    return out
