"""Fitting a judge prompt into the model's context by cutting the answers' middles.

The instructions and the verdict format are never cut: a judge that loses its format instructions
writes unreadable verdicts. What gets shorter is the long free text (answers, conversations, the
reference), from the middle, where a marker says how much was cut; the question is cut only if that is
still not enough. Sizes are counted in tokens with the model's own tokenizer and chat template where
the backend has them (hf), and in characters otherwise.
"""

from __future__ import annotations

from typing import Callable

from referee.errors import RefereeError

CHARS_PER_TOKEN = 3  # a cautious guess for a character budget from a token context length
DEFAULT_CHAR_BUDGET = 32_000
MIN_KEEP = 24  # never cut a field below this many units, unless the question must be cut too


class Fitter:
    """Measures chats against a budget and cuts named fields from the middle until they fit."""

    def __init__(self, model, reserve_tokens: int, max_prompt_chars: int | None = None,
                 max_prompt_tokens: int | None = None):
        """``max_prompt_tokens`` caps the prompt below the context (a judge trained on prompts of that size
        is shown the same; short prompts are also cheaper on a CPU)."""
        self.tokenizer = getattr(model, "tokenizer", None)
        self.render = getattr(model, "render", None)
        context = getattr(model, "context_length", None)
        if max_prompt_chars is not None:
            self.tokenizer, self.unit = None, "characters"
            self.budget = max_prompt_chars
        elif self.tokenizer is not None and context:
            self.unit = "tokens"
            self.budget = int(context) - reserve_tokens
        else:
            self.tokenizer, self.unit = None, "characters"
            self.budget = (int(context) - reserve_tokens) * CHARS_PER_TOKEN if context else DEFAULT_CHAR_BUDGET
        if max_prompt_tokens is not None and max_prompt_chars is None:
            cap = max_prompt_tokens if self.unit == "tokens" else max_prompt_tokens * CHARS_PER_TOKEN
            self.budget = min(self.budget, cap)
        if self.budget <= 0:
            raise RefereeError(f"judge: the model's context ({context}) leaves no room for a prompt after "
                               f"reserving {reserve_tokens} tokens for the verdict; lower max_new_tokens")

    # ---- measuring ---------------------------------------------------------------------------------
    def size(self, text: str) -> int:
        if self.tokenizer is None:
            return len(text)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat_size(self, chat: list[dict]) -> int:
        if self.tokenizer is not None and self.render is not None:
            return self.size(self.render(chat))
        return sum(self.size(m["content"]) + 4 for m in chat)

    def cut_middle(self, text: str, keep: int) -> str:
        """Keep about ``keep`` units: the start and the end, with a marker in between."""
        if self.tokenizer is None:
            n = len(text)
            if n <= keep:
                return text
            head = keep // 2
            return f"{text[:head]}\n[... {n - keep} characters cut ...]\n{text[n - (keep - head):]}"
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= keep:
            return text
        head = keep // 2
        start = self.tokenizer.decode(ids[:head])
        end = self.tokenizer.decode(ids[len(ids) - (keep - head):])
        return f"{start}\n[... {len(ids) - keep} tokens cut ...]\n{end}"

    # ---- fitting ------------------------------------------------------------------------------------
    def fit(self, build: Callable[[dict[str, str]], list[dict]], fields: dict[str, str],
            cuttable: list[str], last_resort: list[str] = ()) -> tuple[list[dict], bool, dict[str, str]]:
        """Build the chat from ``fields``; if too long, shorten ``cuttable`` fields (then ``last_resort``).

        Returns (chat, truncated, the fields as used).
        """
        chat = build(fields)
        used = self.chat_size(chat)
        if used <= self.budget:
            return chat, False, fields
        fields = dict(fields)
        for names in (list(cuttable), list(cuttable) + list(last_resort)):
            for attempt in range(4):
                overflow = used - self.budget
                sizes = {n: self.size(fields[n]) for n in names if fields.get(n)}
                margin = 16 * (attempt + 1) + 12 * len(sizes)  # the cut markers cost a few units too
                targets = _shrink(sizes, overflow + margin, MIN_KEEP if names == list(cuttable) else 8)
                if not targets:
                    break
                for n, keep in targets.items():
                    fields[n] = self.cut_middle(fields[n], keep)
                chat = build(fields)
                used = self.chat_size(chat)
                if used <= self.budget:
                    return chat, True, fields
        raise RefereeError(f"judge: the prompt needs {used} {self.unit} even with the answers cut to a few "
                           f"{self.unit}; the budget is {self.budget}. Use a model with a longer context or a "
                           f"shorter template")


def _shrink(sizes: dict[str, int], remove: int, floor: int) -> dict[str, int] | None:
    """New sizes removing ``remove`` units, taken from the longest fields first (water-filling)."""
    if not sizes or sum(max(0, s - floor) for s in sizes.values()) <= 0:
        return None
    total = sum(sizes.values())
    goal = max(total - remove, floor * len(sizes))
    # find the level L so that sum(min(s, L)) == goal
    lo, hi = 0, max(sizes.values())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(s, mid) for s in sizes.values()) <= goal:
            lo = mid
        else:
            hi = mid - 1
    level = max(lo, floor)
    return {n: level for n, s in sizes.items() if s > level}
