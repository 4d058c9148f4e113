"""The PostgreSQL store: workflows shared by workers on many machines through one database.

Theory of operation. Every change is one transaction. `claim` picks a ready row with
``FOR UPDATE SKIP LOCKED`` (concurrent claimers take different rows instead of queueing on
one) and leases it; `commit` is ``UPDATE ... WHERE id = %s AND step = %s AND status =
'running'`` (the compare-and-set: in READ COMMITTED a concurrent commit of the same step
makes this one re-check the row, find the step moved on, and update nothing) followed by the
state's insert in the same transaction. Tables are named after the store's prefix
(``?prefix=NAME``, default ``cw``): ``P_workflows`` and ``P_states`` (append-only: a full
state, then one delta row per step).
"""

from __future__ import annotations

import builtins
from typing import Any

import psycopg

from ._records import Row
from ._store import Claim, Commit, Store, split_prefix

__all__ = ["PostgresStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {p}_workflows (
    n BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    entry TEXT NOT NULL,
    args TEXT NOT NULL,
    status TEXT NOT NULL,
    step BIGINT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    updated DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}_ready ON {p}_workflows (status, lease_until, updated);
CREATE TABLE IF NOT EXISTS {p}_states (
    wf TEXT NOT NULL,
    seq BIGINT NOT NULL,
    blob BYTEA NOT NULL,
    PRIMARY KEY (wf, seq)
);
"""

_ROW = "id, entry, args, status, step, error"


class PostgresStore(Store):
    """A store in one PostgreSQL database: ``postgresql://user@host:port/db[?prefix=NAME]``."""

    def __init__(self, url: str) -> None:
        bare, p = split_prefix(url)
        self.url = url
        self._p = p
        self._db = psycopg.connect(bare, autocommit=False)
        with self._db.transaction():
            # Workers starting together would race on CREATE TABLE IF NOT EXISTS.
            self._db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (p,))
            for stmt in _SCHEMA.format(p=p).split(";"):
                if stmt.strip():
                    self._db.execute(stmt)

    def _q(self, sql: str) -> Any:
        return sql.replace("{wf}", f"{self._p}_workflows").replace("{st}", f"{self._p}_states")

    def create(self, row: Row, state: bytes, now: float) -> None:
        with self._db.transaction():
            self._db.execute(
                self._q(
                    "INSERT INTO {wf} (id, entry, args, status, step, updated)"
                    " VALUES (%s, %s, %s, 'running', 0, %s)"
                ),
                (row.id, row.entry, row.args, now),
            )
            self._db.execute(self._q("INSERT INTO {st} VALUES (%s, 0, %s)"), (row.id, state))

    def claim(
        self, worker: str, now: float, lease: float, id: str | None = None, step: int = -1
    ) -> Claim | None:
        with self._db.transaction():
            if id is None:
                cur = self._db.execute(
                    self._q(
                        "UPDATE {wf} SET lease_owner = %s, lease_until = %s WHERE n = ("
                        "SELECT n FROM {wf} WHERE status = 'running' AND lease_until <= %s"
                        " ORDER BY updated LIMIT 1 FOR UPDATE SKIP LOCKED)"
                        " RETURNING id, entry, args, step"
                    ),
                    (worker, now + lease, now),
                )
            else:
                cur = self._db.execute(
                    self._q(
                        "UPDATE {wf} SET lease_owner = %s, lease_until = %s WHERE id = %s"
                        " AND step = %s AND status = 'running'"
                        " AND (lease_until <= %s OR lease_owner = %s)"
                        " RETURNING id, entry, args, step"
                    ),
                    (worker, now + lease, id, step, now, worker),
                )
            found = cur.fetchone()
        return None if found is None else Claim(*found)

    def commit(self, c: Commit, now: float) -> bool:
        with self._db.transaction():
            cur = self._db.execute(
                self._q(
                    "UPDATE {wf} SET step = %s, status = %s, error = %s, lease_until = %s,"
                    " updated = %s WHERE id = %s AND step = %s AND status = 'running'"
                ),
                (c.new_step, c.status, c.error, c.lease_until, now, c.id, c.old_step),
            )
            if cur.rowcount != 1:
                return False
            if c.state is not None:
                if c.full:
                    self._db.execute(self._q("DELETE FROM {st} WHERE wf = %s"), (c.id,))
                self._db.execute(
                    self._q(
                        "INSERT INTO {st} SELECT %s, coalesce(max(seq), -1) + 1, %s"
                        " FROM {st} WHERE wf = %s"
                    ),
                    (c.id, c.state, c.id),
                )
        return True

    def load_state(self, id: str) -> bytes:
        with self._db.transaction():
            rows = self._db.execute(
                self._q("SELECT blob FROM {st} WHERE wf = %s ORDER BY seq"), (id,)
            ).fetchall()
        return b"".join(bytes(r[0]) for r in rows)

    def get(self, id: str) -> Row | None:
        with self._db.transaction():
            r = self._db.execute(
                self._q(f"SELECT {_ROW} FROM {{wf}} WHERE id = %s"), (id,)
            ).fetchone()
        return None if r is None else Row(*r)

    def cancel(self, id: str, error: str, now: float) -> bool:
        with self._db.transaction():
            cur = self._db.execute(
                self._q(
                    "UPDATE {wf} SET status = 'failed', error = %s, updated = %s"
                    " WHERE id = %s AND status = 'running'"
                ),
                (error, now, id),
            )
        return cur.rowcount == 1

    def list(self) -> builtins.list[Row]:
        with self._db.transaction():
            rows = self._db.execute(self._q(f"SELECT {_ROW} FROM {{wf}} ORDER BY n")).fetchall()
        return [Row(*r) for r in rows]

    def stale(self, now: float, older_than: float) -> builtins.list[tuple[str, int]]:
        with self._db.transaction():
            rows = self._db.execute(
                self._q(
                    "UPDATE {wf} SET updated = %s WHERE status = 'running'"
                    " AND lease_until <= %s AND updated <= %s RETURNING id, step"
                ),
                (now, now, now - older_than),
            ).fetchall()
        return [(i, int(s)) for i, s in rows]

    def renew(self, id: str, step: int, worker: str, lease_until: float) -> bool:
        with self._db.transaction():
            cur = self._db.execute(
                self._q(
                    "UPDATE {wf} SET lease_until = %s WHERE id = %s AND step = %s"
                    " AND lease_owner = %s AND status = 'running'"
                ),
                (lease_until, id, step, worker),
            )
        return cur.rowcount == 1

    def count_running(self) -> int:
        with self._db.transaction():
            row = self._db.execute(
                self._q("SELECT count(*) FROM {wf} WHERE status = 'running'")
            ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._db.close()
