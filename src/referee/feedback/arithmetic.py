"""Arithmetic problems for feedback experiments that an exact checker grades: disjoint problem sets drawn
from one seed (with a test namespace no tuning reaches), and the checker's verdict on one solution."""

from __future__ import annotations

from pydantic import Field

from referee.config import StrictModel
from referee.errors import RefereeError
from referee.tasks.arithmetic import OPS, Difficulty, check_solution, generate_problems, step_grade
from referee.tasks.math import MathProblem

# Test problems come from generator seeds TEST_NAMESPACE + seed, which no set that a recipe was tuned on
# (generator seeds 10 * seed + k) ever reaches; they are drawn after the others and share no question with them.
TEST_NAMESPACE = 1_000_000


class ArithmeticSettings(StrictModel):
    steps: int = Field(2, ge=1, le=20)
    max_number: int = Field(20, ge=2)
    max_factor: int = Field(3, ge=2)
    ops: list[str] = list(OPS)


def distinct_problem_sets(task: ArithmeticSettings, sizes: dict[str, int], seed: int, who: str,
                          test: int = 0) -> dict[str, list[MathProblem]]:
    """Sets of arithmetic problems, drawn in the order of ``sizes`` (set k from seed 10 * seed + k), no
    question in two sets or twice in one: a set drawn first never depends on the sizes of later ones. With
    ``test``, a last set of that size, "test", from the test namespace (TEST_NAMESPACE + seed)."""
    difficulty = Difficulty(task.steps, task.max_number, task.max_factor, tuple(task.ops))
    seen: set[str] = set()
    sets: dict[str, list[MathProblem]] = {}
    draws = [(name, size, 10 * seed + k) for k, (name, size) in enumerate(sizes.items())]
    for name, size, generator_seed in draws + ([("test", test, TEST_NAMESPACE + seed)] if test else []):
        kept = []
        for p in generate_problems(4 * size + 100, difficulty, seed=generator_seed) if size else []:
            if p.question not in seen:
                seen.add(p.question)
                kept.append(p)
            if len(kept) == size:
                break
        if len(kept) < size:
            raise RefereeError(f"{who}: only {len(kept)} distinct problems left for the {name} set "
                               f"({size} asked); ask for fewer, or for larger problems (task.steps, "
                               f"task.max_number)")
        sets[name] = kept
    return sets


# How an answer is scored; part of the stage inputs, so a change of rule rescores (from the cache).
ANSWER_RULE = "right only if the final answer is stated ('The answer is N', '#### N'), not the last number"


def checked(problem: MathProblem, text: str) -> dict:
    """What the exact checker says of one solution. A final answer counts only where the solution states
    it, as the prompt asks: the last number of a degenerate answer ("3: 6: 3 = 1: 3") is not taken."""
    check = check_solution(problem, text)
    stated = check.answer.found and check.answer.method != "last_number"
    return {"correct": check.correct and stated, "grade": step_grade(check), "no_answer": not stated,
            "first_error": check.first_error, "steps": len(check.steps)}
