"""The judge's prompt: conversations as text, and the template filled and fitted to the context."""

from __future__ import annotations

from referee.judges.fewshot import Example, render_examples


def chat_text(chat: list[dict]) -> str:
    """A chat as plain text for a judge's prompt: a lone user message as it is, anything longer (a system
    message, earlier turns) with each turn labelled, so the judge sees what the assistant saw."""
    if len(chat) == 1:
        return chat[0]["content"]
    return conversation_text(chat)


def conversation_text(chat: list[dict]) -> str:
    names = {"user": "User", "assistant": "Assistant", "system": "System"}
    return "\n\n".join(f"[{names[m['role']]}]\n{m['content']}" for m in chat)


def fill_and_fit(tpl, examples: list[Example], cot: bool, multiturn: bool, fitter, fields: dict,
                 cuttable: list[str], last: list[str]) -> tuple[list[dict], bool]:
    """The judge's chat from its template, fitted to the context by cutting only ``cuttable`` fields
    (``last`` as a last resort); returns (chat, whether anything was cut)."""
    rendered = render_examples(tpl, examples)
    fmt = tpl.fill("format_cot" if cot else "format_direct", {})

    def build(f: dict) -> list[dict]:
        ref_block = tpl.fill("reference", {"reference": f["reference"]}) + "\n" if f["reference"] else ""
        values = {**f, "reference": ref_block, "examples": rendered, "format": fmt}
        chat = [{"role": "system", "content": tpl.fill("system", {})}] if tpl.has("system") else []
        chat.append({"role": "user", "content": tpl.fill("user_multiturn" if multiturn else "user", values)})
        return chat

    chat, cut, _ = fitter.fit(build, fields, cuttable, last)
    return chat, cut
