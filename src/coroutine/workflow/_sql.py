"""The SQL store: one implementation for SQLite and PostgreSQL, its dialect in `_dialects`.

Theory of operation. Every change is one transaction (SQLite: ``BEGIN IMMEDIATE``, which
takes the write lock before reading, so two processes can never both read step n and both
write step n + 1; PostgreSQL: READ COMMITTED, where a concurrent commit of the same step
makes the second re-check the row, find the step moved on, and update nothing). `commit`
updates the row only ``WHERE step = old_step AND status = 'running'`` (the compare-and-set)
and writes the state in the same transaction, so a step's state and its row move together
or not at all. `claim` is one ``UPDATE ... RETURNING`` of the oldest ready row (with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL). Tables are named after the store's prefix
(``?prefix=NAME``, default ``cw``): ``P_workflows`` and ``P_states``, append-only per
workflow: a full state, then one delta row per step (a full state deletes the older rows).
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Iterator
from typing import Any

from ._dialects import Dialect
from ._records import Row
from ._store import Claim, Commit, Store, StoreURL

__all__ = ["SQLStore"]

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS {p}_workflows (
    n {serial},
    id TEXT NOT NULL UNIQUE,
    entry TEXT NOT NULL,
    args TEXT NOT NULL,
    status TEXT NOT NULL,
    step {int} NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until {real} NOT NULL DEFAULT 0,
    updated {real} NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS {p}_ready ON {p}_workflows (status, lease_until, updated)",
    """CREATE TABLE IF NOT EXISTS {p}_states (
    wf TEXT NOT NULL,
    seq {int} NOT NULL,
    blob {blob} NOT NULL,
    PRIMARY KEY (wf, seq)
)""",
]

_ROW = "id, entry, args, status, step, error"

_SQL = {
    "ready": "SELECT 1 FROM {p}_workflows WHERE status = 'running' AND lease_until <= ? LIMIT 1",
    "create": "INSERT INTO {p}_workflows (id, entry, args, status, step, updated)"
    " VALUES (?, ?, ?, 'running', 0, ?)",
    "create_state": "INSERT INTO {p}_states VALUES (?, 0, ?)",
    "claim_next": "UPDATE {p}_workflows SET lease_owner = ?, lease_until = ? WHERE n = ("
    "SELECT n FROM {p}_workflows WHERE status = 'running' AND lease_until <= ?"
    " ORDER BY updated LIMIT 1{skip_locked}) RETURNING id, entry, args, step",
    "claim_id": "UPDATE {p}_workflows SET lease_owner = ?, lease_until = ? WHERE id = ?"
    " AND step = ? AND status = 'running' AND (lease_until <= ? OR lease_owner = ?)"
    " RETURNING id, entry, args, step",
    "commit": "UPDATE {p}_workflows SET step = ?, status = ?, error = ?, lease_until = ?,"
    " updated = ? WHERE id = ? AND step = ? AND status = 'running'",
    "drop_states": "DELETE FROM {p}_states WHERE wf = ?",
    "append_state": "INSERT INTO {p}_states SELECT ?, coalesce(max(seq), -1) + 1, ?"
    " FROM {p}_states WHERE wf = ?",
    "load": "SELECT blob FROM {p}_states WHERE wf = ? ORDER BY seq",
    "get": f"SELECT {_ROW} FROM {{p}}_workflows WHERE id = ?",
    "cancel": "UPDATE {p}_workflows SET status = 'failed', error = ?, updated = ?"
    " WHERE id = ? AND status = 'running'",
    "list": f"SELECT {_ROW} FROM {{p}}_workflows ORDER BY n",
    "stale": "UPDATE {p}_workflows SET updated = ? WHERE status = 'running'"
    " AND lease_until <= ? AND updated <= ? RETURNING id, step",
    "renew": "UPDATE {p}_workflows SET lease_until = ? WHERE id = ? AND step = ?"
    " AND lease_owner = ? AND status = 'running'",
    "count": "SELECT count(*) FROM {p}_workflows WHERE status = 'running'",
}


class SQLStore(Store):
    """A store in one SQLite file or PostgreSQL database, as `dialect` says."""

    def __init__(self, url: StoreURL, dialect: Dialect) -> None:
        self.url = url.url
        self._dialect = dialect
        self._q = {k: dialect.sql(v.replace("{skip_locked}", dialect.skip_locked), url.prefix)
                   for k, v in _SQL.items()}  # fmt: skip
        self._db = dialect.connect(url.target)
        dialect.prepare(self._db, [dialect.sql(s, url.prefix) for s in _SCHEMA])

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """One write transaction (on SQLite, holding the write lock from its start)."""
        db = self._db
        db.execute(self._dialect.begin)
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def create(self, row: Row, state: bytes, now: float) -> None:
        with self._write() as db:
            db.execute(self._q["create"], (row.id, row.entry, row.args, now))
            db.execute(self._q["create_state"], (row.id, state))

    def claim(
        self, worker: str, now: float, lease: float, id: str | None = None, step: int = -1
    ) -> Claim | None:
        if id is None:
            if not self._db.execute(self._q["ready"], (now,)).fetchone():
                return None  # nothing ready: a read, so idle workers take no write lock
            args: tuple[Any, ...] = (worker, now + lease, now)
            sql = self._q["claim_next"]
        else:
            args, sql = (worker, now + lease, id, step, now, worker), self._q["claim_id"]
        with self._write() as db:
            found = db.execute(sql, args).fetchone()
        return None if found is None else Claim(found[0], found[1], found[2], int(found[3]))

    def commit(self, c: Commit, now: float) -> bool:
        with self._write() as db:
            args = (c.new_step, c.status, c.error, c.lease_until, now, c.id, c.old_step)
            if db.execute(self._q["commit"], args).rowcount != 1:
                return False
            if c.state is not None:
                if c.full:
                    db.execute(self._q["drop_states"], (c.id,))
                db.execute(self._q["append_state"], (c.id, c.state, c.id))
        return True

    def load_state(self, id: str) -> bytes:
        with self._write() as db:  # one snapshot of the rows
            rows = db.execute(self._q["load"], (id,)).fetchall()
        return b"".join(self._dialect.blob(r[0]) for r in rows)

    def get(self, id: str) -> Row | None:
        r = self._db.execute(self._q["get"], (id,)).fetchone()
        return None if r is None else Row(*r)

    def cancel(self, id: str, error: str, now: float) -> bool:
        with self._write() as db:
            return bool(db.execute(self._q["cancel"], (error, now, id)).rowcount == 1)

    def list(self) -> builtins.list[Row]:
        return [Row(*r) for r in self._db.execute(self._q["list"]).fetchall()]

    def stale(self, now: float, older_than: float) -> builtins.list[tuple[str, int]]:
        with self._write() as db:
            rows = db.execute(self._q["stale"], (now, now, now - older_than)).fetchall()
        return [(i, int(s)) for i, s in rows]

    def renew(self, id: str, step: int, worker: str, lease_until: float) -> bool:
        with self._write() as db:
            return bool(db.execute(self._q["renew"], (lease_until, id, step, worker)).rowcount == 1)

    def count_running(self) -> int:
        (n,) = self._db.execute(self._q["count"]).fetchone()
        return int(n)

    def close(self) -> None:
        self._db.close()
