"""The cost ledger: calls, tokens and wall time per stage and per model.

Every model call reports here. A run opens a ledger and names stages with ``stage("...")``; outside a
run, nothing is recorded. Cached calls are counted apart from fresh ones, so the ledger shows both what
a run cost and what a rerun saved.

Models served over HTTP also report each request per server (requests, errors, latency), in a table of
its own: which server answered is not part of what a stage cost, but it is how a pool of servers is
seen to share the work and to lose one.
"""

from __future__ import annotations

import contextvars
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

_active: contextvars.ContextVar["Ledger | None"] = contextvars.ContextVar("referee_ledger", default=None)
_stage: contextvars.ContextVar[str] = contextvars.ContextVar("referee_stage", default="main")


@dataclass
class Entry:
    stage: str
    model: str
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    withheld: int = 0  # answers the server withheld (content filter, refusal): returned, never cached


@dataclass
class ServerEntry:
    model: str
    server: str
    requests: int = 0
    errors: int = 0  # requests without a usable answer (refused, dropped, timed out, an error status)
    seconds: float = 0.0  # summed latency of the requests

    def to_dict(self) -> dict:
        mean = self.seconds / self.requests if self.requests else 0.0
        return {**asdict(self), "mean_seconds": mean}


class Ledger:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        self._stage_seconds: dict[str, float] = {}
        self._servers: dict[tuple[str, str], ServerEntry] = {}
        self._lock = threading.Lock()

    def add(self, model: str, *, calls: int = 0, cached_calls: int = 0, prompt_tokens: int = 0,
            completion_tokens: int = 0, seconds: float = 0.0, withheld: int = 0, stage: str | None = None) -> None:
        stage = stage or _stage.get()
        with self._lock:
            e = self._entries.setdefault((stage, model), Entry(stage, model))
            e.withheld += withheld
            e.calls += calls
            e.cached_calls += cached_calls
            e.prompt_tokens += prompt_tokens
            e.completion_tokens += completion_tokens
            e.model_seconds += seconds

    def add_server(self, model: str, server: str, *, requests: int = 0, errors: int = 0,
                   seconds: float = 0.0) -> None:
        with self._lock:
            e = self._servers.setdefault((model, server), ServerEntry(model, server))
            e.requests += requests
            e.errors += errors
            e.seconds += seconds

    def add_stage_time(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._stage_seconds[stage] = self._stage_seconds.get(stage, 0.0) + seconds

    def withheld(self, stage: str) -> int:
        """Answers withheld so far in ``stage``: a stage that got any is not finished (see Run.run_stage)."""
        with self._lock:
            return sum(e.withheld for e in self._entries.values() if e.stage == stage)

    def rows(self) -> list[dict]:
        with self._lock:
            return [asdict(e) for e in self._entries.values()]

    def server_rows(self) -> list[dict]:
        with self._lock:
            return [e.to_dict() for e in self._servers.values()]

    def to_dict(self) -> dict:
        rows = self.rows()
        totals = {k: sum(r[k] for r in rows) for k in
                  ("calls", "cached_calls", "prompt_tokens", "completion_tokens", "model_seconds", "withheld")}
        with self._lock:
            stages = dict(self._stage_seconds)
        book = {"entries": rows, "stage_wall_seconds": stages, "totals": totals}
        servers = self.server_rows()
        if servers:  # only models served over HTTP have any
            book["servers"] = servers
        return book

    @contextmanager
    def activate(self):
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)


def active() -> Ledger | None:
    return _active.get()


def record(model: str, **counts) -> None:
    """Report a model call to the active ledger, if a run opened one."""
    ledger = _active.get()
    if ledger is not None:
        ledger.add(model, **counts)


def record_server(model: str, server: str, **counts) -> None:
    """Report one HTTP request to one server of a model to the active ledger, if a run opened one."""
    ledger = _active.get()
    if ledger is not None:
        ledger.add_server(model, server, **counts)


@contextmanager
def stage(name: str):
    """Name the stage that model calls inside this block are charged to, and time it."""
    token = _stage.set(name)
    start = time.perf_counter()
    try:
        yield
    finally:
        _stage.reset(token)
        ledger = _active.get()
        if ledger is not None:
            ledger.add_stage_time(name, time.perf_counter() - start)
