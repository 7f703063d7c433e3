"""The response cache: one SQLite table, one row per finished model call.

A row's key is a hash of the model's fingerprint and the whole request (operation, messages, sampling
settings, seed and sample index), so a rerun of a killed run reads back every finished call and only
computes the rest. WAL mode and a busy timeout make it safe for several threads or processes of one run
writing at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable

from referee.errors import RefereeError


def request_key(fingerprint: str, request: dict) -> str:
    """A stable hash of the fingerprint and a JSON-able request (key order does not matter)."""
    blob = json.dumps({"model": fingerprint, "request": request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Cache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._open: list[sqlite3.Connection] = []  # every thread's connection, so close() closes them all
        self._lock = threading.Lock()
        self._generation = 0  # a connection from before the last close() is not used again
        try:
            conn = self._conn()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
                "op TEXT NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)"
            )
            conn.commit()
        except sqlite3.DatabaseError as e:
            if _is_damage(e):
                raise self._damaged(str(e)) from None
            raise RefereeError(f"{self.path}: cannot open the response cache ({e})") from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "generation", None) != self._generation:
            # one connection per thread, used only there; closed from whichever thread calls close()
            conn = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.generation = conn, self._generation
            with self._lock:
                self._open.append(conn)
        return conn

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The cached responses for the keys that have one."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        conn = self._conn()
        with self._reporting_damage():
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT key, response FROM calls WHERE key IN ({marks})", chunk)
                for key, response in rows:
                    try:
                        found[key] = json.loads(response)
                    except (TypeError, ValueError):
                        raise self._damaged(f"the stored response of call {key[:12]} is not JSON") from None
        return found

    def put_many(self, rows: Iterable[tuple[str, str, str, dict, Any]]) -> None:
        """Store (key, fingerprint, op, request, response) rows in one transaction."""
        now = time.time()
        data = [(k, fp, op, json.dumps(req, ensure_ascii=False), json.dumps(resp, ensure_ascii=False), now)
                for k, fp, op, req, resp in rows]
        if not data:
            return
        conn = self._conn()
        with self._reporting_damage(), conn:
            conn.executemany("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?)", data)

    def count(self, fingerprint: str | None = None) -> int:
        conn = self._conn()
        with self._reporting_damage():
            if fingerprint is None:
                return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            return conn.execute("SELECT COUNT(*) FROM calls WHERE fingerprint = ?", (fingerprint,)).fetchone()[0]

    @contextmanager
    def _reporting_damage(self):
        """A damaged file (a corrupt page, not a database at all) becomes an error saying what to delete;
        a busy or locked database is another matter and passes through as it is."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            if not _is_damage(e):
                raise
            raise self._damaged(str(e)) from None

    def _damaged(self, problem: str) -> RefereeError:
        return RefereeError(f"{self.path}: the response cache is damaged ({problem}); delete this file and run "
                            f"again: only its cached calls are made again, nothing else is lost")

    def close(self) -> None:
        """Close every thread's connection: the last one to close folds the write-ahead log into the file,
        so a finished run's cache.sqlite holds all its calls on its own (copied, or read by another process).
        A later call opens a new connection."""
        with self._lock:
            conns, self._open = self._open, []
            self._generation += 1
        for conn in conns:
            conn.close()
        self._local.conn = None


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    """SQLite reports a corrupt file (SQLITE_CORRUPT) or one that is no database (SQLITE_NOTADB) as a plain
    DatabaseError; locks, full disks and permissions come as its subclasses (OperationalError, ...)."""
    return type(error) is sqlite3.DatabaseError


def default_cache_path() -> Path:
    """REFEREE_CACHE if set, else calls.sqlite under the referee home directory."""
    from referee.paths import referee_home

    return Path(os.environ.get("REFEREE_CACHE") or referee_home() / "calls.sqlite")
