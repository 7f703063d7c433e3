"""The one model interface every part of referee talks to.

A Model can ``generate`` (chats in, n completions each out), give ``logprobs`` of given continuations,
and give ``choice`` probabilities over a few option strings at the next position. Backends implement
three small hooks (``_generate``, ``_logprobs``, ``_choice``); this class does the rest the same way for
all of them: one cache row per finished call, per-sample seeds, batching, progress and the cost ledger.

Every sample has its own seed, derived from the sampling seed, the chat and the sample index, so a
sample does not depend on which other requests happened to share its batch. That is what makes a killed
run, started again, produce the same records: finished samples come back from the cache and the rest
are drawn with the same seeds they would have had.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from referee import ledger, progress
from referee.cache import Cache, request_key
from referee.errors import RefereeError

Chat = list  # list of {"role", "content"} dicts


@dataclass(frozen=True)
class Sampling:
    """Sampling settings. temperature 0 means greedy decoding."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if self.temperature < 0:
            raise RefereeError(f"sampling: temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise RefereeError(f"sampling: top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise RefereeError(f"sampling: max_new_tokens must be >= 1, got {self.max_new_tokens}")
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
    finish_reason: str  # "stop" (end of turn or a stop string) or "length"
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
            return [c.to_dict() for c in self._generate(reqs)]

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
            return [r.to_dict() for r in self._logprobs([list(chats[i]) for i in batch],
                                                        [continuations[i] for i in batch])]

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
            return [r.to_dict() for r in self._choice([list(chats[i]) for i in batch], opts, prefix)]

        done = self._cached_map(order, requests, compute, desc, unit="seq")
        return [ChoiceResult(**done[i][0]) for i in units]

    # ---- shared machinery ----------------------------------------------------------------------
    def _cached_map(self, order: list, requests: dict, compute: Callable[[list], list[dict]],
                    desc: str, unit: str) -> dict:
        """Answer every unit, from the cache where possible; store each finished batch at once."""
        keys = {u: request_key(self.fingerprint, requests[u]) for u in order}
        hits = self.cache.get_many(keys.values()) if self.cache is not None else {}
        done = {u: (hits[keys[u]], True) for u in order if keys[u] in hits}
        todo = [u for u in order if u not in done]
        if done:
            ledger.record(self.spec, cached_calls=len(done))
        with progress.bar(total=len(todo), desc=f"{desc} [{self.spec}]", unit=unit) as pbar:
            for start in range(0, len(todo), self.batch_size):
                batch = todo[start:start + self.batch_size]
                t0 = time.perf_counter()
                responses = compute(batch)
                seconds = time.perf_counter() - t0
                if len(responses) != len(batch):
                    raise RuntimeError(f"{type(self).__name__} returned {len(responses)} results for {len(batch)}")
                if self.cache is not None:
                    self.cache.put_many((keys[u], self.fingerprint, requests[u]["op"], requests[u], r)
                                        for u, r in zip(batch, responses))
                for u, r in zip(batch, responses):
                    done[u] = (r, False)
                ledger.record(self.spec, calls=len(batch), seconds=seconds,
                              prompt_tokens=sum(r.get("prompt_tokens", 0) for r in responses),
                              completion_tokens=sum(r.get("completion_tokens", 0) for r in responses))
                pbar.update(len(batch))
        return done


def _chat_chars(chat: Chat) -> int:
    return sum(len(m["content"]) for m in chat)
