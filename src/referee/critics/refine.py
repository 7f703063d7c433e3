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
