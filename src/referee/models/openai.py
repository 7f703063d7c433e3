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

Features a server may lack, checked on each answer and named with the server when missing (docs/models.md,
"Serving a model for referee", says which servers have them):

- top log-probabilities (``logprobs``/``top_logprobs``), which ``choice`` reads;
- prompt log-probabilities, which ``logprobs`` reads: asked for with ``echo=true`` and ``logprobs=1``
  on ``/completions``, which llama.cpp's Python server answers (with ``--logits_all true``) and vLLM
  turns into its ``prompt_logprobs`` (a request without ``prompt_logprobs`` but with ``echo`` gets
  ``prompt_logprobs=logprobs`` there);
- seeds: not visible in an answer, so a pool asks each server once for two samples with one seed before
  it samples at a temperature above 0 (which server draws a sample is chance in a pool; one that ignores
  seeds would make the records depend on it). ``check_features`` asks for any of the three explicitly.

Which key goes to which server, and which specs are refused for carrying a secret:
``referee.models.openai_spec``. The key is sent as a bearer token and appears nowhere else: not in
``describe()``, the cache, logs or error messages. Retries, the pool and the event loop:
``referee.models.openai_http``; request bodies and the reading of answers: ``referee.models.openai_wire``.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Iterator, Sequence

from referee.errors import RefereeError, UnsupportedError
from referee.models.base import ChoiceResult, Completion, GenRequest, Model, TokenLogprobs
from referee.models.openai_http import HttpClient
# refuse_secrets is imported from here by the CLI and models/__init__.
from referee.models.openai_spec import (INSECURE_ENV, check_url, checked_urls,  # noqa: F401
                                        choose_api_key, flag_option, number_option, refuse_secrets, server_urls)
from referee.models.openai_wire import (AnswerReader, choice_result, echo_body, lacks, next_token_body,
                                        top_logprobs_body)
from referee.models.server_pool import Server, ServerPool
from referee.net import is_loopback  # noqa: F401 - one loopback rule for every caller (tests/test_keys.py)

SEED_MASK = 0x7FFFFFFF  # servers take 32-bit seeds at most (llama.cpp: uint32, with 2^32-1 meaning "random")
PROBE_CHAT = [{"role": "user", "content": "Invent a name for a cat."}]  # open-ended: samples differ by seed
PROBE_TEXT = "The sky is blue."


