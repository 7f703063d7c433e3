"""What a critics run builds from its program and bug records: the items each critic critiques, the lines a
catch must touch, and the gold critique a trained critic learns (and the refiner and the critique RM use).

Plain functions of the records, so the protocol's stages key on the same records as before.
"""

from __future__ import annotations

from referee.critics.critique import critique_chat
from referee.critics.metrics import NO_PROBLEMS_TEXT
from referee.programs.datasets import Program


def program_record(p) -> dict:
    return {"id": p.id, "origin": p.origin, "source": p.source, "entry_point": p.entry_point, "tests": p.tests,
            "meta": p.meta}


def as_programs(records: list[dict]) -> list[Program]:
    return [Program(r["id"], r["source"], r["entry_point"], r["tests"], r["origin"], r["meta"]) for r in records]


def bug_span(record: dict) -> tuple[int, int]:
    """The lines a catch must touch; a removed statement's gap is the lines on both sides of it."""
    return span_to_touch(record["line_start"], record["line_end"])


def span_to_touch(start: int, end: int) -> tuple[int, int]:
    return (start - 1, start) if end < start else (start, end)


def eval_items(programs: dict, bugs: dict, split: str = "eval") -> list[dict]:
    """What the critics see: the ``split``'s programs' bugs (tampered, natural; two at once for eval) and
    their correct versions."""
    items = [{"id": r["id"], "set": r["set"], "program_id": r["program_id"], "operator": r["operator"],
              "source": r["source"], "bugs": [list(bug_span(r))]}
             for r in bugs["records"] if programs[r["program_id"]]["split"] == split]
    items += [{"id": r["id"], "set": "two_bugs", "program_id": r["program_id"], "operator": r["operator"],
               "source": r["source"], "bugs": [list(span_to_touch(*s)) for s in r["spans"]]}
              for r in (bugs.get("two_bugs", []) if split == "eval" else [])]
    items += [{"id": p["id"], "set": "correct", "program_id": p["id"], "operator": None, "source": p["source"],
               "bugs": []} for p in programs.values() if p["split"] == split]
    return items


def train_bugs(programs: dict, bugs: dict) -> list[dict]:
    """The tampering records of the train half: the only bugs any critic or critique RM learns from."""
    return [r for r in bugs["records"] if r["set"] == "tampered" and programs[r["program_id"]]["split"] == "train"]


def sft_target(record: dict, source: str) -> str:
    """The critique a trained critic should write for a tampering record (written here, not the paper's)."""
    why = record["description"].split(": ", 1)[-1].rstrip(".")
    fix = record["original_code"].strip()
    if record["line_end"] < record["line_start"]:  # a removed statement: quote where it is missing
        lines = source.splitlines()
        before = lines[record["line_start"] - 2].strip() if record["line_start"] >= 2 else ""
        return f"A statement is missing after <quote>{before}</quote>: `{fix}` is needed."
    return f"<quote>{record['tampered_code'].strip()}</quote> is wrong: {why}. It should be `{fix}`."


def critic_training_rows(programs: dict, bugs: dict) -> list[dict]:
    rows = [{"messages": critique_chat(r["source"]) + [{"role": "assistant", "content": sft_target(r, r["source"])}]}
            for r in train_bugs(programs, bugs)]
    rows += [{"messages": critique_chat(p["source"]) + [{"role": "assistant", "content": NO_PROBLEMS_TEXT}]}
             for p in programs.values() if p["split"] == "train"]
    return rows
