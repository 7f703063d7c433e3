"""Real servers for tests: llama.cpp's OpenAI-compatible server on the embedded GGUF, and a small proxy.

Nothing here mocks the wire. ``LlamaServer`` runs ``python -m llama_cpp.server`` on 127.0.0.1 and can be
killed and started again on the same port. ``FaultyProxy`` is a real HTTP server that answers the first
few requests with an error status (or every request with a fixed reply) and forwards the rest to a real
upstream server, recording what it saw.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

INSTALL_HINT = 'pip install "llama-cpp-python[server]"'


def llama_server_missing() -> str | None:
    """Why llama.cpp's server cannot run here, or None when it can."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not importable; install llama.cpp's server with: {INSTALL_HINT}"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama.cpp's OpenAI-compatible server (llama-cpp-python) on one GGUF file, on 127.0.0.1."""

    def __init__(self, model_path: str | Path, log_path: str | Path, alias: str = "smol",
                 port: int | None = None, n_ctx: int = 2048):
        self.model_path = str(model_path)
        self.log_path = Path(log_path)
        self.alias = alias
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        # logits_all is the server's default; it is named here because echo/prompt logprobs need it.
        return [sys.executable, "-m", "llama_cpp.server", "--model", self.model_path, "--model_alias", self.alias,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--logits_all", "true"]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    @property
    def spec(self) -> str:
        return f"openai:{self.alias}@{self.url}"

    def start(self, timeout: float = 90.0) -> "LlamaServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"llama.cpp server not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-request, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def count_requests(self, path: str = "/v1/chat/completions") -> int:
        """Answered requests for ``path``, counted from the server's access log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if f'"POST {path} HTTP/1.1" 200' in line)


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (on a timeout test) are expected here: no tracebacks on stderr."""

    def handle_error(self, request, client_address):
        pass


class FaultyProxy:
    """A real HTTP proxy on 127.0.0.1 that misbehaves on purpose.

    ``fail_first`` requests are answered with the statuses in ``statuses`` (cycled), with a JSON error
    body and ``Retry-After: 0`` on 429; after that, requests go to ``upstream`` unless ``always`` is set
    to a ``(status, body_dict)`` reply for every request (``{auth}`` in it becomes the Authorization
    header the client sent). ``delay`` seconds pass before any answer. ``seen`` records (path,
    authorization header, status returned) per request.
    """

    def __init__(self, upstream: str | None = None, fail_first: int = 0, statuses=(503,),
                 always: tuple[int, dict] | None = None, delay: float = 0.0):
        self.upstream = upstream
        self.fail_first = fail_first
        self.statuses = tuple(statuses)
        self.always = always
        self.delay = delay
        self.seen: list[tuple[str, str | None, int]] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FaultyProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._handle(b"")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self._handle(self.rfile.read(length))

            def _handle(self, body: bytes):
                auth = self.headers.get("Authorization")
                with proxy._lock:
                    index = len(proxy.seen)
                    proxy.seen.append((self.path, auth, 0))
                if proxy.delay:
                    time.sleep(proxy.delay)
                if proxy.always is not None:
                    status, payload = proxy.always
                    payload = json.loads(json.dumps(payload).replace("{auth}", auth or ""))
                    return self._reply(index, status, json.dumps(payload).encode(), {})
                if index < proxy.fail_first:
                    status = proxy.statuses[index % len(proxy.statuses)]
                    headers = {"Retry-After": "0"} if status == 429 else {}
                    payload = {"error": {"message": f"proxy says {status} (request {index + 1})"}}
                    return self._reply(index, status, json.dumps(payload).encode(), headers)
                host, _, port = proxy.upstream.partition(":")
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
                try:
                    forward = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                    conn.request(self.command, self.path, body=body or None, headers=forward)
                    r = conn.getresponse()
                    self._reply(index, r.status, r.read(), {})
                finally:
                    conn.close()

            def _reply(self, index: int, status: int, data: bytes, headers: dict):
                with proxy._lock:
                    path, auth, _ = proxy.seen[index]
                    proxy.seen[index] = (path, auth, status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler
