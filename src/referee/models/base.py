"""The one model interface every part of referee talks to.

A Model can ``generate`` (chats in, n completions each out), give ``logprobs`` of given continuations,
and give ``choice`` probabilities over a few option strings at the next position. Backends implement
three small hooks (``_generate``, ``_logprobs``, ``_choice``); this class does the rest the same way for
all of them: one cache row per finished call, per-sample seeds, batching, progress and the cost ledger.

A hook answers a batch either with a list in request order (all results arrive together) or with an
iterator of ``(position, result)`` pairs in the order they finish, so a slow or failing request never
holds back the caching of its batch-mates. A result may be a ``RefereeError``: that request failed for
good. It is not cached, the rest of the run goes on (unless a whole batch failed: the server is then of
no use), and the map raises at the end, naming how many failed and why, so a rerun asks only for those.
A completion that was not given (a content filter, a refusal) is returned with that reason but never
cached either: it is not an answer a rerun should reuse.

Every sample has its own seed, derived from the sampling seed, the chat and the sample index, so a
sample does not depend on which other requests happened to share its batch. That is what makes a killed
run, started again, produce the same records: finished samples come back from the cache and the rest
are drawn with the same seeds they would have had.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from referee import ledger, progress
from referee.cache import Cache, request_key
from referee.chat import Chat
from referee.errors import RefereeError


# Beyond any model's context window: a slip of a few zeros is refused, not sampled until the disk fills.
MAX_NEW_TOKENS = 1_000_000


@dataclass(frozen=True)
class Sampling:
    """Sampling settings. temperature 0 means greedy decoding."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if not (math.isfinite(self.temperature) and self.temperature >= 0):  # inf or nan samples noise
            raise RefereeError(f"sampling: temperature must be a finite number >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise RefereeError(f"sampling: top_p must be in (0, 1], got {self.top_p}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise RefereeError(f"sampling: max_new_tokens must be from 1 to {MAX_NEW_TOKENS:,}, got "
                               f"{self.max_new_tokens}")
        object.__setattr__(self, "stop", tuple(self.stop))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    # "stop" (end of turn or a stop string) or "length"; for answers not given, which are never cached:
    # "content_filter" (the server's filter) or "refused" (no content at all)
    finish_reason: str
    cached: bool = field(default=False, compare=False)

    def to_dict(self) -> dict:
        return {"text": self.text, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "finish_reason": self.finish_reason}


@dataclass
class TokenLogprobs:
    """Log-probabilities of a continuation's tokens; ``total`` is their sum."""

    total: float
    tokens: list[str]
    logprobs: list[float]

    def to_dict(self) -> dict:
        return {"total": self.total, "tokens": self.tokens, "logprobs": self.logprobs}


@dataclass
class ChoiceResult:
    """Probabilities of the options, normalised to sum to 1, and the raw mass the model put on them.

    A low ``mass`` means the model would rather have written something else: the normalised
    distribution is then a weak signal, and callers can see that.
    """

    probs: dict[str, float]
    mass: float
    prompt_tokens: int = 0  # what the call read, for the cost ledger (0 where the backend can't tell)

    @property
    def best(self) -> str:
        return max(self.probs, key=self.probs.get)

    def to_dict(self) -> dict:
        return {"probs": self.probs, "mass": self.mass, "prompt_tokens": self.prompt_tokens}


@dataclass(frozen=True)
class GenRequest:
    """One sample to draw: a chat, its settings and the seed of this very sample."""

    chat: Chat
    sampling: Sampling
    seed: int


Options = Sequence[str] | dict[str, Sequence[str]]
FINISHED = ("stop", "length")  # the finish reasons of completions worth caching


def normalise_options(options: Options) -> dict[str, list[str]]:
    """Options as {name: [strings that count as that option]}; a plain list maps each string to itself."""
    if isinstance(options, dict):
        out = {str(k): [v] if isinstance(v, str) else list(v) for k, v in options.items()}
    else:
        out = {str(o): [str(o)] for o in options}
    if len(out) < 2:
        raise RefereeError("choice: give at least two options")
    for name, strings in out.items():
        if not strings or any(not s for s in strings):
            raise RefereeError(f"choice: option {name!r} needs non-empty strings")
    return out


def sample_seed(seed: int, chat: Chat, index: int) -> int:
    """The seed of sample ``index`` of ``chat``: stable across runs, batches and machines."""
    blob = json.dumps([seed, index, chat], sort_keys=True, ensure_ascii=False).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") & ((1 << 63) - 1)


class Model:
    """Base class of all backends. Subclasses set ``spec`` and ``fingerprint`` and implement the hooks."""

    spec: str = "?"
    fingerprint: str = "?"
    batch_size: int = 16

    def __init__(self, cache: Cache | None = None):
        self.cache = cache

    # ---- backend hooks -------------------------------------------------------------------------
    def _generate(self, requests: list[GenRequest]) -> list[Completion]:
        raise NotImplementedError

    def _logprobs(self, chats: list[Chat], continuations: list[str]) -> list[TokenLogprobs]:
        raise NotImplementedError

    def _choice(self, chats: list[Chat], options: dict[str, list[str]], prefix: str) -> list[ChoiceResult]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"spec": self.spec, "fingerprint": self.fingerprint, "backend": type(self).__name__}

    # ---- the interface -------------------------------------------------------------------------
    def generate(self, chats: Sequence[Chat], sampling: Sampling | None = None, n: int = 1,
                 desc: str = "generate") -> list[list[Completion]]:
        """n completions for each chat, in order: result[i][j] is sample j of chat i."""
        sampling = sampling or Sampling()
        if n < 1:
            raise RefereeError(f"generate: n must be >= 1, got {n}")
        settings = sampling.to_dict()
        units = [(i, j) for i in range(len(chats)) for j in range(n)]
        requests = {(i, j): {"op": "generate", "chat": list(chats[i]), "sampling": settings, "index": j}
                    for i, j in units}
        # Long prompts together, a chat's samples side by side: less padding in each batch.
        order = sorted(units, key=lambda u: (-_chat_chars(chats[u[0]]), u[0], u[1]))

        def compute(batch):
            reqs = [GenRequest(list(chats[i]), sampling, sample_seed(sampling.seed, chats[i], j)) for i, j in batch]
            return _as_dicts(self._generate(reqs))

        done = self._cached_map(order, requests, compute, desc, unit="sample")
        out: list[list[Completion]] = [[None] * n for _ in chats]  # type: ignore[list-item]
        for (i, j), (resp, cached) in done.items():
            out[i][j] = Completion(**resp, cached=cached)
        return out

    def logprobs(self, chats: Sequence[Chat], continuations: Sequence[str],
                 desc: str = "logprobs") -> list[TokenLogprobs]:
        """Log-probabilities of each continuation written as the assistant's reply to its chat."""
        if len(chats) != len(continuations):
            raise RefereeError("logprobs: give one continuation per chat")
        units = list(range(len(chats)))
        requests = {i: {"op": "logprobs", "chat": list(chats[i]), "continuation": continuations[i]} for i in units}
        order = sorted(units, key=lambda i: -(_chat_chars(chats[i]) + len(continuations[i])))

        def compute(batch):
            return _as_dicts(self._logprobs([list(chats[i]) for i in batch], [continuations[i] for i in batch]))

        done = self._cached_map(order, requests, compute, desc, unit="seq")
        return [TokenLogprobs(**done[i][0]) for i in units]

    def choice(self, chats: Sequence[Chat], options: Options, prefix: str = "",
               desc: str = "choice") -> list[ChoiceResult]:
        """The probability of each option as the next thing the assistant writes (after ``prefix``)."""
        opts = normalise_options(options)
        units = list(range(len(chats)))
        requests = {i: {"op": "choice", "chat": list(chats[i]), "options": opts, "prefix": prefix} for i in units}
        # Longest first (less padding); among equal lengths, chats with common beginnings sit together
        # (a pair's two shown orders), so a backend can run their shared head once.
        order = sorted(units, key=lambda i: (-_chat_chars(chats[i]), [m["content"] for m in chats[i]]))

        def compute(batch):
            return _as_dicts(self._choice([list(chats[i]) for i in batch], opts, prefix))

        done = self._cached_map(order, requests, compute, desc, unit="seq")
        return [ChoiceResult(**done[i][0]) for i in units]

    # ---- shared machinery ----------------------------------------------------------------------
    def _cached_map(self, order: list, requests: dict, compute: Callable[[list], Any], desc: str, unit: str) -> dict:
        """Answer every unit, from the cache where possible; store each answer as soon as it arrives."""
        keys = {u: request_key(self.fingerprint, requests[u]) for u in order}
        hits = self.cache.get_many(keys.values()) if self.cache is not None else {}
        done = {u: (hits[keys[u]], True) for u in order if keys[u] in hits}
        todo = [u for u in order if u not in done]
        if done:
            ledger.record(self.spec, cached_calls=len(done))
        failures: list[RefereeError] = []
        tried = 0
        with progress.bar(total=len(todo), desc=f"{desc} [{self.spec}]", unit=unit) as pbar:
            for start in range(0, len(todo), self.batch_size):
                batch = todo[start:start + self.batch_size]
                failed_before = len(failures)
                self._run_batch(batch, compute, keys, requests, done, failures, pbar)
                tried += len(batch)
                if len(failures) - failed_before == len(batch):
                    break  # not one answer in a whole batch: the rest would fail the same way
        if failures:
            withheld = sum(r.get("finish_reason", "stop") not in FINISHED for r, cached in done.values() if not cached)
            raise _failure_report(self.spec, failures, answered=tried - len(failures), skipped=len(todo) - tried,
                                  withheld=withheld, cached=self.cache is not None)
        return done

    def _run_batch(self, batch: list, compute: Callable[[list], Any], keys: dict, requests: dict, done: dict,
                   failures: list, pbar) -> None:
        """Cache and count each result of one batch as it arrives; collect the requests that failed."""
        clock = time.perf_counter()  # before compute: a local backend does all its work inside the call
        results = compute(batch)
        seen: set[int] = set()
        try:
            for group in _arrival_groups(results):
                answered = []
                for position, r in group:
                    if position in seen or not 0 <= position < len(batch):
                        raise RuntimeError(f"{type(self).__name__} answered position {position} of a batch of "
                                           f"{len(batch)} twice or out of range")
                    seen.add(position)
                    if isinstance(r, RefereeError):
                        failures.append(r)
                    else:
                        answered.append((batch[position], r))
                if self.cache is not None:
                    self.cache.put_many((keys[u], self.fingerprint, requests[u]["op"], requests[u], r)
                                        for u, r in answered if r.get("finish_reason", "stop") in FINISHED)
                for u, r in answered:
                    done[u] = (r, False)
                now = time.perf_counter()
                ledger.record(self.spec, calls=len(answered), seconds=now - clock,
                              withheld=sum(r.get("finish_reason", "stop") not in FINISHED for _, r in answered),
                              prompt_tokens=sum(r.get("prompt_tokens", 0) for _, r in answered),
                              completion_tokens=sum(r.get("completion_tokens", 0) for _, r in answered))
                clock = now
                pbar.update(len(group))
        finally:
            getattr(results, "close", lambda: None)()  # a stream left early stops its requests
        if len(seen) != len(batch):
            raise RuntimeError(f"{type(self).__name__} returned {len(seen)} results for {len(batch)}")


