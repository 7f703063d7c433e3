"""The HTTP side of the openai backend: POSTs to a pool of servers on an event loop of their own.

A batch's requests run under a concurrency limit on a loop in a worker thread (so this works from inside a
running loop too) and are handed back one by one as they arrive. Each request goes to the pool's least busy
server, and what is worth retrying (408, 409, 429, 5xx, lost connections, garbled bodies) is retried there
or on another server; the rest fails at once with the server's own words, its key redacted first (the
failure rules, in full: ``referee.models.openai``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import queue
import threading
import time
from typing import Any, Awaitable, Callable, Iterator, NamedTuple

import httpx

from referee.errors import RefereeError, ServerError
from referee.models.openai_spec import KEY_ENVS, OPENAI_HOST
from referee.models.server_pool import Outcome, Server, ServerPool

RETRY_STATUSES = {408, 409, 429} | set(range(500, 600))
QUOTE_LIMIT = 300  # characters of a server's own words kept in an error message


class Reply(NamedTuple):
    """A usable answer and where it came from."""

    data: dict
    server: str  # the server's base URL
    endpoint: str


class HttpClient:
    """POSTs to the pool's servers for one model: each server's own key (``openai_spec.choose_api_key``),
    ``concurrency`` requests in flight at most, ``retries`` attempts after the first, and counts of the
    traffic in ``stats`` (requests sent, retries, 2xx answers, calls that failed for good, completions the
    server withheld)."""

    def __init__(self, name: str, pool: ServerPool, keys: dict[str, tuple[str | None, str | None]], *,
                 concurrency: int, retries: int, timeout: float):
        self.name = name
        self.pool = pool
        self._keys = keys  # (key, the variable it came from) for each server URL
        self.concurrency = concurrency
        self.retries = retries
        self.timeout = timeout
        self.stats = {"requests": 0, "retries": 0, "ok": 0, "failed": 0, "refused": 0}
        self._stats_lock = threading.Lock()

    def headers(self, server: str) -> dict:
        """The headers for ``server``, with its own key if it has one."""
        key = self._keys[server][0]
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    async def post(self, client: httpx.AsyncClient, path: str, body: dict, server: Server | None = None,
                   attempts: int | None = None) -> Reply:
        """POST to the pool's next server (or to ``server`` only), with retries on overload, lost
        connections and garbled answers, on another server where one takes requests; other failures at once."""
        attempts = attempts or self.retries + 1
        problem = endpoint = ""
        for attempt in range(attempts):
            chosen = await self.pool.acquire(only=server)
            if attempt:
                self.count("retries")
            self.count("requests")
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
                self.count("ok")
                return Reply(data, chosen.url, endpoint)
        raise ServerError(f"{endpoint}: {problem}; gave up after {attempts} attempt{'s' if attempts > 1 else ''}")

    async def _attempt(self, client: httpx.AsyncClient, server: str, endpoint: str,
                       body: dict) -> tuple[dict | None, str, float | None]:
        """One POST: as ``_read`` says, with a lost or slow connection as a problem worth retrying."""
        try:
            r = await client.post(endpoint, json=body, headers=self.headers(server))
        except httpx.TimeoutException as e:
            return None, f"timed out after {self.timeout:g} s ({type(e).__name__})", None
        except httpx.ConnectError as e:
            return None, f"cannot connect ({self.quote(str(e)) or type(e).__name__})", None
        except httpx.DecodingError as e:
            why = self.quote(str(e)) or type(e).__name__
            return None, f"answered with a body that cannot be decoded ({why})", None
        except (httpx.RemoteProtocolError, httpx.NetworkError) as e:
            return None, f"connection dropped ({self.quote(str(e)) or type(e).__name__})", None
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise ServerError(f"{endpoint}: {type(e).__name__}: {self.quote(str(e))}") from None
        return self._read(server, endpoint, r)

    def _read(self, server: str, endpoint: str, r: httpx.Response) -> tuple[dict | None, str, float | None]:
        """(answer, "", None) for a usable answer, else (None, the problem, seconds the server asked to
        wait) for one worth retrying; raises for an answer that a retry would not change."""
        status = r.status_code
        if 200 <= status < 300:
            try:
                data = r.json()
            except ValueError:
                return None, f"answered {status} with a body that is not JSON: {self.quote(r.text, 200)!r}", None
            if not isinstance(data, dict):
                return None, f"answered {status} with JSON that is not an object: {self.quote(r.text, 200)!r}", None
            return data, "", None
        if status < 400:
            raise ServerError(f"{endpoint}: HTTP {status}: redirected to "
                              f"{self.quote(r.headers.get('location', '?'), 200)}; give that URL in the model spec")
        message = self.quote(_error_message(r))
        if status not in RETRY_STATUSES:
            raise ServerError(f"{endpoint}: HTTP {status}: {message}{self._unsent_key_hint(server, status)}")
        return None, f"HTTP {status}: {message}", _retry_after(r)

    def _unsent_key_hint(self, server: str, status: int) -> str:
        if status in (401, 403) and not self._keys[server][0] and os.environ.get("OPENAI_API_KEY"):
            return (f" ($OPENAI_API_KEY is sent only to https://{OPENAI_HOST}; to send it to this server, add "
                    f"OPENAI_API_KEY to ${KEY_ENVS} in your environment and api_key_env=OPENAI_API_KEY to the "
                    f"model spec)")
        return ""

    def quote(self, text: str, limit: int = QUOTE_LIMIT) -> str:
        """A server's words for an error message: the key redacted first (so no part of it survives the
        cut), on one line, at most ``limit`` characters."""
        for key, _ in self._keys.values():
            if key:
                text = text.replace(key, "***")
        text = " ".join(text.split())
        return text if len(text) <= limit else text[:limit - 3] + "..."

    def stream(self, jobs: list[Callable[[httpx.AsyncClient], Awaitable[Any]]]) -> Iterator[tuple[int, Any]]:
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
                        self.count("failed")
                        result = e
                arrivals.put((position, result))

            tasks = [asyncio.ensure_future(one(k, job)) for k, job in enumerate(jobs)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)



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
