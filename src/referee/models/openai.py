"""The openai backend: any OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, Ollama, hosted APIs).

Each sample is its own request (``n=1``, the sample's own seed), so the response cache stays per sample
exactly as with the hf backend. Requests of one batch go out together under a concurrency limit, and each
answer is handed back (and cached) the moment it arrives.

Several servers of the same model (a pool), named in the spec after the ``@``:

- ``openai:NAME@http://10.0.0.1:8000/v1,http://10.0.0.2:8000/v1?concurrency=16``: base URLs joined by commas;
- ``openai:NAME@file:servers.txt?concurrency=16``: a file with one base URL a line (blank lines and
  ``#`` comments skipped; a relative path is read from the working folder).

Each request goes to the server with the fewest requests in flight; ``concurrency`` is for the whole pool.
A server that fails (refused connection, timeout, 5xx) is taken out for a back-off and its requests go to
the others at once (``referee.models.server_pool``). The pool is one model: its fingerprint, so its cache
rows, are those of its first server, whichever server answered; list the server of an earlier one-server
run first to reuse that run's cache.

Failures, request by request:

- Retried with exponential backoff and jitter (in a pool: on another server, at once): 408, 409, 429 and
  5xx, timeouts, refused or dropped connections, and bodies that arrive cut off, garbled or as JSON that
  is not an object. ``retries`` counts every attempt after the first, whichever server it went to.
- Failed at once: any other 4xx (with the server's own message), a redirect, and answers whose shape
  is wrong (no choices, a list where an object belongs, a count or log-probability that is not a number).
- A request that fails for good does not take its batch-mates with it: they are cached, and the call
  raises afterwards, naming how many failed and the first server message (see ``Model._cached_map``).
- A completion withheld by the server (``finish_reason: content_filter``, or no content at all) comes
  back with that reason (``"content_filter"`` or ``"refused"``) and is not cached.

What goes over which endpoint:

- ``generate``: ``/chat/completions``; the server applies its chat template.
- ``choice`` without ``tokenizer=``: ``/chat/completions`` with ``max_tokens=1`` and ``top_logprobs=20``.
  A returned token counts for an option string when it equals the string, or equals it after its own
  leading whitespace is stripped (``" A"`` counts for ``"A"``); options missing from the top 20 get 0.
  A ``prefix`` cannot be continued this way (chat servers always open a fresh assistant turn).
- ``choice`` with ``tokenizer=``, and ``logprobs``: ``/completions`` on a prompt rendered here with that
  tokenizer's chat template. ``choice`` reads the next token's ``logprobs=20`` there (the prefix is
  appended to the prompt) and scores option strings longer than one token exactly, with ``echo=true``;
  ``logprobs`` echoes prompt + continuation and reads the continuation's token log-probabilities.

Features a server may lack, checked on each answer and named with the server when missing (the README's
"Serving a model for referee" says which servers have them):

- top log-probabilities (``logprobs``/``top_logprobs``), which ``choice`` reads;
- prompt log-probabilities, which ``logprobs`` reads: asked for with ``echo=true`` and ``logprobs=1``
  on ``/completions``, which llama.cpp's Python server answers (with ``--logits_all true``) and vLLM
  turns into its ``prompt_logprobs`` (a request without ``prompt_logprobs`` but with ``echo`` gets
  ``prompt_logprobs=logprobs`` there);
- seeds: not visible in an answer, so a pool asks each server once for two samples with one seed before
  it samples at a temperature above 0 (which server draws a sample is chance in a pool; one that ignores
  seeds would make the records depend on it). ``check_features`` asks for any of the three explicitly.

Which key goes where (a shared config must not be able to send your key to someone else's server, so
what a spec may ask for is bounded by what the user's own environment allows):

- ``api_key_env=VAR`` in the spec: the value of ``$VAR``, to the servers the spec names, but only for a
  variable the user allowed: a name ``REFEREE_..._KEY`` (``REFEREE_VLLM_KEY``; not referee's settings such
  as ``REFEREE_HOME`` or ``REFEREE_LABEL_TOKEN``), or one listed in ``$REFEREE_KEY_ENVS`` (comma-separated).
  ``OPENAI_API_KEY`` is allowed without being listed only for ``https://api.openai.com``.
- else ``REFEREE_API_KEY``: referee's own variable, to the servers any spec names.
- else ``OPENAI_API_KEY``: only to ``https://api.openai.com``; other servers get no key.
- No key at all goes over plain http to a host other than loopback (``referee.net.is_loopback``: 127.0.0.0/8,
  ::1 and ``localhost`` itself), unless the user's environment says ``REFEREE_ALLOW_INSECURE_KEY=1``; a
  spec cannot say so (the option ``allow_insecure_key`` is refused).
- Credentials in the spec itself (``user:pw@host``; an option named like a key, token, secret, password
  or auth, or whose value looks like a key, after any ``?``, ``&``, ``;`` or ``#``) are refused without being
  quoted (``referee.models.credentials``), as they would end up in the cache, ledger, manifest and config;
  unknown options are named, their values never quoted.
- In a pool, the rules are applied to each server's host on its own: ``OPENAI_API_KEY`` goes only to
  the pool's servers at api.openai.com, and a pool with one server that a key may not reach over plain
  http is refused as a whole, naming that host.

The key is sent as a bearer token and appears nowhere else: not in ``describe()``, the cache, logs or
error messages (a server that quotes it back is redacted before anything is cut short).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, NamedTuple, Sequence
from urllib.parse import urlsplit

import httpx

from referee.errors import RefereeError, ServerError, UnsupportedError
from referee.models import OPENAI_OPTIONS
from referee.models.base import ChoiceResult, Completion, GenRequest, Model, TokenLogprobs
from referee.models.credentials import refuse_credentials, shown, split_options
from referee.models.server_pool import Outcome, Server, ServerPool
from referee.net import is_loopback

TOP_LOGPROBS = 20  # the most OpenAI's API and vLLM's defaults allow
SEED_MASK = 0x7FFFFFFF  # servers take 32-bit seeds at most (llama.cpp: uint32, with 2^32-1 meaning "random")
RETRY_STATUSES = {408, 409, 429} | set(range(500, 600))
OPENAI_HOST = "api.openai.com"  # the one host OPENAI_API_KEY is sent to unless the user allows it elsewhere
KEY_ENVS = "REFEREE_KEY_ENVS"  # the user's list of further variables a spec's api_key_env may name
INSECURE_ENV = "REFEREE_ALLOW_INSECURE_KEY"  # the user's leave to send a key over plain http
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
QUOTE_LIMIT = 300  # characters of a server's own words kept in an error message
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
PROBE_CHAT = [{"role": "user", "content": "Invent a name for a cat."}]  # open-ended: samples differ by seed
PROBE_TEXT = "The sky is blue."


class Reply(NamedTuple):
    """A usable answer and where it came from."""

    data: dict
    server: str  # the server's base URL
    endpoint: str


class OpenAIModel(Model):
    """A model behind one or more OpenAI-compatible HTTP servers, named ``openai:NAME@BASE_URL[,BASE_URL...]``
    or ``openai:NAME@file:PATH``."""

    def __init__(self, name: str, servers: str | Sequence[str], *, spec: str | None = None, cache=None,
                 concurrency: int | str = 8, retries: int | str = 5, timeout: float | str = 120,
                 max_wait: float | str = 30, tokenizer: str | None = None, api_key_env: str | None = None,
                 allow_insecure_key: bool | str | None = None):
        super().__init__(cache=cache)
        # First: a URL holding credentials must not reach any message.
        urls = server_urls(name, servers) if isinstance(servers, str) else _checked_urls(name, list(servers))
        self.name = name
        self.urls = urls
        self.url = urls[0]
        self.spec = spec or f"openai:{name}@{','.join(urls)}"
        where = f"model spec {self.spec!r}"
        self.concurrency = _number(where, "concurrency", concurrency, int, minimum=1)
        self.retries = _number(where, "retries", retries, int, minimum=0)
        self.timeout = _number(where, "timeout", timeout, float, minimum=0.001)
        self.max_wait = _number(where, "max_wait", max_wait, float, minimum=0)
        self.tokenizer_spec = tokenizer or None
        self._tokenizer = None
        self._tokenizer_lock = threading.Lock()
        # From Python code (the caller's own say), else the user's environment; never from a spec.
        insecure = _flag(where, "allow_insecure_key", allow_insecure_key) if allow_insecure_key is not None \
            else _flag(where, f"${INSECURE_ENV}", os.environ.get(INSECURE_ENV, ""))
        # (key, the variable it came from) for each server, by the rules for its own host
        self._keys = {url: _choose_api_key(where, _check_url(name, url), api_key_env, insecure) for url in urls}
        # The server's model name and address are all we know of its weights; a pool serves the model
        # of its first server. A tokenizer renders the prompts of choice and logprobs here, which can
        # change their answers: it is part of the key.
        self.fingerprint = f"openai:{name}@{self.url}" + (f"|tokenizer={tokenizer}" if tokenizer else "")
        self.batch_size = self.concurrency * 4
        self.pool = ServerPool(urls, label=self.spec, max_wait=self.max_wait)
        self._seeds_honoured: set[str] = set()  # servers of a pool whose seeds were checked
        # Counts of HTTP traffic, for tests and for the curious: requests sent, retries, 2xx answers,
        # calls that failed for good, and completions the server withheld.
        self.stats = {"requests": 0, "retries": 0, "ok": 0, "failed": 0, "refused": 0}
        self._stats_lock = threading.Lock()

    def describe(self) -> dict:
        sources = {url: f"from ${source}" if key else "none" for url, (key, source) in self._keys.items()}
        described = {**super().describe(), "name": self.name, "url": self.url}
        if len(self.urls) > 1:
            described["servers"] = self.urls
        return {**described, "concurrency": self.concurrency, "retries": self.retries, "timeout": self.timeout,
                "max_wait": self.max_wait, "tokenizer": self.tokenizer_spec,
                "api_key": sources[self.url] if len(set(sources.values())) == 1 else sources}

    def check_features(self, *features: str) -> None:
        """Ask every server for each feature ("choice", "logprobs", "seed") with a small request; raise
        UnsupportedError naming the first server found lacking one (any other failure as it comes)."""
        probes = {"choice": self._probe_top_logprobs, "logprobs": self._probe_prompt_logprobs,
                  "seed": self._probe_seed}
        unknown = set(features) - set(probes)
        if unknown:
            raise RefereeError(f"check_features: unknown feature(s) {', '.join(sorted(unknown))}; "
                               f"known: {', '.join(probes)}")
        jobs = [lambda c, s=s, probe=probes[f]: probe(c, s) for s in self.pool.servers for f in features]
        for _, result in self._stream(jobs):
            if isinstance(result, RefereeError):
                raise result

    # ---- hooks -----------------------------------------------------------------------------------
    def _generate(self, requests: list[GenRequest]) -> Iterator[tuple[int, Completion | RefereeError]]:
        if len(self.urls) > 1 and any(r.sampling.temperature > 0 for r in requests):
            self._check_pool_seeds()

        async def one(client, req: GenRequest) -> Completion:
            s = req.sampling
            body = {"model": self.name, "messages": req.chat, "max_tokens": s.max_new_tokens,
                    "temperature": s.temperature, "top_p": s.top_p, "seed": req.seed & SEED_MASK, "n": 1}
            if s.stop:
                body["stop"] = list(s.stop)
            data, _, endpoint = await self._post(client, "/chat/completions", body)
            choice = self._first_choice(endpoint, data)
            message = self._expect(endpoint, "choices[0].message", choice.get("message"), dict)
            said = self._expect(endpoint, "choices[0].finish_reason", choice.get("finish_reason"), (str, type(None)))
            text = self._message_text(endpoint, message.get("content"))
            prompt_tokens, completion_tokens = self._usage(endpoint, data)
            if said == "content_filter" or (message.get("content") is None and said != "length"):
                self._count("refused")
                reason = "content_filter" if said == "content_filter" else "refused"
            else:
                reason = "length" if said == "length" else "stop"
                cut = [text.index(x) for x in s.stop if x in text]  # servers that leave the stop string in
                if cut:
                    text, reason = text[:min(cut)], "stop"
            return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                              finish_reason=reason)

        return self._stream([lambda c, r=r: one(c, r) for r in requests])

    def _logprobs(self, chats, continuations) -> Iterator[tuple[int, TokenLogprobs | RefereeError]]:
        if not self.tokenizer_spec:
            raise UnsupportedError(
                f"{self.spec}: logprobs of given text need the model's tokenizer to render the chat here; "
                f"add ?tokenizer=SPEC to the model spec (e.g. tokenizer=embedded or tokenizer=hf:PATH)")
        prompts = [self._render(c) for c in chats]
        return self._stream([lambda c, p=p, t=t: self._score(c, p, t) for p, t in zip(prompts, continuations)])

    def _choice(self, chats, options, prefix) -> Iterator[tuple[int, ChoiceResult | RefereeError]]:
        if self.tokenizer_spec:
            return self._choice_completions(chats, options, prefix)
        if prefix:
            raise UnsupportedError(
                f"{self.spec}: choice after a prefix needs the prompt rendered here, since chat servers "
                f"always start a new assistant turn; add ?tokenizer=SPEC to the model spec "
                f"(e.g. tokenizer=embedded) or pass prefix=''")

        async def one(client, chat) -> ChoiceResult:
            reply = await self._post(client, "/chat/completions", _top_logprobs_body(self.name, chat))
            return _choice_result(options, self._chat_top_logprobs(reply), {},
                                  prompt_tokens=self._usage(reply.endpoint, reply.data)[0])

        return self._stream([lambda c, ch=ch: one(c, ch) for ch in chats])

    # ---- feature checks -------------------------------------------------------------------------
    def _check_pool_seeds(self) -> None:
        """Before a pool samples: every server not checked yet must honour seeds. A server that is resting
        or cannot be reached now is left for the next call (meanwhile the pool routes around it)."""
        resting = self.pool.resting()
        servers = [s for s in self.pool.servers if s.url not in self._seeds_honoured and s not in resting]
        if not servers:  # all checked: no event loop, thread or client for nothing
            return
        jobs = [lambda c, s=s: self._probe_seed(c, s, attempts=1) for s in servers]
        for position, result in self._stream(jobs):
            if isinstance(result, UnsupportedError):
                raise result
            if not isinstance(result, RefereeError):
                self._seeds_honoured.add(servers[position].url)

    async def _probe_top_logprobs(self, client, server: Server) -> None:
        """The next token's alternatives, on the route choice takes (/completions with a tokenizer)."""
        if self.tokenizer_spec:
            body = _next_token_body(self.name, self._render(PROBE_CHAT))
            self._completion_top_logprobs(await self._post(client, "/completions", body, server=server))
        else:
            body = _top_logprobs_body(self.name, PROBE_CHAT)
            self._chat_top_logprobs(await self._post(client, "/chat/completions", body, server=server))

    async def _probe_prompt_logprobs(self, client, server: Server) -> None:
        self._echoed_logprobs(await self._post(client, "/completions", _echo_body(self.name, PROBE_TEXT),
                                               server=server))

    async def _probe_seed(self, client, server: Server, attempts: int | None = None) -> None:
        """Two samples with one seed at temperature 1 must be the same text."""
        body = {"model": self.name, "messages": PROBE_CHAT, "max_tokens": 12, "temperature": 1.0, "top_p": 1.0,
                "seed": 1234, "n": 1}
        texts = []
        for _ in range(2):
            data, _, endpoint = await self._post(client, "/chat/completions", body, server=server, attempts=attempts)
            message = self._expect(endpoint, "choices[0].message", self._first_choice(endpoint, data).get("message"),
                                   dict)
            texts.append(self._message_text(endpoint, message.get("content")))
        if texts[0] != texts[1]:
            raise _lacks(server.url, "seed")

    # ---- choice and scoring through /completions -------------------------------------------------
    def _choice_completions(self, chats, options, prefix) -> Iterator[tuple[int, ChoiceResult | RefereeError]]:
        strings = sorted({s for ss in options.values() for s in ss})
        tok = self._get_tokenizer()
        long = [s for s in strings if len(tok(s, add_special_tokens=False)["input_ids"]) != 1]
        prompts = [self._render(c) + prefix for c in chats]

        async def one(client, prompt) -> ChoiceResult:
            reply = await self._post(client, "/completions", _next_token_body(self.name, prompt))
            top = self._completion_top_logprobs(reply)
            exact = {}
            for s in long:  # several tokens: score the whole string after the prompt
                scored = await self._score(client, prompt, s)
                exact[s] = math.exp(scored.total)
            return _choice_result(options, top, exact, skip=set(long),
                                  prompt_tokens=self._usage(reply.endpoint, reply.data)[0])

        return self._stream([lambda c, p=p: one(c, p) for p in prompts])

    async def _score(self, client, prompt: str, continuation: str) -> TokenLogprobs:
        """Log-probabilities of ``continuation`` after the rendered ``prompt``, via echo on /completions."""
        if not continuation:
            return TokenLogprobs(total=0.0, tokens=[], logprobs=[])
        tok = self._get_tokenizer()
        full = prompt + continuation
        n_full = len(tok(full, add_special_tokens=False)["input_ids"])
        n_cont = n_full - len(tok(prompt, add_special_tokens=False)["input_ids"])
        reply = await self._post(client, "/completions", _echo_body(self.name, full))
        endpoint = reply.endpoint
        tokens, values = self._echoed_logprobs(reply)
        served, generated = self._usage(endpoint, reply.data)
        if served and abs(served - n_full) > 1:
            raise RefereeError(
                f"{self.spec}: tokenizer {self.tokenizer_spec!r} does not match the server's model: it makes "
                f"{n_full} tokens of a prompt the server counted as {served}")
        end = len(tokens) - generated
        start = end - max(n_cont, 1)
        picked = values[start:end]
        if start < 0 or any(v is None for v in picked):
            raise UnsupportedError(f"{endpoint}: the server's echoed logprobs do not cover the continuation")
        picked = [self._logprob(endpoint, "logprobs.token_logprobs", v) for v in picked]
        return TokenLogprobs(total=float(sum(picked)), tokens=[str(t) for t in tokens[start:end]], logprobs=picked)

    # ---- reading answers ------------------------------------------------------------------------
    def _first_choice(self, endpoint: str, data: dict) -> dict:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ServerError(f"{endpoint}: the answer has no choices: {self._quote(str(data), 200)}")
        return choices[0]

    def _refuse_withheld(self, endpoint: str, choice: dict) -> None:
        """A choice or score the server's filter withheld has no probabilities to read: a failed call."""
        if choice.get("finish_reason") == "content_filter":
            self._count("refused")
            raise ServerError(f"{endpoint}: the server withheld the answer (finish_reason content_filter)")

    def _chat_top_logprobs(self, reply: Reply) -> list[tuple[str, float]]:
        """The next token's top log-probabilities in a chat answer: [(token, logprob)]."""
        endpoint = reply.endpoint
        choice = self._first_choice(endpoint, reply.data)
        self._refuse_withheld(endpoint, choice)
        lp = self._expect(endpoint, "choices[0].logprobs", choice.get("logprobs"), (dict, type(None)))
        content = self._expect(endpoint, "logprobs.content", (lp or {}).get("content"), (list, type(None)))
        if content is None:
            raise _lacks(reply.server, "choice")
        if not content:
            return []  # the model ended its turn at once: no token, nothing on the options
        first = self._expect(endpoint, "logprobs.content[0]", content[0], dict)
        entries = self._expect(endpoint, "logprobs.content[0].top_logprobs", first.get("top_logprobs") or [], list)
        top = []
        for entry in entries:
            entry = self._expect(endpoint, "a top_logprobs entry", entry, dict)
            if entry.get("logprob") is not None:
                top.append((str(entry.get("token", "")), self._logprob(endpoint, "top_logprobs", entry["logprob"])))
        if not top:
            raise _lacks(reply.server, "choice")
        return top

    def _completion_top_logprobs(self, reply: Reply) -> list[tuple[str, float]]:
        """The next token's top log-probabilities in a /completions answer: [(token, logprob)]."""
        endpoint = reply.endpoint
        choice = self._first_choice(endpoint, reply.data)
        self._refuse_withheld(endpoint, choice)
        lp = self._expect(endpoint, "choices[0].logprobs", choice.get("logprobs"), (dict, type(None)))
        if lp is None or lp.get("top_logprobs") is None:
            raise _lacks(reply.server, "choice")
        tops = self._expect(endpoint, "logprobs.top_logprobs", lp["top_logprobs"], list)
        first = self._expect(endpoint, "logprobs.top_logprobs[0]", tops[0] if tops else None, (dict, type(None)))
        # No token at all: the model ended at once, and puts nothing on the options.
        return [(str(t), self._logprob(endpoint, "logprobs.top_logprobs[0]", v)) for t, v in (first or {}).items()]

    def _echoed_logprobs(self, reply: Reply) -> tuple[list, list]:
        """(tokens, log-probabilities) of an echoed prompt and what followed it, from a /completions answer."""
        endpoint = reply.endpoint
        choice = self._first_choice(endpoint, reply.data)
        lp = self._expect(endpoint, "choices[0].logprobs", choice.get("logprobs"), (dict, type(None)))
        if not lp or not lp.get("tokens") or lp.get("token_logprobs") is None:
            raise _lacks(reply.server, "logprobs")
        tokens = self._expect(endpoint, "logprobs.tokens", lp["tokens"], list)
        values = self._expect(endpoint, "logprobs.token_logprobs", lp["token_logprobs"], list)
        if len(tokens) != len(values):
            raise ServerError(f"{endpoint}: logprobs.tokens and logprobs.token_logprobs differ in length "
                              f"({len(tokens)} and {len(values)})")
        return tokens, values

    def _message_text(self, endpoint: str, content) -> str:
        """The assistant's text: a string, or the text parts of a list of content parts (some servers)."""
        if content is None or isinstance(content, str):
            return content or ""
        parts = self._expect(endpoint, "choices[0].message.content", content, list)
        texts = [p.get("text", "") for p in parts if isinstance(p, dict)]
        return "".join(self._expect(endpoint, "a content part's text", t, str) for t in texts)

    def _usage(self, endpoint: str, data: dict) -> tuple[int, int]:
        """(prompt_tokens, completion_tokens) as the server counted them; 0 where it does not say."""
        usage = self._expect(endpoint, "usage", data.get("usage") or {}, dict)
        counts = []
        for key in ("prompt_tokens", "completion_tokens"):
            value = usage.get(key)
            if value is None:
                value = 0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or value != int(value):
                raise self._malformed(endpoint, f"usage.{key}", value, "a count of tokens")
            counts.append(int(value))
        return counts[0], counts[1]

    def _logprob(self, endpoint: str, what: str, value) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise self._malformed(endpoint, what, value, "a log-probability")
        return float(value)

    def _expect(self, endpoint: str, what: str, value, kind: type | tuple[type, ...]):
        """``value`` when it has the JSON type the API promises, else a one-line ServerError."""
        if isinstance(value, kind):
            return value
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = {dict: "an object", list: "a list", str: "a string", type(None): "absent"}
        raise self._malformed(endpoint, what, value, " or ".join(names[k] for k in kinds))

    def _malformed(self, endpoint: str, what: str, value, expected: str) -> ServerError:
        return ServerError(f"{endpoint}: malformed answer: {what} is {self._quote(repr(value), 80)}, "
                           f"not {expected}")

    # ---- tokenizer ------------------------------------------------------------------------------
    def _get_tokenizer(self):
        with self._tokenizer_lock:
            if self._tokenizer is None:
                self._tokenizer = load_tokenizer(self.tokenizer_spec, where=f"{self.spec}: tokenizer=")
            return self._tokenizer

    def _render(self, chat: list[dict]) -> str:
        return self._get_tokenizer().apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    # ---- HTTP -----------------------------------------------------------------------------------
    def _headers(self, server: str | None = None) -> dict:
        """The headers for ``server`` (the first server by default), with its own key if it has one."""
        key = self._keys[server or self.url][0]
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    async def _post(self, client: httpx.AsyncClient, path: str, body: dict, server: Server | None = None,
                    attempts: int | None = None) -> Reply:
        """POST to the pool's next server (or to ``server`` only), with retries on overload, lost
        connections and garbled answers, on another server where one takes requests; other failures at once."""
        attempts = attempts or self.retries + 1
        problem = endpoint = ""
        for attempt in range(attempts):
            chosen = await self.pool.acquire(only=server)
            if attempt:
                self._count("retries")
            self._count("requests")
            endpoint = chosen.url + path
            outcome, wait, started = Outcome.CANCELLED, None, time.perf_counter()
            try:
                data, problem, wait = await self._attempt(client, chosen.url, endpoint, body)
                outcome = Outcome.FAILED if data is None else Outcome.ANSWERED
            except ServerError:
                outcome = Outcome.REJECTED
                raise
            finally:
                self.pool.release(chosen, outcome, time.perf_counter() - started, retry_after=wait)
            if data is not None:
                self._count("ok")
                return Reply(data, chosen.url, endpoint)
        raise ServerError(f"{endpoint}: {problem}; gave up after {attempts} attempt{'s' if attempts > 1 else ''}")

    async def _attempt(self, client: httpx.AsyncClient, server: str, endpoint: str,
                       body: dict) -> tuple[dict | None, str, float | None]:
        """One POST: as ``_read`` says, with a lost or slow connection as a problem worth retrying."""
        try:
            r = await client.post(endpoint, json=body, headers=self._headers(server))
        except httpx.TimeoutException as e:
            return None, f"timed out after {self.timeout:g} s ({type(e).__name__})", None
        except httpx.ConnectError as e:
            return None, f"cannot connect ({self._quote(str(e)) or type(e).__name__})", None
        except httpx.DecodingError as e:
            why = self._quote(str(e)) or type(e).__name__
            return None, f"answered with a body that cannot be decoded ({why})", None
        except (httpx.RemoteProtocolError, httpx.NetworkError) as e:
            return None, f"connection dropped ({self._quote(str(e)) or type(e).__name__})", None
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise ServerError(f"{endpoint}: {type(e).__name__}: {self._quote(str(e))}") from None
        return self._read(server, endpoint, r)

    def _read(self, server: str, endpoint: str, r: httpx.Response) -> tuple[dict | None, str, float | None]:
        """(answer, "", None) for a usable answer, else (None, the problem, seconds the server asked to
        wait) for one worth retrying; raises for an answer that a retry would not change."""
        status = r.status_code
        if 200 <= status < 300:
            try:
                data = r.json()
            except ValueError:
                return None, f"answered {status} with a body that is not JSON: {self._quote(r.text, 200)!r}", None
            if not isinstance(data, dict):
                return None, f"answered {status} with JSON that is not an object: {self._quote(r.text, 200)!r}", None
            return data, "", None
        if status < 400:
            raise ServerError(f"{endpoint}: HTTP {status}: redirected to "
                              f"{self._quote(r.headers.get('location', '?'), 200)}; give that URL in the model spec")
        message = self._quote(_error_message(r))
        if status not in RETRY_STATUSES:
            raise ServerError(f"{endpoint}: HTTP {status}: {message}{self._unsent_key_hint(server, status)}")
        return None, f"HTTP {status}: {message}", _retry_after(r)

    def _unsent_key_hint(self, server: str, status: int) -> str:
        if status in (401, 403) and not self._keys[server][0] and os.environ.get("OPENAI_API_KEY"):
            return (f" ($OPENAI_API_KEY is sent only to https://{OPENAI_HOST}; to send it to this server, add "
                    f"OPENAI_API_KEY to ${KEY_ENVS} in your environment and api_key_env=OPENAI_API_KEY to the "
                    f"model spec)")
        return ""

    def _quote(self, text: str, limit: int = QUOTE_LIMIT) -> str:
        """A server's words for an error message: the key redacted first (so no part of it survives the
        cut), on one line, at most ``limit`` characters."""
        for key, _ in self._keys.values():
            if key:
                text = text.replace(key, "***")
        text = " ".join(text.split())
        return text if len(text) <= limit else text[:limit - 3] + "..."

    def _stream(self, jobs: list[Callable[[httpx.AsyncClient], Awaitable[Any]]]) -> Iterator[tuple[int, Any]]:
        """Run one coroutine per job under the concurrency limit and yield (position, result) as each ends.

        The requests run on an event loop of their own in a worker thread (so this works from inside a
        running loop too), and this generator hands each result over as it arrives. A job that fails with
        a RefereeError yields that error and its batch-mates go on; any other exception stops them all
        and is raised here. Leaving the generator early cancels what is still in flight.
        """
        arrivals: queue.SimpleQueue = queue.SimpleQueue()
        loop = asyncio.new_event_loop()
        task = loop.create_task(self._run_jobs(jobs, arrivals))
        worker = threading.Thread(target=_run_until_done, args=(loop, task, arrivals), daemon=True,
                                  name=f"referee-{self.name}")
        worker.start()
        try:
            for _ in jobs:
                item = arrivals.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if worker.is_alive():
                with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                    loop.call_soon_threadsafe(task.cancel)
            worker.join()

    async def _run_jobs(self, jobs, arrivals: queue.SimpleQueue) -> None:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0))
        sem = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            async def one(position, job):
                async with sem:
                    try:
                        result = await job(client)
                    except RefereeError as e:
                        self._count("failed")
                        result = e
                arrivals.put((position, result))

            tasks = [asyncio.ensure_future(one(k, job)) for k, job in enumerate(jobs)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


# ---- helpers ------------------------------------------------------------------------------------
def _top_logprobs_body(name: str, chat: list[dict]) -> dict:
    """A chat request for the next token's most likely alternatives and nothing more."""
    return {"model": name, "messages": chat, "max_tokens": 1, "temperature": 0, "seed": 0,
            "logprobs": True, "top_logprobs": TOP_LOGPROBS, "n": 1}


def _next_token_body(name: str, prompt: str) -> dict:
    """A /completions request for the next token's most likely alternatives after ``prompt``."""
    return {"model": name, "prompt": prompt, "max_tokens": 1, "temperature": 0, "seed": 0, "logprobs": TOP_LOGPROBS}


def _echo_body(name: str, text: str) -> dict:
    """A /completions request for the log-probabilities of ``text`` itself (echoed back with them)."""
    # max_tokens=1: llama.cpp reads 0 as "no limit"; the one generated token is dropped by the reader.
    return {"model": name, "prompt": text, "max_tokens": 1, "temperature": 0, "seed": 0, "echo": True, "logprobs": 1}


def _lacks(server: str, feature: str) -> UnsupportedError:
    does_not, needed_by, who = FEATURES[feature]
    return UnsupportedError(f"{server} {does_not}, which {needed_by} needs; {who}")


def _run_until_done(loop: asyncio.AbstractEventLoop, task: asyncio.Task, arrivals: queue.SimpleQueue) -> None:
    """The worker thread of ``_stream``: run the requests; an unexpected error goes to the consumer."""
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    except BaseException as e:  # noqa: BLE001 - handed to the consumer thread, which raises it
        arrivals.put(e)
    finally:
        loop.close()


def load_tokenizer(spec: str, where: str = "tokenizer"):
    """Only the tokenizer of a model spec (``embedded``, ``hf:PATH``) or of a local folder."""
    from transformers import AutoTokenizer

    from referee.models import parse_spec

    if Path(spec).is_dir():
        folder = spec
    else:
        kind, target, _ = parse_spec(spec)
        if kind == "openai":
            raise RefereeError(f"{where}{spec}: give a tokenizer that can be loaded here (embedded, hf:PATH)")
        if kind == "embedded":
            from referee.models.embedded import ensure_converted

            folder = str(ensure_converted()[0])
        else:
            folder = target
    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise RefereeError(f"{where}{spec}: cannot load the tokenizer ({str(e).splitlines()[0]})") from None
    if not tok.chat_template:
        raise UnsupportedError(f"{where}{spec}: this tokenizer has no chat template to render chats with")
    return tok


def refuse_secrets(spec: str) -> None:
    """Refuse, without quoting it, an openai spec that carries a secret (a key among its options, wherever
    it hides, or credentials in its URL), and any spec whose options are malformed or unknown (named, their
    values not quoted). The CLI calls this before a run folder is written: the spec goes to the cache,
    ledger, manifest and config.yaml."""
    spec = spec.strip()
    options = refuse_credentials(spec, OPENAI_OPTIONS | {"allow_insecure_key"})  # the latter refused below
    base, _, malformed = split_options(spec)
    if malformed:
        raise RefereeError("an openai model spec takes its options after one '?', joined by '&' (no second '?', "
                           "';' or '#'): openai:MODEL@URL?concurrency=8&timeout=60")
    names = {name for name, _ in options}
    if "allow_insecure_key" in names:
        raise RefereeError(f"a model spec cannot allow a key over plain http (allow_insecure_key), since a shared "
                           f"config could: set {INSECURE_ENV}=1 in your own environment instead")
    unknown = names - OPENAI_OPTIONS
    if unknown:
        raise RefereeError(f"an openai model spec: unknown option(s) {', '.join(sorted(map(shown, unknown)))}; "
                           f"accepted: {', '.join(sorted(OPENAI_OPTIONS))}")
    name, _, servers = base.partition(":")[2].partition("@")
    server_urls(name, servers)


def server_urls(name: str, servers: str) -> list[str]:
    """The base URLs the server part of a spec names: one URL, several joined by commas, or ``file:PATH``
    (one a line; blank lines and ``#`` comments skipped). Each is checked as ``_check_url`` does."""
    if servers.startswith("file:"):
        return _checked_urls(name, _read_server_list(name, Path(servers[len("file:"):]).expanduser()))
    return _checked_urls(name, servers.split(","))


def _read_server_list(name: str, path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or "not UTF-8 text"
        raise RefereeError(f"openai model {name!r}: cannot read the server list {path} ({why})") from None
    urls = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    urls = [url for url in urls if url]
    if not urls:
        raise RefereeError(f"openai model {name!r}: the server list {path} names no server")
    return urls


def _checked_urls(name: str, urls: list[str]) -> list[str]:
    """The URLs, each checked, without a trailing slash; a server named twice is refused (it would take a
    double share of the requests by mistake)."""
    for url in urls:
        _check_url(name, url)
    cleaned = [url.strip().rstrip("/") for url in urls]
    twice = sorted({url for url in cleaned if cleaned.count(url) > 1})
    if twice:
        raise RefereeError(f"openai model {name!r}: the server list names {twice[0]} twice")
    return cleaned


def _check_url(name: str, url: str) -> tuple[str, str]:
    """(scheme, host) of a server URL; refuses credentials in it without quoting them, and bad ports."""
    where = f"openai model {name!r}"
    parts = urlsplit(url.strip())
    if "@" in parts.netloc or parts.query or "#" in url:
        raise RefereeError(f"{where}: the server URL holds credentials, a query or a fragment (user:password@host, "
                           f"?..., #...), "
                           f"which would be written to the cache, ledger and manifest; put a key in an "
                           f"environment variable and name that with ?api_key_env=VAR after the URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = repr(url) if "://" in url else f"an entry of {len(url.strip())} characters (not shown: it may be a key)"
        raise RefereeError(f"{where}: expected a URL like http(s)://HOST:PORT/v1, got {shown}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise RefereeError(f"{where}: the port of {url!r} should be a number from 1 to 65535")
    return parts.scheme, parts.hostname


def _choose_api_key(where: str, address: tuple[str, str], api_key_env: str | None,
                    allow_insecure_key: bool) -> tuple[str | None, str | None]:
    """(key, variable it came from) for this server, by the rules in the module's docstring."""
    scheme, host = address
    if api_key_env:
        _check_key_env(where, api_key_env, address)
        value = os.environ.get(api_key_env)
        if not value:
            raise RefereeError(f"{where}: api_key_env names ${api_key_env}, which is not set")
        key, source = value, api_key_env
    elif os.environ.get("REFEREE_API_KEY"):
        key, source = os.environ["REFEREE_API_KEY"], "REFEREE_API_KEY"
    elif os.environ.get("OPENAI_API_KEY") and scheme == "https" and host == OPENAI_HOST:
        key, source = os.environ["OPENAI_API_KEY"], "OPENAI_API_KEY"
    else:
        return None, None
    key = key.strip()  # a key pasted with its newline
    if not key or not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise RefereeError(f"{where}: ${source} holds spaces or control characters, which no key has")
    if scheme == "http" and not is_loopback(host) and not allow_insecure_key:
        raise RefereeError(f"{where}: will not send ${source} over plain http to {host}, where anyone on the "
                           f"way can read it; use https, or set {INSECURE_ENV}=1 in your environment if you "
                           f"trust the network"
                           + (", or unset $REFEREE_API_KEY" if source == "REFEREE_API_KEY" else ""))
    return key, source


def _check_key_env(where: str, var: str, address: tuple[str, str]) -> None:
    """Refuse an ``api_key_env`` the user did not allow: otherwise a shared config could name any variable
    of theirs (a cloud secret, a token) and have it sent to its own server."""
    if not ENV_NAME.fullmatch(var):
        raise RefereeError(f"{where}: api_key_env should name an environment variable (letters, digits, _)")
    listed = {name.strip() for name in os.environ.get(KEY_ENVS, "").split(",")}
    if var in listed or (var.startswith("REFEREE_") and var.endswith("_KEY") and var != INSECURE_ENV):
        return
    if var == "OPENAI_API_KEY":
        if address == ("https", OPENAI_HOST):
            return
        raise RefereeError(f"{where}: api_key_env names $OPENAI_API_KEY, which goes only to https://{OPENAI_HOST}; "
                           f"to send it to this server, add OPENAI_API_KEY to ${KEY_ENVS} in your own environment")
    raise RefereeError(f"{where}: api_key_env names ${var}, which is not allowed for keys: a spec may name a "
                       f"variable REFEREE_..._KEY, or one listed in ${KEY_ENVS} (comma-separated) in your own "
                       f"environment; else a shared config could send any of your variables to its server")


def _number(where: str, key: str, value, kind, minimum):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise RefereeError(f"{where}: option {key} should be {'an integer' if kind is int else 'a number'}, "
                           f"got {value!r}") from None
    if number < minimum:
        raise RefereeError(f"{where}: option {key} should be >= {minimum}, got {value!r}")
    return number


def _flag(where: str, key: str, value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes"):
        return True
    if str(value).lower() in ("0", "false", "no", ""):
        return False
    raise RefereeError(f"{where}: option {key} should be 1 or 0, got {value!r}")


def _error_message(r: httpx.Response) -> str:
    """The server's own words about a failed request, from the usual JSON shapes or the raw body (whole:
    the caller redacts the key before it cuts the message short)."""
    try:
        data = r.json()
    except ValueError:
        return r.text.strip() or r.reason_phrase or "no message"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message") or err
        if err:
            return str(err)
    return str(data)


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("retry-after")
    try:
        wait = float(value) if value is not None else None
    except ValueError:
        return None
    return max(0.0, wait) if wait is not None and math.isfinite(wait) else None


def _token_matches(token: str, string: str) -> bool:
    return token == string or token.lstrip() == string


def _choice_result(options: dict[str, list[str]], top: list[tuple[str, float]], exact: dict[str, float],
                   skip: set[str] = frozenset(), prompt_tokens: int = 0) -> ChoiceResult:
    """Sum the probability of the top tokens that spell each option (or its exact score, if given)."""
    raw = {}
    for name, strings in options.items():
        hit = {i for i, (token, _) in enumerate(top) for s in strings if s not in skip and _token_matches(token, s)}
        raw[name] = sum(math.exp(top[i][1]) for i in hit) + sum(exact.get(s, 0.0) for s in set(strings))
    mass = sum(raw.values())
    probs = {k: (v / mass if mass > 0 else 1.0 / len(raw)) for k, v in raw.items()}
    return ChoiceResult(probs=probs, mass=mass, prompt_tokens=prompt_tokens)
