"""A fault-injecting HTTP proxy on 127.0.0.1, for the openai backend's tests.

It is a real HTTP server: by default it forwards each request to a real upstream server (llama.cpp's,
in the tests) and sends back what it got. A script tells it to do something else with given requests:
answer an error status, hang up, answer slowly, cut a body short, garble it, or rewrite the upstream's
JSON (a refusal, a malformed field). Which fault a request gets:

1. the first entry of ``prompts`` whose marker appears in the request body: a single ``Fault`` applies
   to every such request; a list is used up one fault per request, then requests are forwarded;
2. else the next fault of the ``first`` list (in arrival order), while any are left;
3. else ``always``, if given; else the request is forwarded.

``seen`` records every request as it arrives: path, the Authorization header the client sent, the status
answered (None until answered, and when the proxy hung up), the fault's name and the marker that chose
it (if one did).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple, Sequence


@dataclass(frozen=True)
class Fault:
    """What the proxy does with one request; the defaults forward it unchanged."""

    name: str = "forward"
    delay: float = 0.0  # seconds to wait before doing anything (a slow or stuck server)
    status: int | None = None  # answer this status with ``payload`` instead of forwarding
    payload: Any = None  # JSON (``{auth}`` in it becomes the client's Authorization header) or raw bytes
    headers: dict = field(default_factory=dict)
    drop: bool = False  # read the request, then hang up without a word
    truncate: bool = False  # forward, then send half the body under the full Content-Length and hang up
    garble: bool = False  # forward, then send the body less its last byte: complete, but not JSON
    bad_gzip: bool = False  # forward, then claim a gzip encoding the plain body does not have
    rewrite: Callable[[dict], Any] | None = None  # forward, then send rewrite(upstream's JSON) instead


def error(status: int, message: str | None = None, retry_after: float | None = None) -> Fault:
    """An error answer in OpenAI's JSON shape."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Fault(f"error {status}", status=status, headers=headers,
                 payload={"error": {"message": message or f"proxy says {status}"}})


def reply(status: int, payload: Any, headers: dict | None = None) -> Fault:
    """A fixed answer, whatever was asked (no upstream needed)."""
    return Fault(f"reply {status}", status=status, payload=payload, headers=headers or {})


def slow(seconds: float, then: Fault | None = None) -> Fault:
    """Wait, then do ``then`` (forward by default)."""
    base = then or Fault()
    return Fault(**{**base.__dict__, "name": f"slow {seconds:g} s, {base.name}", "delay": seconds})


def rewrite(change: Callable[[dict], Any], name: str = "rewrite") -> Fault:
    """Forward, then answer ``change(answer)`` (``change`` may edit the answer in place and return None)."""
    return Fault(name, rewrite=change)


DROP = Fault("drop", drop=True)
TRUNCATE = Fault("truncate", truncate=True)
GARBLE = Fault("garble", garble=True)
BAD_GZIP = Fault("bad gzip", bad_gzip=True)


class Exchange(NamedTuple):
    path: str
    auth: str | None
    status: int | None
    fault: str
    marker: str | None


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (on a timeout test) are expected here: no tracebacks on stderr."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class FaultProxy:
    """A fault-injecting proxy in front of ``upstream`` ("127.0.0.1:PORT"); use it as a context manager."""

    def __init__(self, upstream: str | None = None, *, prompts: dict[str, Fault | Sequence[Fault]] | None = None,
                 first: Sequence[Fault] = (), always: Fault | None = None):
        self.upstream = upstream
        self.prompts = {marker: f if isinstance(f, Fault) else list(f) for marker, f in (prompts or {}).items()}
        self.first = list(first)
        self.always = always
        self.seen: list[Exchange] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, marker: str, answered: bool = False) -> int:
        """Requests that carried ``marker`` (only those answered already, if ``answered``)."""
        with self._lock:
            return sum(1 for x in self.seen if x.marker == marker and (x.status is not None or not answered))

    def _arrive(self, body: bytes, path: str, auth: str | None) -> tuple[int, Fault]:
        """Record a request and choose its fault: (its index in ``seen``, the fault)."""
        text = body.decode("utf-8", errors="replace")
        with self._lock:
            fault, marker = self._choose(text)
            self.seen.append(Exchange(path, auth, None, fault.name, marker))
            return len(self.seen) - 1, fault

    def _choose(self, text: str) -> tuple[Fault, str | None]:
        for marker, faults in self.prompts.items():
            if marker in text:
                if isinstance(faults, Fault):
                    return faults, marker
                return (faults.pop(0) if faults else Fault()), marker
        if self.first:
            return self.first.pop(0), None
        return self.always or Fault(), None

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._handle(b"")

            def do_POST(self):
                self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _handle(self, body: bytes):
                auth = self.headers.get("Authorization")
                index, fault = proxy._arrive(body, self.path, auth)
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.drop:
                    self.close_connection = True
                    return
                if fault.status is not None:
                    payload = fault.payload
                    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                    data = data.replace(b"{auth}", (auth or "").encode())
                    return self._reply(index, fault, fault.status, data, fault.headers)
                status, data = self._forward(body)
                headers = {}
                if fault.rewrite is not None:
                    answer = json.loads(data)
                    changed = fault.rewrite(answer)
                    data = json.dumps(answer if changed is None else changed).encode()
                if fault.garble:
                    data = data[:-1]
                if fault.bad_gzip:
                    headers["Content-Encoding"] = "gzip"
                self._reply(index, fault, status, data, headers)

            def _forward(self, body: bytes) -> tuple[int, bytes]:
                host, _, port = proxy.upstream.partition(":")
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
                try:
                    forward = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                    conn.request(self.command, self.path, body=body or None, headers=forward)
                    r = conn.getresponse()
                    return r.status, r.read()
                finally:
                    conn.close()

            def _reply(self, index: int, fault: Fault, status: int, data: bytes, headers: dict):
                with proxy._lock:
                    proxy.seen[index] = proxy.seen[index]._replace(status=status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if fault.truncate:
                    self.wfile.write(data[:len(data) // 2])
                    self.close_connection = True
                else:
                    self.wfile.write(data)

        return Handler
