"""Math answers: pull the final answer out of a solution, and decide whether it matches the gold one.

Answers are compared as exact rationals (``fractions.Fraction``), so ``0.5``, ``1/2`` and ``\\frac{1}{2}``
are the same answer and ``1,000`` is a thousand. What cannot be read as a number is compared as
normalised text. A solution with no extractable answer is reported as such (``Extraction.value`` is
None): callers count it as wrong *and* count it separately.

Where the answer is looked for, in order (``style="auto"``):

1. a GSM8K answer line, ``#### 72``;
2. the last ``\\boxed{...}``;
3. an announced answer, "the answer is 72" / "Answer: 72" (the last one);
4. the last number in the text.

Also here: the pieces the math tasks share (``MathProblem``, ``Solution``, step splitting, a safe
arithmetic evaluator) and reading/writing step-labelled files in TRL's stepwise format.
"""

from __future__ import annotations

import ast
import operator
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable

from referee.chat import Chat
from referee.errors import RefereeError
from referee.io import write_jsonl

STYLES = ("auto", "gsm8k", "boxed", "announced", "last_number")

# One number: optional sign (not when it is a minus between two operands), thousands with commas or a
# plain run of digits, an optional decimal part; or a bare decimal like .5. A fraction a/b is two of them.
_NUM = r"(?:(?<![\w.])[-−])?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?:(?<![\w.])[-−])?\.\d+"
_NUMBER_RE = re.compile(rf"({_NUM})(?:\s*/\s*(\d+(?:\.\d+)?))?")
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_ANNOUNCED_RE = re.compile(r"answer\s*(?:is\s*:?|:|=)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Extraction:
    """The answer found in a solution: its text, its value (None if not a number) and how it was found.

    ``found`` is False when the solution has no extractable answer at all.
    """

    text: str | None
    value: Fraction | None
    method: str

    @property
    def found(self) -> bool:
        return self.text is not None

    def key(self) -> str | None:
        """A canonical form for grouping equal answers (majority vote): the value, or normalised text."""
        if self.value is not None:
            return format_number(self.value)
        return _norm_text(self.text) if self.text is not None else None


NO_ANSWER = Extraction(None, None, "none")


def parse_number(text: str) -> Fraction | None:
    """Read one number: ``-1,234.5``, ``$12``, ``3/4``, ``\\frac{3}{4}``, ``50%`` (as 50), ``12 apples``.

    The first number in ``text`` decides; None when there is none.
    """
    if text is None:
        return None
    t = text.replace("−", "-").replace("\u2009", "").replace("\\!", "").replace("\\,", "")
    t = t.replace("\\$", "$").replace("\\%", "%")
    m = _FRAC_RE.search(t)
    if m:
        num, den = parse_number(m.group(1)), parse_number(m.group(2))
        sign = -1 if t[:m.start()].strip().endswith("-") else 1
        if num is not None and den:
            return sign * num / den
    m = _NUMBER_RE.search(t)
    if not m:
        return None
    value = _to_fraction(m.group(1))
    if m.group(2) is not None:
        den = _to_fraction(m.group(2))
        if not den or value is None:
            return None
        value = value / den
    return value


def _to_fraction(s: str) -> Fraction | None:
    """The number a matched string spells; None for one too long for Python to read (over 4300 digits),
    which a model can write but no gold answer holds."""
    try:
        return Fraction(s.replace(",", "").replace("−", "-"))
    except ValueError:
        return None


def format_number(value: Fraction) -> str:
    """A canonical string: integers plainly, other rationals as a terminating decimal or ``a/b``."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den == 1:  # terminating decimal
        try:
            return f"{float(value):.12f}".rstrip("0").rstrip(".")
        except OverflowError:  # too big for a float (a model can write 400 digits): as a/b
            pass
    return f"{value.numerator}/{value.denominator}"


def _norm_text(s: str) -> str:
    s = s.strip().strip("$").strip().rstrip(".").strip()
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\s+", " ", s)
    return s.lower()


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None if none."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start:i - 1].strip()
    return None


def _answer_span(text: str) -> str:
    """The answer part of a line: up to the end of the first sentence (a period not inside a number)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    m = re.search(r"\.(?!\d)|;", line)
    return line[:m.start()] if m else line


def extract_gsm8k(text: str) -> Extraction:
    """The answer after the last ``####``."""
    if "####" not in text:
        return NO_ANSWER
    rest = _answer_span(text.rsplit("####", 1)[1])
    if not rest.strip():
        return NO_ANSWER
    return _from_span(rest, "gsm8k")


def extract_boxed(text: str) -> Extraction:
    inner = _last_boxed(text)
    if inner is None or not inner:
        return NO_ANSWER
    value = parse_number(inner)
    return Extraction(inner, value, "boxed")


def extract_announced(text: str) -> Extraction:
    """The last "the answer is X" / "Answer: X" that is followed by something readable."""
    for m in reversed(list(_ANNOUNCED_RE.finditer(text))):
        span = _answer_span(text[m.end():])
        if span.strip():
            return _from_span(span, "announced")
    return NO_ANSWER


def extract_last_number(text: str) -> Extraction:
    matches = list(_NUMBER_RE.finditer(text.replace("−", "-")))
    if not matches:
        return NO_ANSWER
    m = matches[-1]
    return Extraction(m.group(0), parse_number(m.group(0)), "last_number")


def _from_span(span: str, method: str) -> Extraction:
    boxed = _last_boxed(span)
    if boxed:
        span = boxed
    if "=" in span and span.rsplit("=", 1)[1].strip():  # "the answer is 12 + 3 = 15": the result
        span = span.rsplit("=", 1)[1]
    value = parse_number(span)
    if value is not None:
        m = _FRAC_RE.search(span) or _NUMBER_RE.search(span.replace("−", "-"))
        return Extraction(m.group(0).strip(), value, method)
    return Extraction(span.strip(), None, method)


_EXTRACTORS = {"gsm8k": extract_gsm8k, "boxed": extract_boxed, "announced": extract_announced,
               "last_number": extract_last_number}


def extract_answer(text: str, style: str = "auto") -> Extraction:
    """Find the final answer of a solution; ``NO_ANSWER`` when there is none (see the module doc)."""
    if style not in STYLES:
        raise RefereeError(f"answer style {style!r}: expected one of {', '.join(STYLES)}")
    if text is None:
        return NO_ANSWER
    if style != "auto":
        return _EXTRACTORS[style](text)
    for name in ("gsm8k", "boxed", "announced", "last_number"):
        found = _EXTRACTORS[name](text)
        if found.found:
            return found
    return NO_ANSWER


def gold_answer(answer: str) -> Extraction:
    """A reference answer: either the bare answer ("72", "1,080") or a whole GSM8K solution ending in ####."""
    if "####" in answer:
        return extract_gsm8k(answer)
    value = parse_number(answer)
    return Extraction(answer.strip(), value, "gold")


def answers_match(pred: str | Extraction | None, gold: str | Extraction | None) -> bool:
    """True when the predicted answer equals the gold one: as numbers when both read as numbers, else as
    normalised text. A missing prediction never matches."""
    p = pred if isinstance(pred, Extraction) else (gold_answer(pred) if pred is not None else NO_ANSWER)
    g = gold if isinstance(gold, Extraction) else (gold_answer(gold) if gold is not None else NO_ANSWER)
    if not p.found or not g.found:
        return False
    if p.value is not None and g.value is not None:
        return p.value == g.value
    if p.value is not None or g.value is not None:
        return False
    return _norm_text(p.text) == _norm_text(g.text)


# ---- exact arithmetic ------------------------------------------------------------------------------
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
# Longer expressions are not checked: Python's parser and this evaluator recurse once per operator, so a
# model's "1+1+...+1" of thousands of terms would otherwise crash the checker (RecursionError).
MAX_EXPRESSION_CHARS = 500


def safe_eval(expr: str) -> Fraction:
    """Evaluate + - * / and parentheses over exact rationals; anything else raises ValueError, as does an
    expression over ``MAX_EXPRESSION_CHARS`` (callers count it as unreadable, like any other).

    ``x`` / ``×`` between numbers mean times, ``÷`` means divide, thousands commas and ``$`` are ignored.
    """
    e = expr.replace("−", "-").replace("×", "*").replace("÷", "/").replace("$", "")
    e = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", e)
    e = re.sub(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])", "*", e)
    e = e.replace("%", "")
    if len(e.strip()) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters: {expr[:40]!r}...")
    try:
        tree = ast.parse(e.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expr!r}") from None
    return _eval_node(tree.body, expr)


