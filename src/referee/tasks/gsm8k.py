"""GSM8K: grade-school word problems whose reference solutions end in ``#### <answer>``.

Calculator annotations. The reference solutions carry ``<<48/2=24>>`` markers, the calculator calls
the original data collection used. They are not part of the prose a model should learn to write, so
the loader *strips* them from the steps by default (``annotations="keep"`` keeps them) and *checks* each
one with exact arithmetic on the way: the number of annotations whose result is wrong is kept in
``meta["bad_annotations"]`` per problem and summed in ``Gsm8kData.bad_annotations``. The gold answer
is always the ``####`` line, never an annotation.

Held-out split: ``split_held_out`` assigns each problem by a hash of its id and a seed, so the split
does not depend on the order of the file or on how many problems are loaded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from referee.draws import seeded_unit
from referee.errors import RefereeError
from referee.io import read_records
from referee.tasks.math import MathProblem, extract_gsm8k, safe_eval, split_steps

_ANNOTATION_RE = re.compile(r"<<([^<>]*)>>")


@dataclass
class AnnotationCheck:
    expression: str
    claimed: str
    ok: bool | None  # None when the annotation is not plain arithmetic


def check_annotations(text: str) -> list[AnnotationCheck]:
    """Check every ``<<expr=result>>`` in ``text`` with exact arithmetic."""
    out = []
    for m in _ANNOTATION_RE.finditer(text):
        body = m.group(1)
        if "=" not in body:
            out.append(AnnotationCheck(body, "", None))
            continue
        expr, claimed = body.rsplit("=", 1)
        try:
            ok = safe_eval(expr) == safe_eval(claimed)
        except ValueError:
            ok = None
        out.append(AnnotationCheck(expr, claimed, ok))
    return out


def strip_annotations(text: str) -> str:
    return _ANNOTATION_RE.sub("", text)


@dataclass
class Gsm8kData:
    problems: list[MathProblem]
    bad_annotations: int = 0
    unreadable_annotations: int = 0


def load_gsm8k(path: str | os.PathLike, limit: int | None = None, annotations: str = "strip") -> Gsm8kData:
    """Load GSM8K JSONL (``question``, ``answer``): steps are the answer's lines before ``####``."""
    if annotations not in ("strip", "keep"):
        raise RefereeError(f"gsm8k: annotations should be 'strip' or 'keep', got {annotations!r}")
    data = Gsm8kData([])
    for lineno, obj in read_records(path):
        where = f"{path}:{lineno}"
        for f in ("question", "answer"):
            if f not in obj:
                raise RefereeError(f"{where}: missing field '{f}'")
            if not isinstance(obj[f], str) or not obj[f].strip():
                raise RefereeError(f"{where}: field '{f}' should be a non-empty string")
        solution = obj["answer"]
        gold = extract_gsm8k(solution)
        if not gold.found:
            raise RefereeError(f"{where}: field 'answer' has no '#### <answer>' line")
        checks = check_annotations(solution)
        bad = sum(c.ok is False for c in checks)
        unreadable = sum(c.ok is None for c in checks)
        body = solution.rsplit("####", 1)[0]
        if annotations == "strip":
            body = strip_annotations(body)
        pid = str(obj.get("id", f"gsm8k-{lineno}"))
        data.problems.append(MathProblem(pid, obj["question"].strip(), gold.text, split_steps(body),
                                         meta={"line": lineno, "bad_annotations": bad}))
        data.bad_annotations += bad
        data.unreadable_annotations += unreadable
        if limit is not None and len(data.problems) >= limit:
            break
    if not data.problems:
        raise RefereeError(f"{path}: no problems in the file")
    return data


def split_held_out(problems: list[MathProblem], fraction: float = 0.1,
                   seed: int = 0) -> tuple[list[MathProblem], list[MathProblem]]:
    """(train, held_out): each problem goes to held_out when a hash of (seed, id) falls under ``fraction``."""
    if not 0 < fraction < 1:
        raise RefereeError(f"held-out fraction should be in (0, 1), got {fraction}")
    train, held = [], []
    for p in problems:
        (held if seeded_unit(seed, None, p.id) < fraction else train).append(p)
    return train, held
