"""Few-shot examples for judges: loaded from lists or files (errors name the file, line and field) and
rendered through the template's example sections."""

from __future__ import annotations

import os
from dataclasses import dataclass

from referee.errors import RefereeError
from referee.io import read_records


@dataclass
class Example:
    fields: dict  # question, answer / answer_a, answer_b
    verdict: str  # the marker text, e.g. "[[A]]" or "[[7]]"
    explanation: str = ""


def load_examples(source: list[dict] | str | os.PathLike | None, kind: str, scale: tuple[int, int] | None = None
                  ) -> list[Example]:
    """Worked examples from a list of dicts or a JSON / JSONL file; errors name the file, line and field.

    Pairwise: ``question``, ``answer_a``, ``answer_b``, ``verdict`` (A, B or tie); LLMBar names
    (``input``, ``output_1``, ``output_2``, ``label`` 1/2) work too. Grading: ``question``, ``answer``,
    ``score``. ``explanation`` is optional (shown before the verdict, as a reasoning judge would).
    """
    if source is None:
        return []
    if isinstance(source, (str, os.PathLike)):
        items = [(f"{source}:{pos}", obj) for pos, obj in read_records(source)]
        if not items:  # a file named on purpose: without examples the judge would run zero-shot unawares
            raise RefereeError(f"{source}: no few-shot examples in the file")
    else:
        items = [(f"few-shot example {i + 1}", obj) for i, obj in enumerate(source)]
    out = []
    for where, obj in items:
        if not isinstance(obj, dict):
            raise RefereeError(f"{where}: expected an object with the example's fields")

        def get(*names, kind=str):
            for n in names:
                if n in obj:
                    if not isinstance(obj[n], kind):
                        raise RefereeError(f"{where}: field '{n}' should be {getattr(kind, '__name__', kind)}")
                    return obj[n]
            raise RefereeError(f"{where}: missing field '{names[0]}'")

        explanation = obj.get("explanation", "")
        if not isinstance(explanation, str):
            raise RefereeError(f"{where}: field 'explanation' should be a string")
        question = get("question", "input", "prompt")
        if kind == "pairwise":
            raw = get("verdict", "label", kind=(str, int))
            verdict = {"a": "A", "b": "B", "c": "C", "tie": "C", "1": "A", "2": "B"}.get(str(raw).strip().lower())
            if verdict is None:
                raise RefereeError(f"{where}: field 'verdict' should be A, B or tie, got {raw!r}")
            fields = {"question": question, "answer_a": get("answer_a", "output_1"),
                      "answer_b": get("answer_b", "output_2")}
        else:
            score = get("score", kind=(int, float))
            lo, hi = scale or (0, 99)
            if not lo <= score <= hi:
                raise RefereeError(f"{where}: field 'score' should be within {lo}..{hi}, got {score}")
            verdict = str(int(score)) if float(score).is_integer() else str(score)
            fields = {"question": question, "answer": get("answer", "response")}
        out.append(Example(fields, f"[[{verdict}]]", explanation.strip() + "\n" if explanation.strip() else ""))
    return out


def render_examples(template, examples: list[Example]) -> str:
    if not examples:
        return ""
    if not (template.has("examples") and template.has("example")):
        raise RefereeError(f"template {template.source}: few-shot examples need 'examples' and 'example' sections")
    shown = [template.fill("example", {**ex.fields, "verdict": ex.verdict, "explanation": ex.explanation})
             for ex in examples]
    return template.fill("examples", {"examples": "\n\n".join(shown)}) + "\n"
