"""What pairwise and grading judges share: few-shot examples, conversations as text, self-written
references, generation with retries, and reading verdict probabilities from ``model.choice``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

from referee.errors import RefereeError
from referee.io import read_records
from referee.models.base import Model, Sampling

PREFIX = "[["  # the judge's verdict starts with this; its next token is the verdict
RETRY_TEMPERATURE = 0.7  # a greedy judge would repeat itself; retries sample
VERDICT_MODES = ("probability", "generative")
REFERENCE_MODES = ("none", "given", "self")


def check_choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise RefereeError(f"judge: {name} should be one of {', '.join(allowed)}, got {value!r}")
    return value


class JudgeSettings:
    """What every LLM judge sets up the same way: model, template, verdict and reference modes,
    retries, sampling, and the context fitter (which keeps room for the reply when the judge writes)."""

    def _setup(self, model: Model, template: str, verdict: str, reference: str, cot: bool, max_retries: int,
               seed: int, sampling: Sampling | None, reference_max_tokens: int, max_prompt_chars: int | None) -> None:
        from referee.judges.templates import load_template
        from referee.judges.truncate import Fitter

        self.model = model
        self.template = load_template(template)
        self.verdict = check_choice("verdict", verdict, VERDICT_MODES)
        self.reference = check_choice("reference", reference, REFERENCE_MODES)
        if max_retries < 0:
            raise RefereeError(f"judge: max_retries should be >= 0, got {max_retries}")
        self.cot, self.max_retries, self.seed = bool(cot), max_retries, seed
        if self.reference != "none":
            self.template.require_reference()
        self.sampling = sampling or Sampling(temperature=0.0, max_new_tokens=384 if cot else 48, seed=seed)
        self.reference_max_tokens = reference_max_tokens
        writes = self.verdict == "generative" or self.cot
        self.fitter = Fitter(model, self.sampling.max_new_tokens + 16 if writes else 8, max_prompt_chars)


def chat_text(chat: list[dict]) -> str:
    """A chat as plain text for a judge's prompt: a lone user message as it is, anything longer (a system
    message, earlier turns) with each turn labelled, so the judge sees what the assistant saw."""
    if len(chat) == 1:
        return chat[0]["content"]
    return conversation_text(chat)


def conversation_text(chat: list[dict]) -> str:
    names = {"user": "User", "assistant": "Assistant", "system": "System"}
    return "\n\n".join(f"[{names[m['role']]}]\n{m['content']}" for m in chat)


# ---- few-shot examples -----------------------------------------------------------------------------
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


# ---- model calls ------------------------------------------------------------------------------------
def self_references(model: Model, questions: list[list[dict]], max_new_tokens: int) -> list[str]:
    """The judge's own greedy answer to each question (one call; repeated questions answered once)."""
    unique: dict[str, list[dict]] = {}
    for q in questions:
        unique.setdefault(repr(q), q)
    keys = list(unique)
    outs = model.generate([unique[k] for k in keys], Sampling(temperature=0.0, max_new_tokens=max_new_tokens),
                          desc="judge: own reference answers")
    by_key = {k: o[0].text.strip() for k, o in zip(keys, outs)}
    return [by_key[repr(q)] for q in questions]


@dataclass
class Attempted:
    value: object | None  # the parsed verdict, None if every attempt was unreadable
    raw: str  # the judge's last output
    attempts: int
    why: str | None  # why the last output was unreadable


def generate_parsed(model: Model, chats: list[list[dict]], sampling: Sampling,
                    parse: Callable[[str], tuple[object | None, str | None]], max_retries: int,
                    desc: str) -> list[Attempted]:
    """Generate once per chat, parse, and sample again (new seed) only the unreadable ones."""
    results: list[Attempted | None] = [None] * len(chats)
    todo = list(range(len(chats)))
    for attempt in range(max_retries + 1):
        if not todo:
            break
        s = sampling if attempt == 0 else Sampling(
            temperature=sampling.temperature if sampling.temperature > 0 else RETRY_TEMPERATURE,
            top_p=sampling.top_p, max_new_tokens=sampling.max_new_tokens, stop=sampling.stop,
            seed=sampling.seed + attempt)
        outs = model.generate([chats[i] for i in todo], s, desc=desc if attempt == 0 else f"{desc} (retry {attempt})")
        still = []
        for i, out in zip(todo, outs):
            text = out[0].text
            value, why = parse(text)
            results[i] = Attempted(value, text, attempt + 1, why)
            if value is None:
                still.append(i)
        todo = still
    return results  # type: ignore[return-value]


def choice_rows(model: Model, chats: list[list[dict]], options, prefixes: list[str], desc: str):
    """``model.choice`` with a prefix per chat: one call per distinct prefix (usually just one)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prefixes):
        groups.setdefault(p, []).append(i)
    out = [None] * len(chats)
    for prefix, idx in groups.items():
        for i, r in zip(idx, model.choice([chats[i] for i in idx], options, prefix=prefix, desc=desc)):
            out[i] = r
    return out


def scale_probs(model: Model, chats: list[list[dict]], prefixes: list[str], low: int, high: int,
                desc: str) -> list[tuple[dict[int, float], float]]:
    """P(score) for each whole score in [low, high] after each prefix, and the mass on the first digit.

    One pass reads the first digit. Scores that share a first digit (1 and 10..19) need a second pass
    after that digit, between the closing "]]" and the second digit; both passes read single tokens.
    """
    strings = {str(v): v for v in range(low, high + 1)}
    firsts = sorted({s[0] for s in strings})
    first = choice_rows(model, chats, {c: [c] for c in firsts}, prefixes, desc)
    probs = [{} for _ in chats]
    for c in firsts:
        members = [s for s in strings if s[0] == c]
        if len(members) == 1:
            for r, res in enumerate(first):
                probs[r][strings[members[0]]] = res.probs[c]
            continue
        opts = {s: [s[1:] if len(s) > 1 else "]]"] for s in members}
        second = choice_rows(model, chats, opts, [p + c for p in prefixes], f"{desc} (second digit)")
        for r, (res1, res2) in enumerate(zip(first, second)):
            for s in members:
                probs[r][strings[s]] = res1.probs[c] * res2.probs[s]
    return [(p, res.mass) for p, res in zip(probs, first)]


def cot_prefix(reasoning: str) -> str:
    """Where a reasoning judge's verdict goes: at its own last "[[" if it wrote one, else appended."""
    at = reasoning.rfind(PREFIX)
    if at >= 0:
        return reasoning[:at] + PREFIX
    return reasoning.rstrip() + "\n\nVerdict: " + PREFIX


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


def verdict_prefixes(model: Model, chats: list[list[dict]], sampling: Sampling, cot: bool,
                     desc: str) -> tuple[list[str | None], list[str]]:
    """Where each verdict's probabilities are read: right after "[[", or, for a chain-of-thought judge,
    after its own reasoning. Returns (the reasoning texts or None, the assistant prefixes)."""
    if not cot:
        return [None] * len(chats), [PREFIX] * len(chats)
    raws = [o[0].text for o in model.generate(chats, sampling, desc=desc)]
    return raws, [cot_prefix(r) for r in raws]
