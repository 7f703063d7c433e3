"""What the labelling page refuses before the app sees a request: a Host it was not started under (DNS
rebinding), a body too large to parse, and, at sign-in, an address that keeps guessing the token."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from referee.net import is_ip_address, is_loopback

MAX_BODY = 1 << 20  # bytes; a label form is a few kB, and parsing a large multipart body costs memory
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # bind addresses that mean "every address of this machine"
PLAIN_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"x-content-type-options", b"nosniff"),
                 (b"content-security-policy", b"default-src 'none'"), (b"cache-control", b"no-store")]


def host_name(header: str) -> str:
    """The name in a Host header (or a bind address), in lower case, without its port or IPv6 brackets
    (``[::1]:8765`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    name, colon, port = header.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else header


@dataclass(frozen=True)
class Hosts:
    """The names the page answers to in the Host header. A browser sends the name it looked up, so a
    foreign page whose name was made to resolve to this machine (DNS rebinding) sends its own name and is
    refused. Literal loopback addresses always pass; any literal address passes when the server listens on
    every address (a page at an address is that server's own). Ports are not compared: rebinding cannot
    change the name, and an SSH tunnel or a proxy changes the port."""

    names: frozenset[str] = LOOPBACK_NAMES
    any_address: bool = False

    @classmethod
    def bound(cls, host: str = "127.0.0.1", allowed: Iterable[str] = ()) -> "Hosts":
        """The names for a server listening on ``host``, and the names the user allowed (``--allowed-host``)."""
        host = host_name(host)
        wildcard = host in WILDCARDS
        own = set() if wildcard else {host}
        return cls(LOOPBACK_NAMES | own | {host_name(a) for a in allowed}, any_address=wildcard)

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        name = host_name(header)
        return name in self.names or is_loopback(name) or (self.any_address and is_ip_address(name))


class Guard:
    """ASGI middleware in front of the page: 421 for a Host not in ``hosts``, 413 for a body over
    ``max_body`` bytes, read no further than that (by its Content-Length, else as it streams in)."""

    def __init__(self, app, hosts: Hosts, max_body: int = MAX_BODY):
        self.app, self.hosts, self.max_body = app, hosts, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        named = [v for k, v in headers if k == "host"]
        if not named or not all(self.hosts.allows(v) for v in named):
            return await _plain(send, 421, "This page answers only under the names it was started with. To open it "
                                           "under this name, start it with: referee label serve --allowed-host NAME")
        too_large = f"The request is larger than the {self.max_body} bytes this page accepts."
        length = next((v for k, v in headers if k == "content-length"), None)
        if length is not None and (not length.strip().isdigit() or int(length) > self.max_body):
            return await _plain(send, 413, too_large)
        body = await self._read(receive)
        if body is None:
            return await _plain(send, 413, too_large)
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive) -> bytes | None:
        """The whole body, or None once it passes ``max_body`` (the rest is not read)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: the app sees the body so far
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive):
    """A ``receive`` that hands the app the body read already, then whatever the connection says next."""
    given = False

    async def replay():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _plain(send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [*PLAIN_HEADERS, (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Throttle:
    """Wrong sign-in tokens per client address: the first ``free`` cost nothing, and each one from then on
    locks the address out for twice as long as the one before (``first`` seconds, at most ``longest``). A
    right token forgets the address."""

    free: int = 5
    first: float = 1.0
    longest: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    most: int = 10_000  # addresses remembered; beyond, those whose lock-out ended are forgotten first
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)  # address: (wrong tokens, locked until)

    def wait(self, who: str) -> float:
        """Seconds until ``who`` may try a token again (0: now)."""
        return max(0.0, self.failures.get(who, (0, 0.0))[1] - self.clock())

    def retry_after(self, who: str) -> int:
        return max(1, math.ceil(self.wait(who)))

    def failed(self, who: str) -> None:
        count = self.failures.get(who, (0, 0.0))[0] + 1
        lock = 0.0 if count < self.free else min(self.longest, self.first * 2.0 ** min(count - self.free, 60))
        self.failures[who] = (count, self.clock() + lock)
        if len(self.failures) > self.most:
            self._forget()

    def succeeded(self, who: str) -> None:
        self.failures.pop(who, None)

    def _forget(self) -> None:
        """Keep the ``most`` addresses locked out longest (those whose lock-out ended go first)."""
        kept = sorted(self.failures.items(), key=lambda kv: kv[1][1])[-self.most:]
        self.failures = dict(kept)
