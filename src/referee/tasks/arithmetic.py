"""Synthetic multi-step arithmetic word problems whose every step can be checked exactly.

A problem is a running count: someone starts with a number of things, then a chain of events adds,
takes away, multiplies or splits them, and the question asks how many there are at the end. The true
value after each event is known, so any written solution can be labelled step by step without a
person or a model: that is what makes exact process labels (and so exact PRM training data) possible.

Difficulty is the number of events (``steps``) and the size of the numbers (``max_number`` for the
start and the amounts added or taken; ``max_factor`` for multiplying and splitting). Problems come from
``random.Random(seed)``: the same settings and seed always give the same problems.

The step checker. A solution is split into lines. A line is checked on what it claims:

- every calculation ``a op b = c`` on it must be right (exact rational arithmetic), and its result
  must be a value the problem actually passes through, now or later (so combining two events on one
  line is fine, and a correct calculation on a wrongly carried number is not);
- a final-answer line ("The answer is 9", "#### 9") must give the right answer;
- a line with neither (prose, a restated question) is *neutral*: nothing in it can be wrong.

Labels are per line and independent of each other; ``first_error`` is the first wrong line.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from fractions import Fraction

from referee.errors import RefereeError
from referee.io import read_records
from referee.tasks.math import (INSTRUCTION, Extraction, MathProblem, StepwiseRecord, answers_match,
                                extract_announced, extract_answer, extract_gsm8k, format_number, safe_eval,
                                split_steps)

OPS = ("add", "sub", "mul", "div")
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}

_NAMES = ("Ada", "Bo", "Cleo", "Dev", "Eli", "Fern", "Gus", "Hana", "Ivo", "Juno", "Kai", "Lena",
          "Milo", "Nia", "Omar", "Pia", "Quinn", "Ravi", "Sora", "Tess")
_THINGS = ("marbles", "stickers", "apples", "pencils", "shells", "coins", "cards", "beads", "stamps",
           "cookies", "buttons", "books")
_EVENTS = {
    "add": ("{name} buys {k} more {thing}.", "{name} finds {k} more {thing}.",
            "A friend gives {name} {k} more {thing}."),
    "sub": ("{name} gives away {k} {thing}.", "{name} loses {k} {thing}.", "{name} uses up {k} {thing}."),
    "mul": ("Then {name} ends up with {k} times as many {thing} as before.",
            "The number of {thing} {name} has grows to {k} times what it was."),
    "div": ("{name} splits the {thing} into {k} equal groups and keeps just one group.",
            "{name} keeps only one of every {k} {thing}."),
}
_STEP_TEXT = {
    "add": "Adding {k}: {v} + {k} = {r}.",
    "sub": "Taking away {k}: {v} - {k} = {r}.",
    "mul": "{k} times as many: {v} * {k} = {r}.",
    "div": "One of {k} equal parts: {v} / {k} = {r}.",
}


@dataclass(frozen=True)
class Difficulty:
    """How hard the problems are: how many events, and how big the numbers."""

    steps: int = 2
    max_number: int = 20
    max_factor: int = 3
    ops: tuple[str, ...] = OPS

    def __post_init__(self):
        if self.steps < 1:
            raise RefereeError(f"arithmetic: steps should be >= 1, got {self.steps}")
        if self.max_number < 2:
            raise RefereeError(f"arithmetic: max_number should be >= 2, got {self.max_number}")
        if self.max_factor < 2:
            raise RefereeError(f"arithmetic: max_factor should be >= 2, got {self.max_factor}")
        bad = [o for o in self.ops if o not in OPS]
        if bad or not self.ops:
            raise RefereeError(f"arithmetic: ops should be some of {', '.join(OPS)}, got {', '.join(bad) or 'none'}")
        object.__setattr__(self, "ops", tuple(self.ops))


def _apply(op: str, v: int, k: int) -> Fraction:
    return {"add": Fraction(v + k), "sub": Fraction(v - k), "mul": Fraction(v * k), "div": Fraction(v, k)}[op]


def _pick_event(rng: random.Random, v: int, d: Difficulty) -> tuple[str, int]:
    """An event that keeps the count a positive whole number."""
    for _ in range(100):
        op = rng.choice(d.ops)
        if op in ("add", "sub"):
            k = rng.randint(1, d.max_number)
            if op == "sub" and k >= v:
                continue
        else:
            k = rng.randint(2, d.max_factor)
            if op == "div" and v % k:
                continue
        return op, k
    if "add" in d.ops:
        return "add", rng.randint(1, d.max_number)
    if "mul" in d.ops:
        return "mul", rng.randint(2, d.max_factor)
    raise RefereeError(f"arithmetic: cannot build problems from ops {', '.join(d.ops)} alone; add 'add' or 'mul'")


def make_problem(rng: random.Random, d: Difficulty, pid: str) -> MathProblem:
    name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
    start = rng.randint(2, d.max_number)
    values, ops, operands, sentences, lines = [start], [], [], [], []
    v = start
    for _ in range(d.steps):
        op, k = _pick_event(rng, v, d)
        r = int(_apply(op, v, k))
        sentences.append(rng.choice(_EVENTS[op]).format(name=name, k=k, thing=thing))
        lines.append(_STEP_TEXT[op].format(k=k, v=v, r=r))
        ops.append(op)
        operands.append(k)
        values.append(r)
        v = r
    question = f"{name} has {start} {thing}. " + " ".join(sentences) + f" How many {thing} does {name} have now?"
    lines.append(f"The answer is {v}.")
    return MathProblem(pid, question, str(v), lines,
                       meta={"values": values, "ops": ops, "operands": operands, "steps": d.steps,
                             "max_number": d.max_number, "max_factor": d.max_factor})


MAX_PROBLEMS = 10_000_000  # a slip of a few zeros is refused at once, not generated for hours


def generate_problems(n: int, difficulty: Difficulty | None = None, seed: int = 0) -> list[MathProblem]:
    """``n`` problems; problem i is the same for a given (difficulty, seed) whatever ``n`` is."""
    d = difficulty or Difficulty()
    if not 1 <= n <= MAX_PROBLEMS:
        raise RefereeError(f"arithmetic: n should be from 1 to {MAX_PROBLEMS:,}, got {n}")
    tag = f"arith-s{d.steps}-m{d.max_number}-f{d.max_factor}-seed{seed}"
    return [make_problem(random.Random(f"{tag}-{i}"), d, f"{tag}-{i}") for i in range(n)]


def load_arithmetic(path: str | os.PathLike) -> list[MathProblem]:
    """Read problems written by ``referee tasks arithmetic --format problems``."""
    problems = []
    for pos, obj in read_records(path):
        where = f"{path}:{pos}"
        for f in ("id", "question", "answer"):
            if not isinstance(obj.get(f), str):
                raise RefereeError(f"{where}: missing or non-string field '{f}'")
        meta = obj.get("meta")
        if not isinstance(meta, dict) or not isinstance(meta.get("values"), list):
            raise RefereeError(f"{where}: missing field 'meta.values' (the true value after each step)")
        if not all(isinstance(x, (int, float)) for x in meta["values"]):
            raise RefereeError(f"{where}: field 'meta.values' should be a list of numbers")
        steps = obj.get("steps", [])
        if not isinstance(steps, list):
            raise RefereeError(f"{where}: field 'steps' should be a list of strings")
        problems.append(MathProblem(obj["id"], obj["question"], obj["answer"], steps, meta))
    if not problems:
        raise RefereeError(f"{path}: no problems in the file")
    return problems


# ---- the step checker ------------------------------------------------------------------------------
_LIST_MARKER = re.compile(r"^\s*(?:step\s*)?\d+\s*[.):]\s+", re.IGNORECASE)
_UNIT_WORD = re.compile(r"(?<=\d)\s+[A-Za-z]+(?=\s*[-+*/×÷=−])")  # "10 apples - 2 apples = 8"
_EQUATION = re.compile(r"[\d(][\d\s.,+\-*/()$%xX×÷−]*=[\d\s.,+\-*/()$%xX×÷−=]*")
_ARITHMETIC_RUN = re.compile(r"[\d\s.,+\-*/()$%xX×÷−=]+")  # where an equation can lie


@dataclass
class Calculation:
    text: str
    parts: list[str]  # the sides, as written
    values: list[Fraction]  # the value of each side

    @property
    def holds(self) -> bool:
        return all(v == self.values[0] for v in self.values)

    @property
    def result(self) -> Fraction:
        return self.values[-1]


def find_calculations(line: str) -> list[Calculation]:
    """Every readable ``expr = expr [= ...]`` on a line; spans that are not plain arithmetic are ignored."""
    line = _LIST_MARKER.sub("", line)
    if "=" in line:
        line = _UNIT_WORD.sub("", line)
    out = []
    # An equation lies within one run of arithmetic characters; runs with no "=" are skipped, since searching
    # them costs time quadratic in their length (a model's "1+1+...+1").
    runs = (run for chunk in re.split(r",\s+|;", line) for run in _ARITHMETIC_RUN.findall(chunk) if "=" in run)
    for run in runs:
        for m in _EQUATION.finditer(run):
            span = m.group(0).rstrip(" .,$%xX")
            end = len(span)
            while end and span[end - 1] not in "0123456789)":
                end -= 1
            span = span[:end]
            parts = [p.strip() for p in span.split("=")]
            if len(parts) < 2 or not all(parts):
                continue
            try:
                values = [safe_eval(p) for p in parts]
            except ValueError:
                continue
            out.append(Calculation(span, parts, values))
    return out


@dataclass
class StepVerdict:
    text: str
    label: str  # "correct", "wrong" or "neutral"
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.label != "wrong"


@dataclass
class SolutionCheck:
    steps: list[StepVerdict]
    answer: Extraction
    correct: bool  # the final answer is right
    first_error: int | None  # index of the first wrong step

    @property
    def no_answer(self) -> bool:
        return not self.answer.found


def _final_answer(line: str) -> Extraction | None:
    for fn in (extract_gsm8k, extract_announced):
        found = fn(line)
        if found.found:
            return found
    return None


def check_solution(problem: MathProblem, solution: str | list[str]) -> SolutionCheck:
    """Label every step of a written solution (see the module doc for the rules)."""
    if "values" not in problem.meta:
        raise RefereeError(f"problem {problem.id}: step checking needs the true values (meta.values)")
    values = [Fraction(str(v)) for v in problem.meta["values"]]
    steps = split_steps(solution) if isinstance(solution, str) else [s for s in solution if s.strip()]
    reached = 0  # index into values of the furthest true value a correct step has stated
    verdicts = []
    for line in steps:
        problems_found, checked = [], False
        for calc in find_calculations(line):
            checked = True
            if not calc.holds:
                i = next(i for i, v in enumerate(calc.values) if v != calc.values[0])
                problems_found.append(f"arithmetic: {calc.parts[0]} is {format_number(calc.values[0])}, "
                                      f"not {calc.parts[i]}")
                continue
            later = [i for i in range(reached, len(values)) if values[i] == calc.result]
            if later:
                reached = later[0]
            else:
                nxt = format_number(values[min(reached + 1, len(values) - 1)])
                problems_found.append(f"{format_number(calc.result)} does not follow from the problem "
                                      f"(next true value: {nxt})")
        final = _final_answer(line)
        if final is not None:
            checked = True
            if not answers_match(final, problem.answer):
                problems_found.append(f"final answer {final.text}, expected {problem.answer}")
        if problems_found:
            verdicts.append(StepVerdict(line, "wrong", "; ".join(problems_found)))
        elif checked:
            verdicts.append(StepVerdict(line, "correct"))
        else:
            verdicts.append(StepVerdict(line, "neutral", "no calculation or answer to check"))
    answer = extract_answer("\n".join(steps))
    first = next((i for i, v in enumerate(verdicts) if v.label == "wrong"), None)
    return SolutionCheck(verdicts, answer, answers_match(answer, problem.answer), first)


def step_grade(check: SolutionCheck, high: int = 5) -> int:
    """A 0..``high`` grade from the step checker: ``high`` for a right answer reached without a wrong step,
    otherwise the share of the solution written before its first wrong step (a slip at the end keeps
    more than one at the start), at most ``high - 1``. No steps at all grade 0."""
    n = len(check.steps)
    if n == 0:
        return 0
    if check.correct and check.first_error is None:
        return high
    reached = n if check.first_error is None else check.first_error
    return min(high - 1, high * reached // n)


# ---- data writers ----------------------------------------------------------------------------------
def problem_records(problems: list[MathProblem], instruction: str | None = INSTRUCTION) -> list[dict]:
    return [p.to_record(instruction) for p in problems]


def sft_records(problems: list[MathProblem], instruction: str | None = INSTRUCTION) -> list[dict]:
    """Conversational SFT demonstrations (TRL ``messages``): the prompt and the reference solution."""
    return [{"id": p.id, "messages": [{"role": "user", "content": p.prompt(instruction)},
                                      {"role": "assistant", "content": "\n".join(p.steps)}]}
            for p in problems]


def labelled_record(problem: MathProblem, solution: str | list[str], instruction: str | None = INSTRUCTION,
                    stop_at_first_error: bool = False, **extra) -> StepwiseRecord:
    """A solution as a TRL stepwise record with exact labels (neutral steps count as fine)."""
    check = check_solution(problem, solution)
    steps = [v.text for v in check.steps]
    labels = [1.0 if v.ok else 0.0 for v in check.steps]
    if stop_at_first_error and check.first_error is not None:
        steps, labels = steps[:check.first_error + 1], labels[:check.first_error + 1]
    return StepwiseRecord(problem.prompt(instruction), steps, labels,
                          {"id": problem.id, "answer": problem.answer, "correct": check.correct, **extra})


def corrupt_solution(problem: MathProblem, rng: random.Random) -> list[str] | None:
    """A plausible wrong solution: one step slips (a wrong result or the wrong operation) and the later
    steps carry the wrong number forward with correct arithmetic. None if no valid corruption was found."""
    ops, operands = problem.meta["ops"], problem.meta["operands"]
    for _ in range(20):
        i = rng.randrange(len(ops))
        kind = rng.choice(("slip", "operation"))
        values = [Fraction(problem.meta["values"][0])]
        lines = []
        ok = True
        for j, (op, k) in enumerate(zip(ops, operands)):
            v = values[-1]
            use_op = op
            if j == i and kind == "operation":
                use_op = {"add": "sub", "sub": "add", "mul": "add", "div": "mul"}[op]
            r = _apply(use_op, int(v), k)
            if j == i and kind == "slip":
                r += rng.choice((-2, -1, 1, 2))
            if r < 0 or r.denominator != 1:
                ok = False
                break
            lines.append(_STEP_TEXT[use_op].format(k=k, v=int(v), r=int(r)))
            values.append(r)
        if ok and values[-1] != Fraction(problem.meta["values"][-1]):
            return lines + [f"The answer is {int(values[-1])}."]
    return None


def stepwise_records(problems: list[MathProblem], negatives: int = 1, seed: int = 0,
                     instruction: str | None = INSTRUCTION) -> list[StepwiseRecord]:
    """PRM training data: each reference solution (all steps right) and ``negatives`` corrupted ones."""
    out = []
    for p in problems:
        out.append(labelled_record(p, p.steps, instruction, source="reference"))
        rng = random.Random(f"corrupt-{seed}-{p.id}")
        for _ in range(negatives):
            bad = corrupt_solution(p, rng)
            if bad is not None:
                out.append(labelled_record(p, bad, instruction, source="corrupted"))
    return out
