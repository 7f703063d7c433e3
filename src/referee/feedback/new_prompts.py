"""Self-instruction: the model writes new prompts from few-shot examples of the seed prompts."""

from __future__ import annotations

import random
import re

from referee.models.base import Model, Sampling

INSTRUCTION = ("Here are some tasks that people ask an AI assistant to do:\n\n{examples}\n\n"
               "Write one new task of the same kind that is different from all of the above. "
               "Reply with the task only, on a single line.")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def clean(text: str) -> str | None:
    """The first line of the reply, without a 'Task:' label or quotes; None if unusable."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = re.sub(r"^(new\s+)?task\s*\d*\s*[:.-]\s*", "", line, flags=re.I).strip().strip('"').strip()
    if not 10 <= len(line) <= 300 or len(_norm(line).split()) < 3:
        return None
    return line


def write_prompts(model: Model, seed_prompts: list[str], count: int, seen: set[str], seed: int,
                  shots: int = 4, sampling: Sampling | None = None, tries_per_prompt: int = 3) -> tuple[list[str], dict]:
    """Up to ``count`` new prompts, none equal (after normalising) to a seed or an earlier one.

    Returns the prompts and counts of what was discarded, so a model that writes junk shows up.
    """
    rng = random.Random(seed)
    sampling = sampling or Sampling(temperature=1.0, top_p=0.95, max_new_tokens=64, seed=seed)
    chats = []
    for _ in range(count * tries_per_prompt):
        shown = rng.sample(seed_prompts, min(shots, len(seed_prompts)))
        examples = "\n".join(f"Task: {p}" for p in shown)
        chats.append([{"role": "user", "content": INSTRUCTION.format(examples=examples)}])
    outputs = model.generate(chats, sampling, n=1, desc="write prompts")
    seen_norm = {_norm(s) for s in seen}
    new, stats = [], {"written": len(chats), "unusable": 0, "duplicates": 0}
    for out in outputs:
        prompt = clean(out[0].text)
        if prompt is None:
            stats["unusable"] += 1
            continue
        if _norm(prompt) in seen_norm:
            stats["duplicates"] += 1
            continue
        seen_norm.add(_norm(prompt))
        new.append(prompt)
        if len(new) == count:
            break
    stats["kept"] = len(new)
    return new, stats
