"""The seed sets shipped with referee for the self-rewarding loop (written here; see data/self_rewarding)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from referee.errors import RefereeError
from referee.io import read_records, require

SEED_DIR = resources.files("referee") / "data" / "self_rewarding"


def shipped(name: str) -> str:
    return str(Path(str(SEED_DIR)) / name)


def load_ift(path: str | None = None) -> list[dict]:
    """Instruction/answer demonstrations: ``prompt`` and ``answer`` (or TRL ``messages``)."""
    path = path or shipped("seed_ift.jsonl")
    out = []
    for pos, obj in read_records(path):
        where = f"{path}:{pos}"
        if "messages" in obj:
            out.append({"messages": obj["messages"]})
            continue
        prompt = require(obj, "prompt", str, where)
        answer = require(obj, "answer", str, where)
        out.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})
    if not out:
        raise RefereeError(f"{path}: no demonstrations")
    return out


def load_eft(path: str | None = None, low: int = 0, high: int = 5) -> list[dict]:
    """Graded answers: ``prompt``, ``response``, ``score`` (an integer on the rubric's scale)."""
    path = path or shipped("seed_eft.jsonl")
    out = []
    for pos, obj in read_records(path):
        where = f"{path}:{pos}"
        prompt = require(obj, "prompt", str, where)
        response = require(obj, "response", str, where)
        score = require(obj, "score", int, where)
        if not low <= score <= high:
            raise RefereeError(f"{where}: field 'score' should be within {low}..{high}, got {score}")
        out.append({"prompt": prompt, "response": response, "score": score, "line": pos})
    if len(out) < 3:
        raise RefereeError(f"{path}: need at least 3 graded examples, found {len(out)}")
    return out


def split_eft(examples: list[dict]) -> tuple[list[dict], list[dict]]:
    """Every third example is held out to measure the self-judge; the rest are for training."""
    return ([e for i, e in enumerate(examples) if i % 3 != 2], [e for i, e in enumerate(examples) if i % 3 == 2])