def _eval_node(node, expr: str) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval_node(node.operand, expr)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _eval_node(node.left, expr), _eval_node(node.right, expr)
        if isinstance(node.op, ast.Div) and b == 0:
            raise ValueError(f"division by zero in {expr!r}")
        return _BINOPS[type(node.op)](a, b)
    raise ValueError(f"not plain arithmetic: {expr!r}")


# ---- problems and steps ----------------------------------------------------------------------------
INSTRUCTION = "Solve it step by step, one step per line, and end with: The answer is <number>."


@dataclass
class MathProblem:
    """A word problem with its gold answer and (when known) a reference solution split into steps."""

    id: str
    question: str
    answer: str
    steps: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def prompt(self, instruction: str | None = INSTRUCTION) -> str:
        """The user message a model is asked: the question, then the answer-format instruction."""
        return f"{self.question}\n{instruction}" if instruction else self.question

    def chat(self, instruction: str | None = INSTRUCTION) -> list[dict]:
        return [{"role": "user", "content": self.prompt(instruction)}]

    def to_record(self, instruction: str | None = INSTRUCTION) -> dict:
        """A JSONL record that ``referee generate --prompts`` reads (``prompt``) and that keeps the answer."""
        return {"id": self.id, "prompt": self.prompt(instruction), "question": self.question,
                "answer": self.answer, "steps": self.steps, **({"meta": self.meta} if self.meta else {})}


