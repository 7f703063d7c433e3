"""The openai backend: any OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, Ollama, hosted APIs).

Each sample is its own request (``n=1``, the sample's own seed), so the response cache stays per sample
exactly as with the hf backend. Requests of one batch go out together under a concurrency limit.
Overloaded or unreachable servers (429, 5xx, timeouts, refused or dropped connections) are retried with
exponential backoff and jitter; any other 4xx fails at once with the server's own message.

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

The API key comes from the variable named by ``api_key_env``, else ``REFEREE_API_KEY``, else
``OPENAI_API_KEY``. It is sent as a bearer token and appears nowhere else: not in ``describe()``, the
cache, logs or error messages (servers that quote it back are redacted).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import random
import threading
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx

from referee.errors import RefereeError, ServerError, UnsupportedError
from referee.models.base import ChoiceResult, Completion, GenRequest, Model, TokenLogprobs

TOP_LOGPROBS = 20  # the most OpenAI's API and vLLM's defaults allow
SEED_MASK = 0x7FFFFFFF  # servers take 32-bit seeds at most (llama.cpp: uint32, with 2^32-1 meaning "random")
RETRY_STATUSES = {408, 409, 429} | set(range(500, 600))
BACKOFF_BASE = 0.5  # seconds before the first retry; doubles each time, capped by max_wait


class OpenAIModel(Model):
    """A model behind an OpenAI-compatible HTTP API, named ``openai:NAME@BASE_URL``."""

    def __init__(self, name: str, url: str, *, spec: str | None = None, cache=None,
                 concurrency: int | str = 8, retries: int | str = 5, timeout: float | str = 120,
                 max_wait: float | str = 30, tokenizer: str | None = None, api_key_env: str | None = None):
        super().__init__(cache=cache)
        self.name = name
        self.url = url.rstrip("/")
        self.spec = spec or f"openai:{name}@{self.url}"
        where = f"model spec {self.spec!r}"
        self.concurrency = _number(where, "concurrency", concurrency, int, minimum=1)
        self.retries = _number(where, "retries", retries, int, minimum=0)
        self.timeout = _number(where, "timeout", timeout, float, minimum=0.001)
        self.max_wait = _number(where, "max_wait", max_wait, float, minimum=0)
        self.tokenizer_spec = tokenizer or None
        self._tokenizer = None
        self._tokenizer_lock = threading.Lock()
        self._api_key, self._api_key_source = _find_api_key(where, api_key_env)
        # The server's model name and address are all we know of its weights. A tokenizer renders the
        # prompts of choice and logprobs here, which can change their answers: it is part of the key.
        self.fingerprint = f"openai:{name}@{self.url}" + (f"|tokenizer={tokenizer}" if tokenizer else "")
        self.batch_size = self.concurrency * 4
        # Counts of HTTP traffic, for tests and for the curious: requests sent, retries, answers.
        self.stats = {"requests": 0, "retries": 0, "ok": 0}
        self._stats_lock = threading.Lock()

    def describe(self) -> dict:
        return {**super().describe(), "name": self.name, "url": self.url, "concurrency": self.concurrency,
                "retries": self.retries, "timeout": self.timeout, "max_wait": self.max_wait,
                "tokenizer": self.tokenizer_spec,
                "api_key": f"from ${self._api_key_source}" if self._api_key else "none"}

    # ---- hooks -----------------------------------------------------------------------------------
    def _generate(self, requests: list[GenRequest]) -> list[Completion]:
        async def one(client, req: GenRequest) -> Completion:
            s = req.sampling
            body = {"model": self.name, "messages": req.chat, "max_tokens": s.max_new_tokens,
                    "temperature": s.temperature, "top_p": s.top_p, "seed": req.seed & SEED_MASK, "n": 1}
            if s.stop:
                body["stop"] = list(s.stop)
            data = await self._post(client, "/chat/completions", body)
            choice = self._first_choice("/chat/completions", data)
            text = _message_text(choice.get("message"))
            reason = "length" if choice.get("finish_reason") == "length" else "stop"
            cut = [text.index(x) for x in s.stop if x in text]  # servers that leave the stop string in
            if cut:
                text, reason = text[:min(cut)], "stop"
            usage = data.get("usage") or {}
            return Completion(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                              completion_tokens=int(usage.get("completion_tokens") or 0), finish_reason=reason)

        return self._run_all([lambda c, r=r: one(c, r) for r in requests])

    def _logprobs(self, chats, continuations) -> list[TokenLogprobs]:
        if not self.tokenizer_spec:
            raise UnsupportedError(
                f"{self.spec}: logprobs of given text need the model's tokenizer to render the chat here; "
                f"add ?tokenizer=SPEC to the model spec (e.g. tokenizer=embedded or tokenizer=hf:PATH)")
        prompts = [self._render(c) for c in chats]
        return self._run_all([lambda c, p=p, t=t: self._score(c, p, t) for p, t in zip(prompts, continuations)])

    def _choice(self, chats, options, prefix) -> list[ChoiceResult]:
        if self.tokenizer_spec:
            return self._choice_completions(chats, options, prefix)
        if prefix:
            raise UnsupportedError(
                f"{self.spec}: choice after a prefix needs the prompt rendered here, since chat servers "
                f"always start a new assistant turn; add ?tokenizer=SPEC to the model spec "
                f"(e.g. tokenizer=embedded) or pass prefix=''")

        async def one(client, chat) -> ChoiceResult:
            body = {"model": self.name, "messages": chat, "max_tokens": 1, "temperature": 0, "seed": 0,
                    "logprobs": True, "top_logprobs": TOP_LOGPROBS, "n": 1}
            data = await self._post(client, "/chat/completions", body)
            choice = self._first_choice("/chat/completions", data)
            return _choice_result(options, self._chat_top_logprobs(self._endpoint("/chat/completions"), choice), {},
                                  prompt_tokens=_prompt_tokens(data))

        return self._run_all([lambda c, ch=ch: one(c, ch) for ch in chats])

    # ---- choice and scoring through /completions -------------------------------------------------
    def _choice_completions(self, chats, options, prefix) -> list[ChoiceResult]:
        strings = sorted({s for ss in options.values() for s in ss})
        tok = self._get_tokenizer()
        long = [s for s in strings if len(tok(s, add_special_tokens=False)["input_ids"]) != 1]
        prompts = [self._render(c) + prefix for c in chats]

        async def one(client, prompt) -> ChoiceResult:
            endpoint = self._endpoint("/completions")
            body = {"model": self.name, "prompt": prompt, "max_tokens": 1, "temperature": 0, "seed": 0,
                    "logprobs": TOP_LOGPROBS}
            data = await self._post(client, "/completions", body)
            choice = self._first_choice("/completions", data)
            lp = choice.get("logprobs")
            if not isinstance(lp, dict) or lp.get("top_logprobs") is None:
                raise UnsupportedError(f"{endpoint} returned no logprobs for model {self.name!r}; "
                                       f"choice needs a server that returns top logprobs")
            tops = lp["top_logprobs"]
            top = list((tops[0] or {}).items()) if tops else []  # no token: the model ended at once
            exact = {}
            for s in long:  # several tokens: score the whole string after the prompt
                scored = await self._score(client, prompt, s)
                exact[s] = math.exp(scored.total)
            return _choice_result(options, top, exact, skip=set(long), prompt_tokens=_prompt_tokens(data))

        return self._run_all([lambda c, p=p: one(c, p) for p in prompts])

    async def _score(self, client, prompt: str, continuation: str) -> TokenLogprobs:
        """Log-probabilities of ``continuation`` after the rendered ``prompt``, via echo on /completions."""
        if not continuation:
            return TokenLogprobs(total=0.0, tokens=[], logprobs=[])
        tok = self._get_tokenizer()
        full = prompt + continuation
        n_full = len(tok(full, add_special_tokens=False)["input_ids"])
        n_cont = n_full - len(tok(prompt, add_special_tokens=False)["input_ids"])
        endpoint = self._endpoint("/completions")
        # max_tokens=1: llama.cpp reads 0 as "no limit"; the one generated token is dropped below.
        body = {"model": self.name, "prompt": full, "max_tokens": 1, "temperature": 0, "seed": 0,
                "echo": True, "logprobs": 1}
        data = await self._post(client, "/completions", body)
        choice = self._first_choice("/completions", data)
        lp = choice.get("logprobs")
        if not isinstance(lp, dict) or not lp.get("tokens") or lp.get("token_logprobs") is None:
            raise UnsupportedError(
                f"{endpoint} returned no prompt logprobs for model {self.name!r} (echo=true); this server "
                f"cannot score given text (llama.cpp's server needs --logits_all true)")
        usage = data.get("usage") or {}
        served = usage.get("prompt_tokens")
        if isinstance(served, int) and abs(served - n_full) > 1:
            raise RefereeError(
                f"{self.spec}: tokenizer {self.tokenizer_spec!r} does not match the server's model: it makes "
                f"{n_full} tokens of a prompt the server counted as {served}")
        generated = int(usage.get("completion_tokens") or 0)
        tokens, values = list(lp["tokens"]), list(lp["token_logprobs"])
        end = len(tokens) - generated
        start = end - max(n_cont, 1)
        picked = values[start:end]
        if start < 0 or any(v is None for v in picked):
            raise UnsupportedError(f"{endpoint}: the server's echoed logprobs do not cover the continuation")
        return TokenLogprobs(total=float(sum(picked)), tokens=[str(t) for t in tokens[start:end]],
                             logprobs=[float(v) for v in picked])

    def _chat_top_logprobs(self, endpoint: str, choice: dict) -> list[tuple[str, float]]:
        lp = choice.get("logprobs")
        content = lp.get("content") if isinstance(lp, dict) else None
        if content is None:
            raise UnsupportedError(f"{endpoint} returned no logprobs for model {self.name!r}; choice needs a "
                                   f"server that supports logprobs/top_logprobs (llama.cpp's server, vLLM, "
                                   f"SGLang, OpenAI)")
        if not content:
            return []  # the model ended its turn at once: no token, nothing on the options
        first = content[0]
        top = [(str(t.get("token", "")), float(t["logprob"])) for t in first.get("top_logprobs") or []
               if t.get("logprob") is not None]
        if not top:
            raise UnsupportedError(f"{endpoint} ignored top_logprobs for model {self.name!r}; choice needs "
                                   f"the {TOP_LOGPROBS} most likely next tokens")
        return top

    # ---- tokenizer ------------------------------------------------------------------------------
    def _get_tokenizer(self):
        with self._tokenizer_lock:
            if self._tokenizer is None:
                self._tokenizer = load_tokenizer(self.tokenizer_spec, where=f"{self.spec}: tokenizer=")
            return self._tokenizer

    def _render(self, chat: list[dict]) -> str:
        return self._get_tokenizer().apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    # ---- HTTP -----------------------------------------------------------------------------------
    def _endpoint(self, path: str) -> str:
        return self.url + path

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    async def _post(self, client: httpx.AsyncClient, path: str, body: dict) -> dict:
        """POST with retries on overload and lost connections; other 4xx fail at once."""
        endpoint = self._endpoint(path)
        attempts = self.retries + 1
        problem = ""
        for attempt in range(attempts):
            if attempt:
                self._count("retries")
            self._count("requests")
            wait = None
            try:
                r = await client.post(endpoint, json=body, headers=self._headers())
            except httpx.TimeoutException as e:
                problem = f"timed out after {self.timeout:g} s ({type(e).__name__})"
            except httpx.ConnectError as e:
                problem = f"cannot connect ({self._redact(str(e)) or type(e).__name__})"
            except (httpx.RemoteProtocolError, httpx.NetworkError) as e:
                problem = f"connection dropped ({self._redact(str(e)) or type(e).__name__})"
            else:
                if r.status_code < 400:
                    try:
                        data = r.json()
                    except ValueError:
                        raise ServerError(f"{endpoint}: answered {r.status_code} with a body that is not JSON: "
                                          f"{self._redact(r.text[:200])!r}") from None
                    if not isinstance(data, dict):
                        raise ServerError(f"{endpoint}: answered with JSON that is not an object")
                    self._count("ok")
                    return data
                message = self._redact(_error_message(r))
                if r.status_code not in RETRY_STATUSES:
                    raise ServerError(f"{endpoint}: HTTP {r.status_code}: {message}")
                problem = f"HTTP {r.status_code}: {message}"
                wait = _retry_after(r)
            if attempt + 1 < attempts:
                backoff = min(self.max_wait, BACKOFF_BASE * 2 ** attempt) * random.uniform(0.5, 1.0)
                await asyncio.sleep(min(self.max_wait, wait) if wait is not None else backoff)
        raise ServerError(f"{endpoint}: {problem}; gave up after {attempts} attempt{'s' if attempts > 1 else ''}")

    def _first_choice(self, path: str, data: dict) -> dict:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ServerError(f"{self._endpoint(path)}: the answer has no choices: {self._redact(str(data)[:200])}")
        return choices[0]

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _run_all(self, jobs: list[Callable[[httpx.AsyncClient], Awaitable[Any]]]) -> list:
        """Run one coroutine per job under the concurrency limit; results in order; first error wins."""
        async def main():
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0))
            sem = asyncio.Semaphore(self.concurrency)
            async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
                async def guarded(job):
                    async with sem:
                        return await job(client)

                tasks = [asyncio.ensure_future(guarded(j)) for j in jobs]
                try:
                    return await asyncio.gather(*tasks)
                finally:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)

        return run_coroutine(main())


# ---- helpers ------------------------------------------------------------------------------------
def run_coroutine(coro):
    """Run a coroutine to the end, also when called from code already inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


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


