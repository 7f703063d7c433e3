"""Critique, then refine: the model rewrites a program given a review of it, and the tests say whether the
rewrite works (Saunders et al. 2022's refinement, checked by execution instead of by people).

The review is one of: none, a critic's critique, or the gold description of the inserted bug (the upper
bound: what a perfect critic would say). A reply without a code block is counted as ``no_program``: it
does not pass, and it is reported apart, never mistaken for a wrong fix.
"""

from __future__ import annotations

import re
from importlib import resources

from referee.models.base import Model, Sampling
from referee.stats import paired_diff, rate

CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def template() -> str:
    return (resources.files("referee") / "templates" / "critics" / "refine.txt").read_text()


def refine_chat(program: str, review: str | None) -> list[dict]:
    block = f"\nA reviewer said:\n{review.strip()}\n" if review else ""
    return [{"role": "user", "content": template().format(program=program.rstrip(), review=block)}]


def extract_program(reply: str) -> str | None:
    """The last complete ```python block of a reply, None when there is none."""
    blocks = CODE_BLOCK.findall(reply)
    return blocks[-1] if blocks else None


def refine_programs(model: Model, programs: list[str], reviews: list[str | None], sampling: Sampling,
                    desc: str = "refine") -> list[str]:
    outs = model.generate([refine_chat(p, r) for p, r in zip(programs, reviews)], sampling, desc=desc)
    return [row[0].text for row in outs]


def fix_rates(outcomes: dict[str, list[dict]], seed: int) -> dict:
    """Per review: the share of buggy programs fixed (tampered and natural apart), the replies with no
    program, and the change against no review on the same programs (paired bootstrap)."""
    base = [float(r["passed"]) for r in outcomes["none"]]
    return {review: {s: {"fixed": rate([r["passed"] for r in rows if r["set"] == s], seed=seed).to_dict(),
                         "no_program": sum(not r["has_program"] for r in rows if r["set"] == s)}
                     for s in ("tampered", "natural")}
            | {"change_vs_none": None if review == "none" else
               paired_diff([float(r["passed"]) for r in rows], base, seed=seed).to_dict()}
            for review, rows in outcomes.items()}
