"""Monte-Carlo step labels (as in Math-Shepherd): label a step by whether the policy can still finish
the problem from there.

For each step i of a solution, the prefix "steps 1..i" is handed back to a policy model, which writes
``k`` completions from it. The step's label is the fraction of completions whose final answer is right
(``mode="soft"``, a number in [0, 1]) or whether any is (``mode="hard"``, true/false). The last step
needs no rollouts: its label is whether the solution's own final answer is right. Identical prefixes
(solutions sharing their first steps) are rolled out once.

How the prefix reaches the model. Best is as the start of the assistant's own reply, which the model
then continues (``how="prefill"``); a backend supports that when ``model.continues_final_message`` is
true, or when its ``render`` of a chat ending in an assistant turn ends with that turn's text. Where it
does not, the prefix is shown in the user message with a request to continue it (``how="prompt"``):
weaker, and said so in every record (``rollout``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from referee import progress
from referee.chat import as_chat
from referee.errors import RefereeError
from referee.io import read_records
from referee.models.base import Model, Sampling, continues_final_message
from referee.tasks.math import (Solution, StepwiseRecord, answers_match, extract_answer, gold_answer,
                                split_steps)

MODES = ("soft", "hard")
HOWS = ("auto", "prefill", "prompt")


def _rollout_chat(prompt: list, prefix: str, how: str) -> list:
    if how == "prefill":
        return list(prompt) + [{"role": "assistant", "content": prefix}]
    question = prompt[-1]["content"]
    content = (f"{question}\n\nHere is the beginning of a solution:\n{prefix}\n\n"
               "Continue this solution from where it stops and finish it. Do not repeat the lines above.")
    return list(prompt[:-1]) + [{"role": "user", "content": content}]


def check_settings(k: int, mode: str, how: str) -> None:
    """Refuse rollout settings that cannot work, before any model is loaded or called."""
    if mode not in MODES:
        raise RefereeError(f"mc labels: mode should be one of {', '.join(MODES)}, got {mode!r}")
    if how not in HOWS:
        raise RefereeError(f"mc labels: how should be one of {', '.join(HOWS)}, got {how!r}")
    if k < 1:
        raise RefereeError(f"mc labels: k should be >= 1, got {k}")


def mc_step_labels(policy: Model, solutions: Sequence[Solution], k: int = 8, mode: str = "soft",
                   sampling: Sampling | None = None, how: str = "auto", style: str = "auto") -> list[StepwiseRecord]:
    """Label every step of every solution by rollouts from ``policy`` (see the module doc)."""
    check_settings(k, mode, how)
    if how == "prefill" and not continues_final_message(policy):
        raise RefereeError(f"mc labels: {policy.spec} cannot continue a partial assistant reply; "
                           "use how='prompt' (or 'auto')")
    if how == "auto":
        how = "prefill" if continues_final_message(policy) else "prompt"
        if how == "prompt":
            progress.say(f"mc labels: {policy.spec} cannot continue a partial reply; showing the prefix "
                         "in the user message instead (weaker rollouts)")
    sampling = sampling or Sampling(temperature=0.7, max_new_tokens=256)

    # Every distinct (prompt, prefix) once; the last step of each solution needs no rollout.
    keys: dict[tuple, int] = {}
    chats, prefixes, golds = [], [], []
    for sol in solutions:
        for i in range(len(sol.steps) - 1):
            prefix = "\n".join(sol.steps[:i + 1])
            key = (repr(sol.prompt), prefix)
            if key not in keys:
                keys[key] = len(chats)
                chats.append(_rollout_chat(sol.prompt, prefix, how))
                prefixes.append(prefix)
                golds.append(sol.gold)
    outputs = policy.generate(chats, sampling, n=k, desc="mc rollouts") if chats else []
    reached = []
    for prefix, gold, outs in zip(prefixes, golds, outputs):
        g = gold_answer(gold)
        reached.append(sum(answers_match(extract_answer(prefix + "\n" + o.text, style), g) for o in outs))

    records = []
    for sol in solutions:
        counts = []
        for i in range(len(sol.steps) - 1):
            counts.append(reached[keys[(repr(sol.prompt), "\n".join(sol.steps[:i + 1]))]])
        final_ok = answers_match(extract_answer("\n".join(sol.steps), style), gold_answer(sol.gold))
        labels = [c / k if mode == "soft" else float(c > 0) for c in counts] + [float(final_ok)]
        records.append(StepwiseRecord(sol.prompt[-1]["content"], list(sol.steps), labels,
                                      {"id": sol.id, "answer": sol.gold, "correct": final_ok, "mode": mode,
                                       "k": k, "rollout": how, "reached": counts, **sol.extra}))
    return records


@dataclass
class SolutionFile:
    solutions: list[Solution]
    empty: int = 0  # records whose solution had no steps: skipped


def load_solutions(path: str | os.PathLike) -> SolutionFile:
    """Solutions to label, one per record: ``prompt`` (text or messages); ``completion`` (text, split
    into steps on newlines) or ``completions`` (a list of steps); the gold ``answer``, at the top level
    or under ``meta`` (as ``referee generate`` writes it for prompt files that carry one)."""
    out = SolutionFile([])
    for pos, obj in read_records(path):
        where = f"{path}:{pos}"
        if "prompt" not in obj:
            raise RefereeError(f"{where}: missing field 'prompt'")
        prompt = as_chat(obj["prompt"], f"{where}: field 'prompt'")
        if "completions" in obj:
            steps = obj["completions"]
            if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
                raise RefereeError(f"{where}: field 'completions' should be a list of step strings")
            steps = [s.strip() for s in steps if s.strip()]
        elif "completion" in obj:
            if not isinstance(obj["completion"], str):
                raise RefereeError(f"{where}: field 'completion' should be a string")
            steps = split_steps(obj["completion"])
        else:
            raise RefereeError(f"{where}: missing field 'completion' (text) or 'completions' (steps)")
        gold = obj.get("answer", (obj.get("meta") or {}).get("answer") if isinstance(obj.get("meta"), dict) else None)
        if gold is None:
            raise RefereeError(f"{where}: missing field 'answer' (the gold answer; also read from 'meta.answer')")
        if not isinstance(gold, (str, int, float)) or isinstance(gold, bool):
            raise RefereeError(f"{where}: field 'answer' should be a string or a number")
        if not steps:
            out.empty += 1
            continue
        extra = {k: obj[k] for k in ("sample",) if k in obj}
        out.solutions.append(Solution.from_steps(prompt, steps, str(gold), str(obj.get("id", pos)), extra))
    return out
