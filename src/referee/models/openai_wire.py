"""What the openai backend sends and how it reads what comes back: request bodies, and answers checked
field by field for the JSON type the API promises (a wrong shape is a one-line ``ServerError`` quoting the
server, its key redacted; a missing feature is an ``UnsupportedError`` naming the server and who has it).
"""

from __future__ import annotations

import math

from referee.errors import ServerError, UnsupportedError
from referee.models.base import ChoiceResult
from referee.models.openai_http import HttpClient, Reply

TOP_LOGPROBS = 20  # the most OpenAI's API and vLLM's defaults allow
# A server lacking a feature: what it does not do, what needs it, and which servers do it.
FEATURES = {
    "choice": ("does not return top log-probabilities", "choice",
               "llama.cpp's server, vLLM, SGLang and OpenAI's chat API return them on /chat/completions "
               "(logprobs, top_logprobs=20), which choice uses without tokenizer=; with tokenizer= it reads "
               "logprobs=20 on /completions"),
    "logprobs": ("does not return prompt log-probabilities", "logprobs (and choice among options of several tokens)",
                 "llama.cpp's Python server returns them for echo=true when started with --logits_all true, "
                 "vLLM for echo=true (as prompt_logprobs)"),
    "seed": ("does not honour seeds (two samples with one seed differ)", "sampling from a pool",
             "llama.cpp's server and vLLM honour a request's seed; leave this server out of the pool"),
}


def top_logprobs_body(name: str, chat: list[dict]) -> dict:
    """A chat request for the next token's most likely alternatives and nothing more."""
    return {"model": name, "messages": chat, "max_tokens": 1, "temperature": 0, "seed": 0,
            "logprobs": True, "top_logprobs": TOP_LOGPROBS, "n": 1}


def next_token_body(name: str, prompt: str) -> dict:
    """A /completions request for the next token's most likely alternatives after ``prompt``."""
    return {"model": name, "prompt": prompt, "max_tokens": 1, "temperature": 0, "seed": 0, "logprobs": TOP_LOGPROBS}


def echo_body(name: str, text: str) -> dict:
    """A /completions request for the log-probabilities of ``text`` itself (echoed back with them)."""
    # max_tokens=1: llama.cpp reads 0 as "no limit"; the one generated token is dropped by the reader.
    return {"model": name, "prompt": text, "max_tokens": 1, "temperature": 0, "seed": 0, "echo": True, "logprobs": 1}


def lacks(server: str, feature: str) -> UnsupportedError:
    does_not, needed_by, who = FEATURES[feature]
    return UnsupportedError(f"{server} {does_not}, which {needed_by} needs; {who}")