class OpenAIModel(Model):
    """A model behind one or more OpenAI-compatible HTTP servers, named ``openai:NAME@BASE_URL[,BASE_URL...]``
    or ``openai:NAME@file:PATH``."""

    def __init__(self, name: str, servers: str | Sequence[str], *, spec: str | None = None, cache=None,
                 concurrency: int | str = 8, retries: int | str = 5, timeout: float | str = 120,
                 max_wait: float | str = 30, tokenizer: str | None = None, api_key_env: str | None = None,
                 allow_insecure_key: bool | str | None = None):
        super().__init__(cache=cache)
        # First: a URL holding credentials must not reach any message.
        urls = server_urls(name, servers) if isinstance(servers, str) else checked_urls(name, list(servers))
        self.name = name
        self.urls = urls
        self.url = urls[0]
        self.spec = spec or f"openai:{name}@{','.join(urls)}"
        where = f"model spec {self.spec!r}"
        self.concurrency = number_option(where, "concurrency", concurrency, int, minimum=1)
        self.retries = number_option(where, "retries", retries, int, minimum=0)
        self.timeout = number_option(where, "timeout", timeout, float, minimum=0.001)
        self.max_wait = number_option(where, "max_wait", max_wait, float, minimum=0)
        self.tokenizer_spec = tokenizer or None
        self._tokenizer = None
        self._tokenizer_lock = threading.Lock()
        # From Python code (the caller's own say), else the user's environment; never from a spec.
        insecure = flag_option(where, "allow_insecure_key", allow_insecure_key) if allow_insecure_key is not None \
            else flag_option(where, f"${INSECURE_ENV}", os.environ.get(INSECURE_ENV, ""))
        # (key, the variable it came from) for each server, by the rules for its own host
        self._keys = {url: choose_api_key(where, check_url(name, url), api_key_env, insecure) for url in urls}
        # The server's model name and address are all we know of its weights; a pool serves the model
        # of its first server. A tokenizer renders the prompts of choice and logprobs here, which can
        # change their answers: it is part of the key.
        self.fingerprint = f"openai:{name}@{self.url}" + (f"|tokenizer={tokenizer}" if tokenizer else "")
        self.batch_size = self.concurrency * 4
        self.pool = ServerPool(urls, label=self.spec, max_wait=self.max_wait)
        self._seeds_honoured: set[str] = set()  # servers of a pool whose seeds were checked
        self.http = HttpClient(name, self.pool, self._keys, concurrency=self.concurrency, retries=self.retries,
                               timeout=self.timeout)
        self.answers = AnswerReader(self.http)
        # Counts of HTTP traffic, for tests and for the curious (``HttpClient.stats``).
        self.stats = self.http.stats

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
        for _, result in self.http.stream(jobs):
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
            data, _, endpoint = await self.http.post(client, "/chat/completions", body)
            read = self.answers
            choice = read.first_choice(endpoint, data)
            message = read.expect(endpoint, "choices[0].message", choice.get("message"), dict)
            said = read.expect(endpoint, "choices[0].finish_reason", choice.get("finish_reason"), (str, type(None)))
            text = read.message_text(endpoint, message.get("content"))
            prompt_tokens, completion_tokens = read.usage(endpoint, data)
            if said == "content_filter" or (message.get("content") is None and said != "length"):
                self.http.count("refused")
                reason = "content_filter" if said == "content_filter" else "refused"
            else:
                reason = "length" if said == "length" else "stop"
                cut = [text.index(x) for x in s.stop if x in text]  # servers that leave the stop string in
                if cut:
                    text, reason = text[:min(cut)], "stop"
            return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                              finish_reason=reason)

        return self.http.stream([lambda c, r=r: one(c, r) for r in requests])

    def _logprobs(self, chats, continuations) -> Iterator[tuple[int, TokenLogprobs | RefereeError]]:
        if not self.tokenizer_spec:
            raise UnsupportedError(
                f"{self.spec}: logprobs of given text need the model's tokenizer to render the chat here; "
                f"add ?tokenizer=SPEC to the model spec (e.g. tokenizer=embedded or tokenizer=hf:PATH)")
        prompts = [self._render(c) for c in chats]
        return self.http.stream([lambda c, p=p, t=t: self._score(c, p, t) for p, t in zip(prompts, continuations)])

    def _choice(self, chats, options, prefix) -> Iterator[tuple[int, ChoiceResult | RefereeError]]:
        if self.tokenizer_spec:
            return self._choice_completions(chats, options, prefix)
        if prefix:
            raise UnsupportedError(
                f"{self.spec}: choice after a prefix needs the prompt rendered here, since chat servers "
                f"always start a new assistant turn; add ?tokenizer=SPEC to the model spec "
                f"(e.g. tokenizer=embedded) or pass prefix=''")

        async def one(client, chat) -> ChoiceResult:
            reply = await self.http.post(client, "/chat/completions", top_logprobs_body(self.name, chat))
            return choice_result(options, self.answers.chat_top_logprobs(reply), {},
                                 prompt_tokens=self.answers.usage(reply.endpoint, reply.data)[0])

        return self.http.stream([lambda c, ch=ch: one(c, ch) for ch in chats])

    # ---- feature checks -------------------------------------------------------------------------
    def _check_pool_seeds(self) -> None:
        """Before a pool samples: every server not checked yet must honour seeds. A server that is resting
        or cannot be reached now is left for the next call (meanwhile the pool routes around it)."""
        resting = self.pool.resting()
        servers = [s for s in self.pool.servers if s.url not in self._seeds_honoured and s not in resting]
        if not servers:  # all checked: no event loop, thread or client for nothing
            return
        jobs = [lambda c, s=s: self._probe_seed(c, s, attempts=1) for s in servers]
        for position, result in self.http.stream(jobs):
            if isinstance(result, UnsupportedError):
                raise result
            if not isinstance(result, RefereeError):
                self._seeds_honoured.add(servers[position].url)

    async def _probe_top_logprobs(self, client, server: Server) -> None:
        """The next token's alternatives, on the route choice takes (/completions with a tokenizer)."""
        if self.tokenizer_spec:
            body = next_token_body(self.name, self._render(PROBE_CHAT))
            self.answers.completion_top_logprobs(await self.http.post(client, "/completions", body, server=server))
        else:
            body = top_logprobs_body(self.name, PROBE_CHAT)
            self.answers.chat_top_logprobs(await self.http.post(client, "/chat/completions", body, server=server))

    async def _probe_prompt_logprobs(self, client, server: Server) -> None:
        self.answers.echoed_logprobs(await self.http.post(client, "/completions", echo_body(self.name, PROBE_TEXT),
                                               server=server))

    async def _probe_seed(self, client, server: Server, attempts: int | None = None) -> None:
        """Two samples with one seed at temperature 1 must be the same text."""
        body = {"model": self.name, "messages": PROBE_CHAT, "max_tokens": 12, "temperature": 1.0, "top_p": 1.0,
                "seed": 1234, "n": 1}
        texts = []
        for _ in range(2):
            data, _, endpoint = await self.http.post(client, "/chat/completions", body, server=server,
                                                     attempts=attempts)
            choice = self.answers.first_choice(endpoint, data)
            message = self.answers.expect(endpoint, "choices[0].message", choice.get("message"), dict)
            texts.append(self.answers.message_text(endpoint, message.get("content")))
        if texts[0] != texts[1]:
            raise lacks(server.url, "seed")

    # ---- choice and scoring through /completions -------------------------------------------------
    def _choice_completions(self, chats, options, prefix) -> Iterator[tuple[int, ChoiceResult | RefereeError]]:
        strings = sorted({s for ss in options.values() for s in ss})
        tok = self._get_tokenizer()
        long = [s for s in strings if len(tok(s, add_special_tokens=False)["input_ids"]) != 1]
        prompts = [self._render(c) + prefix for c in chats]

        async def one(client, prompt) -> ChoiceResult:
            reply = await self.http.post(client, "/completions", next_token_body(self.name, prompt))
            top = self.answers.completion_top_logprobs(reply)
            exact = {}
            for s in long:  # several tokens: score the whole string after the prompt
                scored = await self._score(client, prompt, s)
                exact[s] = math.exp(scored.total)
            return choice_result(options, top, exact, skip=set(long),
                                 prompt_tokens=self.answers.usage(reply.endpoint, reply.data)[0])

        return self.http.stream([lambda c, p=p: one(c, p) for p in prompts])

    async def _score(self, client, prompt: str, continuation: str) -> TokenLogprobs:
        """Log-probabilities of ``continuation`` after the rendered ``prompt``, via echo on /completions."""
        if not continuation:
            return TokenLogprobs(total=0.0, tokens=[], logprobs=[])
        tok = self._get_tokenizer()
        full = prompt + continuation
        n_full = len(tok(full, add_special_tokens=False)["input_ids"])
        n_cont = n_full - len(tok(prompt, add_special_tokens=False)["input_ids"])
        reply = await self.http.post(client, "/completions", echo_body(self.name, full))
        endpoint = reply.endpoint
        tokens, values = self.answers.echoed_logprobs(reply)
        served, generated = self.answers.usage(endpoint, reply.data)
        if served and abs(served - n_full) > 1:
            raise RefereeError(
                f"{self.spec}: tokenizer {self.tokenizer_spec!r} does not match the server's model: it makes "
                f"{n_full} tokens of a prompt the server counted as {served}")
        end = len(tokens) - generated
        start = end - max(n_cont, 1)
        picked = values[start:end]
        if start < 0 or any(v is None for v in picked):
            raise UnsupportedError(f"{endpoint}: the server's echoed logprobs do not cover the continuation")
        picked = [self.answers.logprob(endpoint, "logprobs.token_logprobs", v) for v in picked]
        return TokenLogprobs(total=float(sum(picked)), tokens=[str(t) for t in tokens[start:end]], logprobs=picked)

    # ---- reading answers ------------------------------------------------------------------------
    # ---- tokenizer ------------------------------------------------------------------------------
    def _get_tokenizer(self):
        with self._tokenizer_lock:
            if self._tokenizer is None:
                self._tokenizer = load_tokenizer(self.tokenizer_spec, where=f"{self.spec}: tokenizer=")
            return self._tokenizer

    def _render(self, chat: list[dict]) -> str:
        return self._get_tokenizer().apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    def _headers(self, server: str | None = None) -> dict:
        """The headers sent to ``server`` (the first server by default)."""
        return self.http.headers(server or self.url)


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
