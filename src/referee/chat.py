"""Chats (lists of role/content messages), prompt files in TRL's plain or conversational format, and
HH-RLHF dialogue strings."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from referee.errors import RefereeError
from referee.io import read_records

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}
Chat = list  # list[Message]

ROLES = ("system", "user", "assistant")


def as_chat(prompt: str | list, where: str = "prompt") -> Chat:
    """A plain string becomes one user message; a message list is checked and copied."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise RefereeError(f"{where}: expected a string or a non-empty list of messages")
    chat = []
    for i, m in enumerate(prompt):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise RefereeError(f"{where}: message {i} needs 'role' and 'content'")
        if m["role"] not in ROLES:
            raise RefereeError(f"{where}: message {i} has role {m['role']!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise RefereeError(f"{where}: message {i} 'content' should be a string")
        chat.append({"role": m["role"], "content": m["content"]})
    return chat


@dataclass
class PromptRecord:
    """One prompt from a file, with the rest of its fields kept for the output records."""

    chat: Chat
    id: str
    extra: dict = field(default_factory=dict)


def load_prompts(path: str | os.PathLike) -> list[PromptRecord]:
    """Read prompts from JSONL (or a JSON array): a ``prompt`` field (string or messages), ``messages``,
    or MT-Bench's ``turns`` (the first turn).

    A ``messages`` list that ends with an assistant turn is cut before it, so SFT-style files work as
    prompts too. Each error names the file, the line and the field.
    """
    records = []
    for pos, obj in read_records(path):
        where = f"{path}:{pos}"
        if "prompt" in obj:
            chat = as_chat(obj["prompt"], f"{where}: field 'prompt'")
        elif "messages" in obj:
            chat = as_chat(obj["messages"], f"{where}: field 'messages'")
            while chat and chat[-1]["role"] == "assistant":
                chat.pop()
            if not chat:
                raise RefereeError(f"{where}: field 'messages' has no user turn")
        elif "turns" in obj:  # MT-Bench questions: the first turn is the prompt
            turns = obj["turns"]
            if not isinstance(turns, list) or not turns or not isinstance(turns[0], str):
                raise RefereeError(f"{where}: field 'turns' should be a non-empty list of strings")
            chat = [{"role": "user", "content": turns[0]}]
        else:
            raise RefereeError(f"{where}: missing field 'prompt' (a string or a list of messages) or 'messages'")
        if not any(m["content"].strip() for m in chat if m["role"] == "user"):
            raise RefereeError(f"{where}: the prompt is empty")
        rid = str(obj.get("id", obj.get("question_id", pos)))
        extra = {k: v for k, v in obj.items() if k not in ("prompt", "messages")}
        records.append(PromptRecord(chat=chat, id=rid, extra=extra))
    if not records:
        raise RefereeError(f"{path}: no prompts in the file")
    return records


HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def parse_dialogue(text: str, where: str) -> list[dict]:
    """An HH-RLHF dialogue string as chat messages ("Human" -> user, "Assistant" -> assistant)."""
    parts = HH_TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    if len(parts) < 3:
        raise RefereeError(f"{where}: no '\\n\\nHuman:' / '\\n\\nAssistant:' turns found")
    messages = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    return messages
