"""Training data for the trained verifiers: preference pairs, labelled solutions, labelled steps.

Formats (JSONL or a JSON array, plain or .gz):

- preference pairs: TRL ``prompt``/``chosen``/``rejected`` (strings or message lists), TRL's implicit
  prompt (``chosen``/``rejected`` message lists only: the shared turns are the prompt), and the
  HH-RLHF dialogue strings ("\\n\\nHuman: ...\\n\\nAssistant: ..."): all turns before the final
  assistant answer are the prompt (a few HH pairs have different earlier turns on the two sides: then
  each answer is scored after its own turns);
- outcome labels: ``prompt`` + ``completion`` (or ``response``/``solution``) + ``correct`` (or
  ``label``): true/false, 1/0, or a probability;
- step labels (TRL stepwise): ``prompt`` + ``completions`` (a list of steps, or one string split on
  newlines) + ``labels`` (one per step): true/false, 1/0, 1/0/-1 (positive/neutral/negative, as in
  PRM800K) or floats in [0, 1] (soft Monte-Carlo labels); null means "no label": the step stays in
  the context but is not trained on, and is counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from referee.chat import as_chat, parse_dialogue
from referee.errors import RefereeError
from referee.io import read_records
from referee.tasks.math import Solution, split_steps

NEUTRAL_POLICIES = ("positive", "negative", "skip")
LABEL_SCHEMES = ("auto", "binary", "ternary")


@dataclass
class PreferencePair:
    prompt: list  # chat messages
    chosen: str
    rejected: str
    id: str = ""
    rejected_prompt: list | None = None  # set only when the rejected dialogue's earlier turns differ

    @property
    def prompt_of_rejected(self) -> list:
        return self.rejected_prompt if self.rejected_prompt is not None else self.prompt


@dataclass
class StepSolution:
    prompt: list
    steps: list[str]
    labels: list[float | None]  # per-step target in [0, 1]; None: no label (not trained on)
    id: str = ""
    meta: dict = field(default_factory=dict)


# ---- preference pairs ------------------------------------------------------------------------------
def _split_final_answer(messages: list[dict], where: str, field_name: str) -> tuple[list, str]:
    if not messages or messages[-1]["role"] != "assistant":
        raise RefereeError(f"{where}: field '{field_name}' should end with an assistant answer")
    prompt = messages[:-1]
    if not prompt:
        raise RefereeError(f"{where}: field '{field_name}' has no turns before the answer")
    return prompt, messages[-1]["content"]


def _answer_text(value, where: str, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        msgs = as_chat(value, f"{where}: field '{name}'")
        if msgs[-1]["role"] != "assistant":
            raise RefereeError(f"{where}: field '{name}' should end with an assistant message")
        return msgs[-1]["content"]
    raise RefereeError(f"{where}: field '{name}' should be a string or a list of messages")


def load_preferences(path: str | os.PathLike, limit: int | None = None) -> list[PreferencePair]:
    """Preference pairs from a TRL or HH-RLHF file; every error names the file, line and field."""
    pairs = []
    for pos, obj in read_records(path):
        if limit is not None and len(pairs) >= limit:
            break
        where = f"{path}:{pos}"
        for name in ("chosen", "rejected"):
            if name not in obj:
                raise RefereeError(f"{where}: missing field '{name}'")
        chosen, rejected = obj["chosen"], obj["rejected"]
        pid = str(obj.get("id", pos))
        if "prompt" in obj:
            prompt = as_chat(obj["prompt"], f"{where}: field 'prompt'")
            pairs.append(PreferencePair(prompt, _answer_text(chosen, where, "chosen"),
                                        _answer_text(rejected, where, "rejected"), pid))
        elif isinstance(chosen, str) and isinstance(rejected, str):
            pc, ac = _split_final_answer(parse_dialogue(chosen, f"{where}: field 'chosen'"), where, "chosen")
            pr, ar = _split_final_answer(parse_dialogue(rejected, f"{where}: field 'rejected'"), where, "rejected")
            pairs.append(PreferencePair(pc, ac, ar, pid, None if pr == pc else pr))
        elif isinstance(chosen, list) and isinstance(rejected, list):
            pc, ac = _split_final_answer(as_chat(chosen, f"{where}: field 'chosen'"), where, "chosen")
            pr, ar = _split_final_answer(as_chat(rejected, f"{where}: field 'rejected'"), where, "rejected")
            pairs.append(PreferencePair(pc, ac, ar, pid, None if pr == pc else pr))
        else:
            raise RefereeError(f"{where}: fields 'chosen' and 'rejected' should both be strings or both "
                               "message lists")
    if not pairs:
        raise RefereeError(f"{path}: no preference pairs in the file")
    return pairs


# ---- outcome labels --------------------------------------------------------------------------------
def _prompt(obj: dict, where: str) -> list:
    if "prompt" in obj:
        return as_chat(obj["prompt"], f"{where}: field 'prompt'")
    if "question" in obj:
        return as_chat(obj["question"], f"{where}: field 'question'")
    raise RefereeError(f"{where}: missing field 'prompt'")


def _binary(value, where: str, name: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise RefereeError(f"{where}: field '{name}' should be true/false, 1/0 or a probability, got {value!r}")


def load_solutions(path: str | os.PathLike, limit: int | None = None, labelled: bool = True) -> list[Solution]:
    """Whole solutions with a correctness label (ORM data), or without one for scoring."""
    out = []
    for pos, obj in read_records(path):
        if limit is not None and len(out) >= limit:
            break
        where = f"{path}:{pos}"
        prompt = _prompt(obj, where)
        name = next((k for k in ("completion", "response", "solution") if k in obj), None)
        if name is None:
            raise RefereeError(f"{where}: missing field 'completion' (or 'response', 'solution')")
        response = obj[name]
        if isinstance(response, list) and all(isinstance(s, str) for s in response):
            response = "\n".join(response)  # a stepwise completion scored as a whole
        if not isinstance(response, str):
            raise RefereeError(f"{where}: field '{name}' should be a string")
        label = None
        lname = next((k for k in ("correct", "label") if k in obj), None)
        if lname is not None and obj[lname] is not None:
            label = _binary(obj[lname], where, lname)
        elif labelled:
            raise RefereeError(f"{where}: missing field 'correct' (or 'label')")
        out.append(Solution(prompt, response, label, str(obj.get("id", pos))))
    if not out:
        raise RefereeError(f"{path}: no solutions in the file")
    return out


# ---- step labels -----------------------------------------------------------------------------------
@dataclass
class StepLabelStats:
    solutions: int = 0
    steps: int = 0
    unlabelled: int = 0  # null labels: kept as context, not trained on
    neutral: int = 0  # 0 in a ternary file, mapped by the neutral policy
    neutral_skipped: int = 0
    scheme: str = "binary"

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _step_label(value, where: str, ternary: bool, neutral: str, stats: StepLabelStats) -> float | None:
    if value is None:
        stats.unlabelled += 1
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        if ternary:
            if value not in (-1, 0, 1):
                raise RefereeError(f"{where}: ternary step labels should be -1, 0 or 1, got {value!r}")
            if value == 0:
                stats.neutral += 1
                if neutral == "skip":
                    stats.neutral_skipped += 1
                    return None
                return 1.0 if neutral == "positive" else 0.0
            return 1.0 if value == 1 else 0.0
        if 0 <= value <= 1:
            return float(value)
    if isinstance(value, str) and value.lower() in WORD_LABELS:
        if WORD_LABELS[value.lower()] is not None:
            return WORD_LABELS[value.lower()]
        return _step_label(0, where, True, neutral, stats)  # "neutral": as a ternary 0
    raise RefereeError(f"{where}: step label {value!r}: expected true/false, 1/0, 1/0/-1, "
                       f"positive/negative/neutral, a probability or null")


WORD_LABELS = {"true": 1.0, "+": 1.0, "positive": 1.0, "correct": 1.0,
               "false": 0.0, "-": 0.0, "negative": 0.0, "wrong": 0.0, "neutral": None}


def load_steps(path: str | os.PathLike, limit: int | None = None, neutral: str = "positive",
               scheme: str = "auto", labelled: bool = True) -> tuple[list[StepSolution], StepLabelStats]:
    """Stepwise solutions with per-step labels (PRM data), and counts of unlabelled/neutral steps.

    ``scheme="auto"`` reads integer labels as ternary (1 / 0 neutral / -1) when the file has any -1,
    else as binary (1 / 0). ``neutral`` says what a neutral step counts as: positive (the PRM800K
    paper's choice for its best PRM), negative, or skip.
    """
    if neutral not in NEUTRAL_POLICIES:
        raise RefereeError(f"setting neutral={neutral!r}: expected one of {', '.join(NEUTRAL_POLICIES)}")
    if scheme not in LABEL_SCHEMES:
        raise RefereeError(f"setting scheme={scheme!r}: expected one of {', '.join(LABEL_SCHEMES)}")
    raw = []
    for pos, obj in read_records(path):
        if limit is not None and len(raw) >= limit:
            break
        where = f"{path}:{pos}"
        prompt = _prompt(obj, where)
        name = next((k for k in ("completions", "steps", "completion") if k in obj), None)
        if name is None:
            raise RefereeError(f"{where}: missing field 'completions' (a list of steps)")
        steps = obj[name]
        if isinstance(steps, str):
            steps = split_steps(steps, newline_only=True)
        if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
            raise RefereeError(f"{where}: field '{name}' should be a list of step strings")
        labels = obj.get("labels")
        if labels is None:
            if labelled:
                raise RefereeError(f"{where}: missing field 'labels'")
            labels = [None] * len(steps)
        if not isinstance(labels, list):
            raise RefereeError(f"{where}: field 'labels' should be a list (one label per step)")
        if len(labels) != len(steps):
            raise RefereeError(f"{where}: {len(steps)} steps in '{name}' but {len(labels)} labels in 'labels'")
        raw.append((where, prompt, steps, labels, obj, name, pos))
    if not raw:
        raise RefereeError(f"{path}: no stepwise solutions in the file")
    ternary = scheme == "ternary" or (scheme == "auto" and any(
        not isinstance(v, bool) and isinstance(v, (int, float)) and v == -1 for _, _, _, ls, *_ in raw for v in ls))
    stats = StepLabelStats(scheme="ternary" if ternary else "binary")
    out = []
    for where, prompt, steps, labels, obj, name, pos in raw:
        targets = [_step_label(v, f"{where}: field 'labels' item {i}", ternary, neutral, stats)
                   for i, v in enumerate(labels)]
        stats.solutions += 1
        stats.steps += len(steps)
        meta = {k: v for k, v in obj.items() if k not in ("prompt", "question", name, "labels")}
        out.append(StepSolution(prompt, steps, targets, str(obj.get("id", pos)), meta))
    return out, stats
