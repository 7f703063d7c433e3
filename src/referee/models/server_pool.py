"""Which of several servers of one model takes the next request, and which are resting after a failure.

The openai backend asks the pool for a server before every HTTP attempt and reports back how it went.
The rules:

- The next request goes to the server with the fewest requests in flight (ties: the one that was given
  the fewest so far, then the first listed), among the servers that take requests now.
- A server that fails in a way that says it is in trouble (refused or dropped connection, timeout, 5xx,
  429, a garbled body) is taken out: for the ``Retry-After`` it asked for, else for an exponential
  back-off with jitter (0.5 s doubling with each failure in a row, capped at ``max_wait``). Its requests
  are retried on the others at once; a request waits only when every server is out.
- A server back from a back-off takes one request at a time until one succeeds, so a server that is
  still down costs one request per back-off, not a whole batch.
- An answer that is the request's own fault (a 4xx other than 408, 409 and 429) says the server is up.

For one request to one server this is the backend's old retry rule (the same back-off); with several
requests in flight, a server's failure rests it for all of them. Each attempt's server, outcome and
latency go to the cost ledger's per-server table.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass
from enum import Enum

from referee import ledger

BACKOFF_BASE = 0.5  # seconds out after a first failure; doubles with each failure in a row, up to max_wait
PROBATION_POLL = 0.02  # seconds between looks at a server that takes one request at a time


class Outcome(Enum):
    ANSWERED = "answered"  # a usable answer
    REJECTED = "rejected"  # the server refused this request (its own fault): the server is up
    FAILED = "failed"  # the server is in trouble: take it out for a while
    CANCELLED = "cancelled"  # the caller gave up waiting (the run was stopped): not counted


@dataclass(eq=False)  # each server is itself, whatever its counts
class Server:
    url: str
    in_flight: int = 0
    given: int = 0  # requests handed to it so far (the tie-break that spreads load at low concurrency)
    failures_in_a_row: int = 0
    out_until: float = 0.0  # time.monotonic() before which it takes no requests

    def takes_requests(self, now: float) -> bool:
        return now >= self.out_until and (self.failures_in_a_row == 0 or self.in_flight == 0)


class ServerPool:
    """The servers of one model (``label`` names it in the ledger), shared by every call of that model."""

    def __init__(self, urls: list[str], label: str, max_wait: float):
        self.servers = [Server(url) for url in urls]
        self.label = label
        self.max_wait = max_wait
        self._lock = threading.Lock()  # calls of one model may run on several event loops at once

    async def acquire(self, only: Server | None = None) -> Server:
        """The server for the next attempt (``only`` when an attempt must go there), waiting while none
        takes requests."""
        candidates = [only] if only else self.servers
        while True:
            with self._lock:
                now = time.monotonic()
                ready = [s for s in candidates if s.takes_requests(now)]
                if ready:
                    server = min(ready, key=lambda s: (s.in_flight, s.given))
                    server.in_flight += 1
                    server.given += 1
                    return server
                wait = _next_chance(candidates, now)
            await asyncio.sleep(wait)

    def resting(self) -> list[Server]:
        """The servers out for a back-off now."""
        with self._lock:
            now = time.monotonic()
            return [s for s in self.servers if s.out_until > now]

    def release(self, server: Server, outcome: Outcome, seconds: float, retry_after: float | None = None) -> None:
        """How an attempt on ``server`` went: counted in the ledger, and a server in trouble taken out."""
        with self._lock:
            server.in_flight -= 1
            if outcome is Outcome.FAILED:
                server.failures_in_a_row += 1
                server.out_until = time.monotonic() + self._rest(server.failures_in_a_row, retry_after)
            elif outcome is not Outcome.CANCELLED:
                server.failures_in_a_row = 0
        if outcome is not Outcome.CANCELLED:
            ledger.record_server(self.label, server.url, requests=1, seconds=seconds,
                                 errors=int(outcome is not Outcome.ANSWERED))

    def _rest(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_wait, retry_after)
        return min(self.max_wait, BACKOFF_BASE * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)


def _next_chance(servers: list[Server], now: float) -> float:
    """Seconds until one of ``servers`` may take a request: the end of the shortest back-off, or a short
    look again when a server on probation is busy with its one request."""
    waits = [s.out_until - now for s in servers if s.out_until > now]
    if any(s.out_until <= now for s in servers):
        waits.append(PROBATION_POLL)
    return max(0.001, min(waits))
