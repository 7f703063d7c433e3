"""Real servers for tests: llama.cpp's OpenAI-compatible server on the embedded GGUF.

Nothing here mocks the wire. ``LlamaServer`` runs ``python -m llama_cpp.server`` on 127.0.0.1 and can be
killed and started again on the same port. Faults on the wire come from ``fault_proxy.FaultProxy``, a
real HTTP proxy in front of it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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
                 port: int | None = None, n_ctx: int = 2048, threads: int | None = None):
        self.model_path = str(model_path)
        self.log_path = Path(log_path)
        self.alias = alias
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.threads = threads  # CPU threads for prompts and for generation; None: the server's defaults
        self.proc: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        # logits_all is the server's default; it is named here because echo/prompt logprobs need it.
        threads = ["--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)] if self.threads else []
        return [sys.executable, "-m", "llama_cpp.server", "--model", self.model_path, "--model_alias", self.alias,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--logits_all", "true", *threads]

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
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> "LlamaServer":
        """Start the process without waiting for it (start several, then ``wait_ready`` on each)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

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


def start_all(servers: list[LlamaServer], timeout: float = 90.0) -> list[LlamaServer]:
    """Start several servers side by side (they load their model at the same time); all or none."""
    try:
        for srv in servers:
            srv.launch()
        for srv in servers:
            srv.wait_ready(timeout)
    except BaseException:
        for srv in servers:
            srv.stop()
        raise
    return servers
