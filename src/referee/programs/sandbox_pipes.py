"""Talking to a sandboxed program: stdin fed, stdout and stderr read as they come and capped, the
process group killed at the timeout, and the init's report read (``referee.programs.sandbox``)."""

from __future__ import annotations

import collections
import json
import os
import selectors
import signal
import subprocess
import time

GRACE_S = 1.0  # after the timeout, or after the launcher ended, before the pipes are closed regardless
CHUNK = 65536


class CappedStream:
    """At most ``cap`` bytes of a stream: the first ones (stdout: a program's answer comes first) or the last
    ones (stderr: the traceback that explains a failure comes last). Whatever else came is dropped."""

    def __init__(self, cap: int, keep_last: bool = False):
        self.cap, self.keep_last, self.truncated = cap, keep_last, False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.truncated |= self.size + len(chunk) > self.cap
        if not self.keep_last:
            chunk = chunk[:self.cap - self.size]
        if chunk:
            self.chunks.append(chunk)
            self.size += len(chunk)
        while self.keep_last and self.chunks and self.size - len(self.chunks[0]) >= self.cap:
            self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        data = b"".join(self.chunks)
        if len(data) > self.cap:
            data = data[-self.cap:] if self.keep_last else data[:self.cap]
        return data.decode(errors="replace")


def pump(proc: subprocess.Popen, data: bytes, out: CappedStream, err: CappedStream, timeout_s: float) -> bool:
    """Feed stdin, read stdout and stderr, until the launcher has ended and both pipes closed. At the timeout,
    kill the group; after the timeout or the launcher's end, give the pipes GRACE_S more and no longer: a
    process that escaped the kill (no PID namespace) may hold them forever. Returns whether it timed out."""
    sinks = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    stop, timed_out, ended = time.monotonic() + timeout_s, False, False
    pending = memoryview(data)
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        while True:
            now = time.monotonic()
            if not ended and _has_ended(proc.pid):
                ended, stop = True, min(stop, now + GRACE_S)
            if ended and not selector.get_map():
                break
            if now >= stop:
                if ended or timed_out:
                    break
                timed_out, stop = True, now + GRACE_S
                kill_group(proc.pid)
                continue
            if not selector.get_map():  # the program closed its pipes and goes on: wait for its end
                time.sleep(min(stop - now, 0.01))
                continue
            for key, _ in selector.select(min(stop - now, 0.1)):
                if key.fd in sinks:
                    chunk = os.read(key.fd, CHUNK)
                    if chunk:
                        sinks[key.fd].add(chunk)
                    else:
                        selector.unregister(key.fd)
                else:
                    pending = _feed(key.fd, pending)
                    if not pending:
                        selector.unregister(key.fd)
                        proc.stdin.close()
    return timed_out


def _feed(fd: int, pending: memoryview) -> memoryview:
    """Write what the pipe takes now; nothing more is sent once the program closed its stdin."""
    try:
        return pending[os.write(fd, pending[:CHUNK]):]
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        return pending[:0]


def _has_ended(pid: int) -> bool:
    """Whether the launcher has ended, without reaping it (its process group id stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_report(fd: int) -> dict:
    """The init's one line about the isolation it set up ({} for an external command, or a launcher that
    was killed before it got that far)."""
    os.set_blocking(fd, False)
    try:
        line = os.read(fd, CHUNK).split(b"\n")[0]
        return json.loads(line) if line else {}
    except (BlockingIOError, json.JSONDecodeError):
        return {}
