"""Labelled preference pairs: the LLMBar format, MT-Bench human judgments, TRL preference files and
HH-RLHF dialogues.

Every loader returns ``Pair`` objects; ``label`` is "A", "B", "tie" or None (unlabelled).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from referee.chat import as_chat, parse_dialogue
from referee.errors import RefereeError
from referee.io import optional, read_records

LABELS = ("A", "B", "tie")


@dataclass
class Pair:
    """One question with two answers. ``question`` is a chat; for multi-turn pairs ``turns_a``/``turns_b``
    hold each side's whole conversation and ``answer_a``/``answer_b`` its last answer."""

    id: str
    question: list  # chat messages up to the answers
    answer_a: str
    answer_b: str
    label: str | None = None
    category: str | None = None
    reference: str | None = None
    turns_a: list | None = None
    turns_b: list | None = None
    meta: dict = field(default_factory=dict)


def _label(value, where: str) -> str:
    mapping = {1: "A", 2: "B", "1": "A", "2": "B", "A": "A", "B": "B", "a": "A", "b": "B",
               "model_a": "A", "model_b": "B", "tie": "tie", "tie (bothbad)": "tie", 0: "tie", "0": "tie"}
    if isinstance(value, (str, int, float)) and value in mapping:  # a list or an object is never a label
        return mapping[value]
    raise RefereeError(f"{where}: field 'label' should be 1, 2 (or A, B, tie), got {value!r}")


def _final_answer(obj: dict, name: str, where: str) -> str:
    """A TRL answer field: the text itself, or a message list whose last message holds it."""
    value = obj[name]
    if isinstance(value, list):
        last = value[-1] if value else None
        if not isinstance(last, dict) or not isinstance(last.get("content"), str):
            raise RefereeError(f"{where}: field '{name}' should be a string or a non-empty list of messages "
                               f"ending with the answer")
        return last["content"]
    if not isinstance(value, str):
        raise RefereeError(f"{where}: fields 'chosen' and 'rejected' should be strings or messages")
    return value


def _reason(obj: dict, where: str) -> dict:
    """A reason (``reason`` or ``explanation``) for the label, written about the pair as given (A first)."""
    reason = obj.get("reason", obj.get("explanation"))
    if reason is None:
        return {}
    if not isinstance(reason, str):
        raise RefereeError(f"{where}: field 'reason' should be a string")
    return {"reason": reason}


def _category(obj: dict, where: str) -> str | None:
    """The category the metrics are grouped by, as text (a number is taken as its text); a list or an object
    is an error, as it cannot name a group."""
    value = optional(obj, "category", (str, int, float), where)
    return None if value is None else str(value)


def load_pairs(path: str | os.PathLike) -> list[Pair]:
    """Load pairs from any supported format, recognised per record by its fields:

    - LLMBar: ``input``, ``output_1``, ``output_2``, ``label`` (1 or 2);
    - MT-Bench human judgments: ``question_id``, ``model_a``, ``model_b``, ``winner``,
      ``conversation_a``, ``conversation_b`` (judges the last assistant turn, with the whole conversation);
    - TRL preference: ``prompt``, ``chosen``, ``rejected`` (label A; chosen shown first);
    - HH-RLHF: ``chosen``, ``rejected`` dialogue strings (label A); the turns before the last answer are
      the question, and where they differ between the sides (or there are several) both whole
      conversations are kept, as for MT-Bench;
    - generic: ``prompt``/``question``, ``answer_a``/``response_a``, ``answer_b``/``response_b``, optional ``label``.

    LLMBar and generic records may carry a ``reason`` (or ``explanation``) for their label, kept in
    ``meta["reason"]`` (a trained judge can learn to write it before its verdict).
    """
    pairs = [_pair(obj, _pair_id(obj, pos), f"{path}:{pos}") for pos, obj in read_records(path)]
    if not pairs:
        raise RefereeError(f"{path}: no pairs in the file")
    return pairs


def pairs_from_records(records: list[dict], source: str) -> list[Pair]:
    """Records already in memory (any format ``load_pairs`` reads) as pairs; errors name ``source`` and
    the record's 1-based position."""
    for pos, obj in enumerate(records, start=1):
        if not isinstance(obj, dict):
            raise RefereeError(f"{source}: item {pos}: expected a record (dict), got {type(obj).__name__}")
    pairs = [_pair(obj, _pair_id(obj, pos), f"{source}: item {pos}") for pos, obj in enumerate(records, start=1)]
    if not pairs:
        raise RefereeError(f"{source}: no pairs given")
    return pairs


def _pair_id(obj: dict, pos: int) -> str:
    return str(obj.get("id", obj.get("question_id", pos)))