class AnswerReader:
    """Reads the answers of one model's servers; ``http`` redacts the key from quotes and counts refusals."""

    def __init__(self, http: HttpClient):
        self.http = http

    def first_choice(self, endpoint: str, data: dict) -> dict:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ServerError(f"{endpoint}: the answer has no choices: {self.http.quote(str(data), 200)}")
        return choices[0]

    def refuse_withheld(self, endpoint: str, choice: dict) -> None:
        """A choice or score the server's filter withheld has no probabilities to read: a failed call."""
        if choice.get("finish_reason") == "content_filter":
            self.http.count("refused")
            raise ServerError(f"{endpoint}: the server withheld the answer (finish_reason content_filter)")

    def chat_top_logprobs(self, reply: Reply) -> list[tuple[str, float]]:
        """The next token's top log-probabilities in a chat answer: [(token, logprob)]."""
        endpoint = reply.endpoint
        choice = self.first_choice(endpoint, reply.data)
        self.refuse_withheld(endpoint, choice)
        lp = self.expect(endpoint, "choices[0].logprobs", choice.get("logprobs"), (dict, type(None)))
        content = self.expect(endpoint, "logprobs.content", (lp or {}).get("content"), (list, type(None)))
        if content is None:
            raise lacks(reply.server, "choice")
        if not content:
            return []  # the model ended its turn at once: no token, nothing on the options
        first = self.expect(endpoint, "logprobs.content[0]", content[0], dict)
        entries = self.expect(endpoint, "logprobs.content[0].top_logprobs", first.get("top_logprobs") or [], list)
        top = []
        for entry in entries:
            entry = self.expect(endpoint, "a top_logprobs entry", entry, dict)
            if entry.get("logprob") is not None:
                top.append((str(entry.get("token", "")), self.logprob(endpoint, "top_logprobs", entry["logprob"])))
        if not top:
            raise lacks(reply.server, "choice")
        return top

    def completion_top_logprobs(self, reply: Reply) -> list[tuple[str, float]]:
        """The next token's top log-probabilities in a /completions answer: [(token, logprob)]."""
        endpoint = reply.endpoint
        choice = self.first_choice(endpoint, reply.data)
        self.refuse_withheld(endpoint, choice)
        lp = self.expect(endpoint, "choices[0].logprobs", choice.get("logprobs"), (dict, type(None)))
        if lp is None or lp.get("top_logprobs") is None:
            raise lacks(reply.server, "choice")
        tops = self.expect(endpoint, "logprobs.top_logprobs", lp["top_logprobs"], list)
        first = self.expect(endpoint, "logprobs.top_logprobs[0]", tops[0] if tops else None, (dict, type(None)))
        # No token at all: the model ended at once, and puts nothing on the options.
        return [(str(t), self.logprob(endpoint, "logprobs.top_logprobs[0]", v)) for t, v in (first or {}).items()]

    def echoed_logprobs(self, reply: Reply) -> tuple[list, list]:
        """(tokens, log-probabilities) of an echoed prompt and what followed it, from a /completions answer."""
        endpoint = reply.endpoint
        choice = self.first_choice(endpoint, reply.data)
        lp = self.expect(endpoint, "choices[0].logprobs", choice.get("logprobs"), (dict, type(None)))
        if not lp or not lp.get("tokens") or lp.get("token_logprobs") is None:
            raise lacks(reply.server, "logprobs")
        tokens = self.expect(endpoint, "logprobs.tokens", lp["tokens"], list)
        values = self.expect(endpoint, "logprobs.token_logprobs", lp["token_logprobs"], list)
        if len(tokens) != len(values):
            raise ServerError(f"{endpoint}: logprobs.tokens and logprobs.token_logprobs differ in length "
                              f"({len(tokens)} and {len(values)})")
        return tokens, values

    def message_text(self, endpoint: str, content) -> str:
        """The assistant's text: a string, or the text parts of a list of content parts (some servers)."""
        if content is None or isinstance(content, str):
            return content or ""
        parts = self.expect(endpoint, "choices[0].message.content", content, list)
        texts = [p.get("text", "") for p in parts if isinstance(p, dict)]
        return "".join(self.expect(endpoint, "a content part's text", t, str) for t in texts)

    def usage(self, endpoint: str, data: dict) -> tuple[int, int]:
        """(prompt_tokens, completion_tokens) as the server counted them; 0 where it does not say."""
        usage = self.expect(endpoint, "usage", data.get("usage") or {}, dict)
        counts = []
        for key in ("prompt_tokens", "completion_tokens"):
            value = usage.get(key)
            if value is None:
                value = 0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or value != int(value):
                raise self.malformed(endpoint, f"usage.{key}", value, "a count of tokens")
            counts.append(int(value))
        return counts[0], counts[1]

    def logprob(self, endpoint: str, what: str, value) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise self.malformed(endpoint, what, value, "a log-probability")
        return float(value)

    def expect(self, endpoint: str, what: str, value, kind: type | tuple[type, ...]):
        """``value`` when it has the JSON type the API promises, else a one-line ServerError."""
        if isinstance(value, kind):
            return value
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = {dict: "an object", list: "a list", str: "a string", type(None): "absent"}
        raise self.malformed(endpoint, what, value, " or ".join(names[k] for k in kinds))

    def malformed(self, endpoint: str, what: str, value, expected: str) -> ServerError:
        return ServerError(f"{endpoint}: malformed answer: {what} is {self.http.quote(repr(value), 80)}, "
                           f"not {expected}")


def _token_matches(token: str, string: str) -> bool:
    return token == string or token.lstrip() == string


def choice_result(options: dict[str, list[str]], top: list[tuple[str, float]], exact: dict[str, float],
                  skip: set[str] = frozenset(), prompt_tokens: int = 0) -> ChoiceResult:
    """Sum the probability of the top tokens that spell each option (or its exact score, if given)."""
    raw = {}
    for name, strings in options.items():
        hit = {i for i, (token, _) in enumerate(top) for s in strings if s not in skip and _token_matches(token, s)}
        raw[name] = sum(math.exp(top[i][1]) for i in hit) + sum(exact.get(s, 0.0) for s in set(strings))
    mass = sum(raw.values())
    probs = {k: (v / mass if mass > 0 else 1.0 / len(raw)) for k, v in raw.items()}
    return ChoiceResult(probs=probs, mass=mass, prompt_tokens=prompt_tokens)
