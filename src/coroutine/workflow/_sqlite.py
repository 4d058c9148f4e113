"""The embedded store: one SQLite file, standard library only, several processes at once.

Theory of operation. The file is in WAL mode, so readers never block the one writer, and
every change is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's write lock before
reading, so two processes can never both read step n and both write step n + 1. Inside it,
`commit` updates the row only ``WHERE step = old_step AND status = 'running'`` (the
compare-and-set) and writes the state in the same transaction, so a step's state and its
row move together or not at all. ``synchronous=NORMAL`` keeps every committed step across a
killed process (only a power cut can lose the last ones, per SQLite's WAL documentation).

States are append-only: ``{prefix}_states`` holds, per workflow, rows numbered in the order
they were written; a full state deletes the older rows, a delta appends one.
"""

from __future__ import annotations

import builtins
import contextlib
import sqlite3
import urllib.parse
from collections.abc import Iterator
from typing import Any

from ._errors import StoreURLError
from ._records import Row
from ._store import Claim, Commit, Store, split_prefix

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {p}_workflows (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    entry TEXT NOT NULL,
    args TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}_ready ON {p}_workflows (status, lease_until, updated);
CREATE TABLE IF NOT EXISTS {p}_states (
    wf TEXT NOT NULL,
    seq INTEGER NOT NULL,
    blob BLOB NOT NULL,
    PRIMARY KEY (wf, seq)
) WITHOUT ROWID;
"""

_ROW = "id, entry, args, status, step, error"
_READY = "SELECT 1 FROM {wf} WHERE status = 'running' AND lease_until <= ? LIMIT 1"


class SQLiteStore(Store):
    """A store in one SQLite file: ``sqlite:///absolute/path.db[?prefix=NAME]``."""

    def __init__(self, url: str) -> None:
        bare, self._p = split_prefix(url)
        path = urllib.parse.unquote(bare.partition("://")[2].partition("?")[0])
        if not path or path == "/":
            raise StoreURLError(f"SQLite store URL needs a file path: sqlite:///path (got {url!r})")
        self.url = url
        # isolation_level=None: no implicit transactions; each change is an explicit
        # BEGIN IMMEDIATE ... COMMIT below.
        self._db = sqlite3.connect(path, isolation_level=None, timeout=60.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA.format(p=self._p))  # idempotent: IF NOT EXISTS

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from its first statement."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _q(self, sql: str) -> str:
        return sql.replace("{wf}", f"{self._p}_workflows").replace("{st}", f"{self._p}_states")

    def create(self, row: Row, state: bytes, now: float) -> None:
        with self._write() as db:
            db.execute(
                self._q(
                    "INSERT INTO {wf} (id, entry, args, status, step, updated)"
                    " VALUES (?, ?, ?, 'running', 0, ?)"
                ),
                (row.id, row.entry, row.args, now),
            )
            db.execute(self._q("INSERT INTO {st} VALUES (?, 0, ?)"), (row.id, state))

    def claim(
        self, worker: str, now: float, lease: float, id: str | None = None, step: int = -1
    ) -> Claim | None:
        if id is None and not self._db.execute(self._q(_READY), (now,)).fetchone():
            return None  # nothing ready: a read, so idle workers do not take the write lock
        with self._write() as db:
            if id is None:
                found = db.execute(
                    self._q(
                        "SELECT id, entry, args, step FROM {wf} WHERE status = 'running'"
                        " AND lease_until <= ? ORDER BY updated LIMIT 1"
                    ),
                    (now,),
                ).fetchone()
            else:
                found = db.execute(
                    self._q(
                        "SELECT id, entry, args, step FROM {wf} WHERE id = ? AND step = ?"
                        " AND status = 'running' AND (lease_until <= ? OR lease_owner = ?)"
                    ),
                    (id, step, now, worker),
                ).fetchone()
            if found is None:
                return None
            db.execute(
                self._q("UPDATE {wf} SET lease_owner = ?, lease_until = ? WHERE id = ?"),
                (worker, now + lease, found[0]),
            )
        return Claim(*found)

    def commit(self, c: Commit, now: float) -> bool:
        with self._write() as db:
            cur = db.execute(
                self._q(
                    "UPDATE {wf} SET step = ?, status = ?, error = ?, lease_until = ?,"
                    " updated = ? WHERE id = ? AND step = ? AND status = 'running'"
                ),
                (c.new_step, c.status, c.error, c.lease_until, now, c.id, c.old_step),
            )
            if cur.rowcount != 1:
                return False
            if c.state is not None:
                if c.full:
                    db.execute(self._q("DELETE FROM {st} WHERE wf = ?"), (c.id,))
                db.execute(
                    self._q(
                        "INSERT INTO {st} SELECT ?, coalesce(max(seq), -1) + 1, ?"
                        " FROM {st} WHERE wf = ?"
                    ),
                    (c.id, c.state, c.id),
                )
        return True

    def load_state(self, id: str) -> bytes:
        rows = self._db.execute(
            self._q("SELECT blob FROM {st} WHERE wf = ? ORDER BY seq"), (id,)
        ).fetchall()
        return b"".join(r[0] for r in rows)

    def _row(self, r: Any) -> Row:
        return Row(*r)

    def get(self, id: str) -> Row | None:
        r = self._db.execute(self._q(f"SELECT {_ROW} FROM {{wf}} WHERE id = ?"), (id,)).fetchone()
        return None if r is None else self._row(r)

    def cancel(self, id: str, error: str, now: float) -> bool:
        with self._write() as db:
            cur = db.execute(
                self._q(
                    "UPDATE {wf} SET status = 'failed', error = ?, updated = ?"
                    " WHERE id = ? AND status = 'running'"
                ),
                (error, now, id),
            )
        return cur.rowcount == 1

    def list(self) -> builtins.list[Row]:
        rows = self._db.execute(self._q(f"SELECT {_ROW} FROM {{wf}} ORDER BY n")).fetchall()
        return [self._row(r) for r in rows]

    def stale(self, now: float, older_than: float) -> builtins.list[tuple[str, int]]:
        with self._write() as db:
            found = db.execute(
                self._q(
                    "SELECT id, step FROM {wf} WHERE status = 'running' AND lease_until <= ?"
                    " AND updated <= ?"
                ),
                (now, now - older_than),
            ).fetchall()
            db.executemany(
                self._q("UPDATE {wf} SET updated = ? WHERE id = ?"), [(now, i) for i, _ in found]
            )
        return [(i, s) for i, s in found]

    def renew(self, id: str, step: int, worker: str, lease_until: float) -> bool:
        with self._write() as db:
            cur = db.execute(
                self._q(
                    "UPDATE {wf} SET lease_until = ? WHERE id = ? AND step = ?"
                    " AND lease_owner = ? AND status = 'running'"
                ),
                (lease_until, id, step, worker),
            )
        return cur.rowcount == 1

    def count_running(self) -> int:
        (n,) = self._db.execute(
            self._q("SELECT count(*) FROM {wf} WHERE status = 'running'")
        ).fetchone()
        return int(n)

    def close(self) -> None:
        self._db.close()