def _pair(obj: dict, pid: str, where: str) -> Pair:
    """One record as a pair, its format recognised by its fields (``load_pairs``)."""
    if "output_1" in obj or "output_2" in obj:
        return _llmbar_pair(obj, pid, where)
    if "conversation_a" in obj:
        return _mt_bench_pair(obj, pid, where)
    if "chosen" in obj and "rejected" in obj and "prompt" not in obj:
        return _hh_pair(obj, pid, where)
    if "chosen" in obj and "rejected" in obj and "prompt" in obj:
        chosen, rejected = (_final_answer(obj, name, where) for name in ("chosen", "rejected"))
        return Pair(pid, as_chat(obj["prompt"], f"{where}: field 'prompt'"), chosen, rejected, "A")
    return _generic_pair(obj, pid, where)


def _llmbar_pair(obj: dict, pid: str, where: str) -> Pair:
    for f in ("input", "output_1", "output_2"):
        if f not in obj:
            raise RefereeError(f"{where}: missing field '{f}'")
        if not isinstance(obj[f], str):
            raise RefereeError(f"{where}: field '{f}' should be a string")
    label = _label(obj["label"], where) if "label" in obj else None
    return Pair(pid, as_chat(obj["input"]), obj["output_1"], obj["output_2"], label,
                category=_category(obj, where), meta=_reason(obj, where))


def _mt_bench_pair(obj: dict, pid: str, where: str) -> Pair:
    """An MT-Bench human judgment: the last assistant turns judged, the whole conversations kept."""
    for f in ("conversation_a", "conversation_b"):
        if f not in obj:
            raise RefereeError(f"{where}: missing field '{f}'")
    ca = as_chat(obj["conversation_a"], f"{where}: field 'conversation_a'")
    cb = as_chat(obj["conversation_b"], f"{where}: field 'conversation_b'")
    if ca[-1]["role"] != "assistant" or cb[-1]["role"] != "assistant":
        raise RefereeError(f"{where}: conversations should end with an assistant turn")
    label = _label(obj["winner"], where) if "winner" in obj else None
    return Pair(pid, ca[:-1], ca[-1]["content"], cb[-1]["content"], label,
                category=_category(obj, where), turns_a=ca, turns_b=cb,
                meta={k: obj[k] for k in ("model_a", "model_b", "judge", "turn") if k in obj})


def _generic_pair(obj: dict, pid: str, where: str) -> Pair:
    q = obj.get("prompt", obj.get("question"))
    a = obj.get("answer_a", obj.get("response_a"))
    b = obj.get("answer_b", obj.get("response_b"))
    if q is None:
        raise RefereeError(f"{where}: missing field 'input' (LLMBar), 'prompt' or 'question'")
    if a is None or b is None:
        raise RefereeError(f"{where}: missing field '{'answer_a' if a is None else 'answer_b'}' "
                           f"(or output_1/output_2, chosen/rejected)")
    if not isinstance(a, str) or not isinstance(b, str):
        raise RefereeError(f"{where}: answers should be strings")
    label = _label(obj["label"], where) if obj.get("label") is not None else None
    return Pair(pid, as_chat(q, f"{where}: field 'prompt'"), a, b, label,
                category=_category(obj, where), reference=optional(obj, "reference", str, where),
                meta=_reason(obj, where))


def _hh_pair(obj: dict, pid: str, where: str) -> Pair:
    """An HH-RLHF record ("\n\nHuman: ...\n\nAssistant: ..." strings) as a pair, chosen = A."""
    sides = []
    for name in ("chosen", "rejected"):
        if not isinstance(obj[name], str):
            raise RefereeError(f"{where}: field '{name}' should be a dialogue string (or give a 'prompt' field)")
        turns = parse_dialogue(obj[name], f"{where}: field '{name}'")
        if turns[-1]["role"] != "assistant" or len(turns) < 2:
            raise RefereeError(f"{where}: field '{name}' should end with an assistant answer after a human turn")
        sides.append(turns)
    ca, cb = sides
    multiturn = ca[:-1] != cb[:-1] or sum(m["role"] == "user" for m in ca) > 1
    return Pair(pid, ca[:-1], ca[-1]["content"], cb[-1]["content"], "A",
                turns_a=ca if multiturn else None, turns_b=cb if multiturn else None)


def pair_key(pair: Pair) -> str:
    """The same question with the same two answers (in either order, whitespace aside) has the same key:
    how a pair that trained is found among the pairs that evaluate."""
    def norm(text: str) -> str:
        return " ".join(text.split()).lower()

    question = norm(" ".join(m["content"] for m in pair.question))
    answers = sorted(norm(a) for a in (pair.answer_a, pair.answer_b))
    return hashlib.sha256("\x00".join([question, *answers]).encode()).hexdigest()[:24]


def shared_pairs(train: list[Pair], evaluate: list[Pair]) -> list[str]:
    """Ids of the evaluation pairs that also appear (by ``pair_key``) among the training pairs."""
    seen = {pair_key(p) for p in train}
    return [p.id for p in evaluate if pair_key(p) in seen]