def _find_api_key(where: str, api_key_env: str | None) -> tuple[str | None, str | None]:
    if api_key_env:
        value = os.environ.get(api_key_env)
        if not value:
            raise RefereeError(f"{where}: api_key_env names ${api_key_env}, which is not set")
        return value, api_key_env
    for var in ("REFEREE_API_KEY", "OPENAI_API_KEY"):
        if os.environ.get(var):
            return os.environ[var], var
    return None, None


def _number(where: str, key: str, value, kind, minimum):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise RefereeError(f"{where}: option {key} should be {'an integer' if kind is int else 'a number'}, "
                           f"got {value!r}") from None
    if number < minimum:
        raise RefereeError(f"{where}: option {key} should be >= {minimum}, got {value!r}")
    return number


def _message_text(message) -> str:
    """The assistant's text: a string, or the text parts of a list of content parts (some servers)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _error_message(r: httpx.Response) -> str:
    """The server's own words about a failed request, from the usual JSON shapes or the raw body."""
    try:
        data = r.json()
    except ValueError:
        return (r.text.strip()[:300] or r.reason_phrase or "no message")
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message") or err
        if err:
            return str(err)[:300]
    return str(data)[:300]


def _retry_after(r: httpx.Response) -> float | None:
    value = r.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _token_matches(token: str, string: str) -> bool:
    return token == string or token.lstrip() == string


def _prompt_tokens(data: dict) -> int:
    """The prompt tokens a server says it read (0 when it does not say), for the ledger."""
    value = (data.get("usage") or {}).get("prompt_tokens")
    return value if isinstance(value, int) and value > 0 else 0


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