def split_steps(solution: str, newline_only: bool = False) -> list[str]:
    """A solution's steps: its non-blank lines, stripped (the convention of PRM800K and TRL).

    A line ends at any line boundary ``str.splitlines`` knows (``\\r``, ``\\f``, ``\\u2028``, ...), or, with
    ``newline_only``, at ``\\n`` alone: how the reward models have always read steps from their data and
    from the responses they score, kept so that their inputs, and so their scores, stay the same.
    """
    lines = solution.split("\n") if newline_only else solution.splitlines()
    return [line.strip() for line in lines if line.strip()]


@dataclass
class Solution:
    """A written solution to a prompt, with what is known of it. An outcome reward model learns from the
    whole ``response`` and its correctness ``label``; Monte-Carlo step labelling rolls out from its
    ``steps`` and checks the rollouts against its problem's ``gold`` answer."""

    prompt: Chat
    response: str
    label: float | None = None  # P(correct) target; None when unlabelled
    id: str = ""
    steps: list[str] = field(default_factory=list)
    gold: str | None = None
    extra: dict = field(default_factory=dict)  # fields of the source record to carry into outputs

    @classmethod
    def from_steps(cls, prompt: Chat, steps: list[str], gold: str, id: str = "",
                   extra: dict | None = None) -> "Solution":
        """A solution given as its steps, one per line of the response."""
        return cls(prompt, "\n".join(steps), id=id, steps=list(steps), gold=gold, extra=dict(extra or {}))


# ---- stepwise files (TRL: prompt, completions, labels) ---------------------------------------------
@dataclass
class StepwiseRecord:
    """One step-labelled solution. ``labels[i]`` is a float in [0, 1] (1 = step is fine) or None."""

    prompt: str
    completions: list[str]
    labels: list[float | None]
    extra: dict = field(default_factory=dict)

    def to_record(self) -> dict:
        labels = [lab if lab is None or lab not in (0.0, 1.0) else bool(lab) for lab in self.labels]
        return {"prompt": self.prompt, "completions": self.completions, "labels": labels, **self.extra}


def write_stepwise(path: str | os.PathLike, records: Iterable[StepwiseRecord]) -> int:
    return write_jsonl(path, (r.to_record() for r in records))
