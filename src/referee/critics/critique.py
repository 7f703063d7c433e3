"""A model as a critic of code: a critique that quotes the wrong code, and critiqueability (does this
program have a bug?) read as a probability, the way the judges read verdicts."""

from __future__ import annotations

from importlib import resources

from referee.models.base import Model, Sampling

BUG_QUESTION = "Does this program have a bug? Answer Yes or No."


def template(name: str = "code_critique") -> str:
    return (resources.files("referee") / "templates" / "critics" / f"{name}.txt").read_text()


def critique_chat(program: str, prompt: str | None = None) -> list[dict]:
    return [{"role": "user", "content": (prompt or template()).format(program=program.rstrip())}]


def critique_programs(model: Model, programs: list[str], sampling: Sampling, n: int = 1,
                      prompt: str | None = None, desc: str = "critiques") -> list[list[str]]:
    """``n`` critiques of each program (greedy when the sampling's temperature is 0)."""
    outs = model.generate([critique_chat(p, prompt) for p in programs], sampling, n=n, desc=desc)
    return [[c.text.strip() for c in row] for row in outs]


def critiqueability(model: Model, programs: list[str]) -> list[dict]:
    """P(the program has a bug) from the probabilities of "Yes" and "No" as the model's answer, and the
    mass it put on them (low mass: it wanted to say something else; the number is then weak)."""
    chats = [[{"role": "user", "content": f"```python\n{p.rstrip()}\n```\n\n{BUG_QUESTION}"}] for p in programs]
    results = model.choice(chats, {"yes": ["Yes", " Yes"], "no": ["No", " No"]}, desc="critiqueability")
    return [{"p_bug": r.probs.get("yes"), "mass": r.mass} for r in results]
