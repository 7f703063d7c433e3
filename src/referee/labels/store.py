"""The label store: one SQLite file holding the items, the critiques shown and every judgement made.

    meta        mode, source file, seed, critique share, critic, the page's session secret
    items       the items in the order they are served (so export and stats need only the store)
    critiques   one per (item, answer): the text people were shown
    judgements  one row per act: a label or a skip, by whom, what was shown (answer order, critique or
                not), the label, confidence, reason, when the page was shown and when it was answered;
                an undo stamps ``undone_at`` on the row instead of deleting it

Every act is committed before the page answers, so killing the server loses nothing that was submitted.
An annotator's label of an item is their latest row for it that is a label and not undone.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from contextlib import closing, contextmanager
from pathlib import Path

from referee.errors import RefereeError
from referee.labels.critique import Critique
from referee.labels.items import STEP_LABELS, LabelItem

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (position INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS critiques (item TEXT NOT NULL, answer INTEGER NOT NULL, text TEXT NOT NULL,
                                      source TEXT NOT NULL, PRIMARY KEY (item, answer));
CREATE TABLE IF NOT EXISTS judgements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item TEXT NOT NULL,
    annotator TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('label', 'skip')),
    shown_order TEXT,            -- pairs: "AB" (the file's first answer on the left) or "BA"
    critique_shown INTEGER NOT NULL,
    label TEXT,                  -- pairs: "A", "B" or "tie" about the file's answers; steps: JSON list of +, 0, -
    confidence INTEGER,
    reason TEXT,
    shown_at REAL NOT NULL,
    answered_at REAL NOT NULL,
    undone_at REAL
);
CREATE INDEX IF NOT EXISTS judgements_by_annotator ON judgements (annotator, item);
"""

PAIR_LABELS = ("A", "B", "tie")


class LabelStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise RefereeError(f"{self.path}: is a folder; the label store is a file (labels.sqlite)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._conn() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise RefereeError(f"{self.path}: not a label store ({e})") from None

    @contextmanager
    def _conn(self):
        with closing(sqlite3.connect(self.path, timeout=30.0)) as conn:
            conn.row_factory = sqlite3.Row
            with conn:  # one transaction, committed on leaving
                yield conn

    # ---- set-up ------------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        with self._conn() as conn:
            return {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values) -> None:
        with self._conn() as conn:
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             [(k, str(v)) for k, v in values.items()])

    def secret(self) -> str:
        """The key that signs the page's session cookies; made once, so a restart keeps people signed in."""
        found = self.meta().get("secret")
        if found:
            return found
        self.set_meta(secret=secrets.token_hex(32))
        return self.meta()["secret"]

    def open_items(self, items: list[LabelItem], mode: str, source: str) -> None:
        """Put the items in a new store, or check that an existing store was made from the same ones."""
        meta = self.meta()
        if "mode" in meta:
            if meta["mode"] != mode:
                raise RefereeError(f"{self.path}: this store holds {meta['mode']} labels, not {mode}; "
                                   f"give another --store")
            have = [i.to_record() for i in self.items()]
            if have != [json.loads(json.dumps(i.to_record())) for i in items]:  # ids and content: no stale items
                raise RefereeError(f"{self.path}: made from {meta.get('source')} ({len(have)} items); "
                                   f"{source} gives {len(items)} other or changed items. Give another --store, or "
                                   f"the same file and --limit as before")
            return
        with self._conn() as conn:
            conn.executemany("INSERT INTO items (position, id, record) VALUES (?, ?, ?)",
                             [(k, i.id, json.dumps(i.to_record())) for k, i in enumerate(items)])
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [("mode", mode), ("source", source)])

    def items(self) -> list[LabelItem]:
        with self._conn() as conn:
            rows = conn.execute("SELECT record FROM items ORDER BY position").fetchall()
        return [LabelItem.from_record(json.loads(r["record"])) for r in rows]

    def add_critiques(self, critiques: list[Critique]) -> None:
        with self._conn() as conn:
            conn.executemany("INSERT OR REPLACE INTO critiques (item, answer, text, source) VALUES (?, ?, ?, ?)",
                             [(c.item, c.answer, c.text, c.source) for c in critiques])

    def critiques(self) -> dict[tuple[str, int], Critique]:
        with self._conn() as conn:
            rows = conn.execute("SELECT item, answer, text, source FROM critiques").fetchall()
        return {(r["item"], r["answer"]): Critique(r["item"], r["answer"], r["text"], r["source"]) for r in rows}

    # ---- acts --------------------------------------------------------------------------------------
    def record(self, item: str, annotator: str, kind: str, critique_shown: bool, shown_at: float,
               shown_order: str | None = None, label: str | list | None = None, confidence: int | None = None,
               reason: str | None = None) -> int:
        """Store one label or skip; returns its row id."""
        if kind == "label":
            label = _checked_label(label, self._mode())
        with self._conn() as conn:
            cur = conn.execute(
                "INSERT INTO judgements (item, annotator, kind, shown_order, critique_shown, label, confidence, "
                "reason, shown_at, answered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item, annotator, kind, shown_order, int(critique_shown), label, confidence, reason or None,
                 shown_at, time.time()))
            return cur.lastrowid

    def undo(self, annotator: str) -> str | None:
        """Take back the annotator's latest act (label or skip); returns its item, None if nothing is left."""
        with self._conn() as conn:
            row = conn.execute("SELECT id, item FROM judgements WHERE annotator = ? AND undone_at IS NULL "
                               "ORDER BY id DESC LIMIT 1", (annotator,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE judgements SET undone_at = ? WHERE id = ?", (time.time(), row["id"]))
            return row["item"]

    # ---- reading -----------------------------------------------------------------------------------
    def rows(self, live_only: bool = True) -> list[dict]:
        """Every act in order; ``live_only``: labels not undone, the latest per (item, annotator)."""
        with self._conn() as conn:
            rows = [dict(r) for r in conn.execute("SELECT * FROM judgements ORDER BY id")]
        if not live_only:
            return rows
        latest = {}
        for r in rows:
            if r["kind"] == "label" and r["undone_at"] is None:
                latest[(r["item"], r["annotator"])] = r
        return sorted(latest.values(), key=lambda r: r["id"])

    def labels(self, annotator: str) -> dict[str, dict]:
        return {r["item"]: r for r in self.rows() if r["annotator"] == annotator}

    def annotators(self) -> list[str]:
        with self._conn() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT annotator FROM judgements ORDER BY annotator")]

    def next_item(self, annotator: str) -> str | None:
        """The first item the annotator has not labelled, items they skipped last (the earliest skip first)."""
        done = set(self.labels(annotator))
        skipped = {}
        for r in self.rows(live_only=False):
            if r["annotator"] == annotator and r["kind"] == "skip" and r["undone_at"] is None:
                skipped[r["item"]] = r["id"]
        todo = [i.id for i in self.items() if i.id not in done]
        fresh = [i for i in todo if i not in skipped]
        if fresh:
            return fresh[0]
        return min((i for i in todo), key=lambda i: skipped[i], default=None)

    def _mode(self) -> str:
        mode = self.meta().get("mode")
        if mode is None:
            raise RefereeError(f"{self.path}: the store has no items yet")
        return mode


def _checked_label(label, mode: str) -> str:
    """The label as stored (a pair verdict, or a JSON list of step labels); anything else is refused."""
    if mode == "pairs":
        if label not in PAIR_LABELS:
            raise RefereeError(f"label {label!r}: expected one of {', '.join(PAIR_LABELS)}")
        return label
    if not isinstance(label, list) or not label or any(v not in STEP_LABELS for v in label):
        raise RefereeError(f"step labels {label!r}: expected a list of {', '.join(STEP_LABELS)}, one per step")
    return json.dumps(label)