_PROBE = "FINAL-MESSAGE-PROBE-7319"


def continues_final_message(model: Model) -> bool:
    """Whether the model continues a chat's final assistant message (a prefilled reply) rather than starting a
    new turn: its ``continues_final_message`` flag where it has one, else whether its ``render`` of a chat
    ending in an assistant turn ends with that turn's text."""
    flag = getattr(model, "continues_final_message", None)
    if flag is not None:
        return bool(flag)
    render = getattr(model, "render", None)
    if render is None:
        return False
    try:
        text = render([{"role": "user", "content": "q"}, {"role": "assistant", "content": _PROBE}])
    except Exception:  # a template that refuses an assistant turn at the end
        return False
    return text.rstrip().endswith(_PROBE)


def _as_dicts(results: list | Iterable[tuple[int, Any]]) -> list | Iterator[tuple[int, Any]]:
    """A hook's results as dicts, in the shape the hook gave them; failures (RefereeError) stay as they are."""
    def plain(r):
        return r if isinstance(r, RefereeError) else r.to_dict()

    if isinstance(results, list):
        return [plain(r) for r in results]
    return ((position, plain(r)) for position, r in results)


def _arrival_groups(results: list | Iterable[tuple[int, Any]]) -> Iterator[list[tuple[int, Any]]]:
    """(position, result) pairs in groups that became available together: a list is one group."""
    if isinstance(results, list):
        yield list(enumerate(results))
        return
    for pair in results:
        yield [pair]


def _failure_report(spec: str, failures: list[RefereeError], answered: int, skipped: int, withheld: int = 0,
                    cached: bool = True) -> RefereeError:
    """One error for the calls that failed for good, of the first failure's kind, quoting it. Answers the
    server withheld (content filter, refusal) count as answered but are never cached: said apart, since a
    rerun asks for them again."""
    first = failures[0]
    text = f"{spec}: {len(failures)} of {len(failures) + answered + skipped} calls failed"
    kept = answered - withheld
    if kept:
        text += (f" ({kept} answered and cached: a rerun asks only for the others)" if cached
                 else f" ({kept} answered; not cached, as there is no cache)")
    if withheld:
        text += f"; {withheld} withheld by the server (content filter or refusal), not cached"
    if skipped:
        text += f"; {skipped} not tried after a whole batch failed"
    return type(first)(f"{text}; {'the first: ' if len(failures) > 1 else ''}{first}")


def _chat_chars(chat: Chat) -> int:
    return sum(len(m["content"]) for m in chat)
