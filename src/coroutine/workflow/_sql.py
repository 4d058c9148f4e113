"""The SQL store: one implementation for SQLite and PostgreSQL, its dialect in `_dialects`.

Theory of operation (the contract is `_store`'s). Every change is one transaction (SQLite:
``BEGIN IMMEDIATE``, which takes the write lock before reading; PostgreSQL: READ COMMITTED,
where a concurrent change of the same row makes the second re-check it and update nothing).
A fenced change (`commit`, `renew`, `release`) updates the row only ``WHERE owner = ? AND
fence = ?``, and `commit` appends the state in the same transaction, so a step's state and
its row move together or not at all. `claim` is one ``UPDATE ... RETURNING`` of the running
row with the smallest ``due`` not in the future, found through a partial index on ``due``
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so it costs the same however many are queued.

Tables, named after the store's prefix (``?prefix=NAME``, default ``cw``): ``P_workflows``
(one row per workflow), ``P_states`` (append-only: the full state, then one delta per
commit, each with the activity calls it answers), ``P_workers`` (the worker processes that
joined: their liveness is the dialect's) and ``P_meta`` (the schema version; SQLite's
commit count). Connections are per thread, so one store serves a process's threads.
"""

from __future__ import annotations

import builtins
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from ._dialects import Dialect
from ._errors import StoreDamagedError, WorkflowError
from ._records import Row
from ._store import Claim, Commit, Store, StoreURL, chain

__all__ = ["SQLStore"]

SCHEMA_VERSION = 2

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS {p}_workflows (
    n {serial},
    id TEXT NOT NULL UNIQUE,
    entry TEXT NOT NULL,
    args TEXT NOT NULL,
    status TEXT NOT NULL,
    step {int} NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT '',
    fence {int} NOT NULL DEFAULT 0,
    due {real} NOT NULL,
    created {real} NOT NULL,
    updated {real} NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    chain {blob} NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS {p}_due ON {p}_workflows (due) WHERE status = 'running'",
    "CREATE INDEX IF NOT EXISTS {p}_owner ON {p}_workflows (owner) WHERE owner <> ''",
    """CREATE TABLE IF NOT EXISTS {p}_states (
    wf TEXT NOT NULL,
    seq {int} NOT NULL,
    blob {blob} NOT NULL,
    steps TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (wf, seq)
)""",
    """CREATE TABLE IF NOT EXISTS {p}_workers (
    n {serial},
    owner TEXT NOT NULL UNIQUE,
    started {real} NOT NULL
)""",
    "CREATE TABLE IF NOT EXISTS {p}_meta (k TEXT PRIMARY KEY, v {int} NOT NULL)",
    f"INSERT INTO {{p}}_meta VALUES ('schema', {SCHEMA_VERSION}) ON CONFLICT (k) DO NOTHING",
    "INSERT INTO {p}_meta VALUES ('seq', 0) ON CONFLICT (k) DO NOTHING",
]

_ROW = "id, entry, args, status, step, error, created, updated, last_error, owner"
_CLAIMED = "RETURNING id, entry, args, step, owner, fence, chain"
_FENCE = "id = ? AND owner = ? AND fence = ? AND status = 'running'"

_SQL = {
    "schema": "SELECT v FROM {p}_meta WHERE k = 'schema'",
    "seq": "SELECT v FROM {p}_meta WHERE k = 'seq'",
    "bump": "UPDATE {p}_meta SET v = v + 1 WHERE k = 'seq' RETURNING v",
    "ready": "SELECT 1 FROM {p}_workflows WHERE status = 'running' AND due <= ? LIMIT 1",
    "create": "INSERT INTO {p}_workflows (id, entry, args, status, step, due, created, updated,"
    " chain) VALUES (?, ?, ?, 'running', 0, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
    "create_state": "INSERT INTO {p}_states (wf, seq, blob) VALUES (?, 0, ?)",
    "discard": "DELETE FROM {p}_workflows WHERE id = ? AND step = 0 AND owner = ''"
    " AND status = 'running'",
    "drop_states": "DELETE FROM {p}_states WHERE wf = ?",
    "claim_next": "UPDATE {p}_workflows SET owner = ?, fence = fence + 1, due = ? WHERE n = ("
    "SELECT n FROM {p}_workflows WHERE status = 'running' AND due <= ?"
    " ORDER BY due LIMIT 1{skip_locked}) " + _CLAIMED,
    "claim_id": "UPDATE {p}_workflows SET owner = ?, fence = fence + 1, due = ? WHERE id = ?"
    " AND step = ? AND status = 'running' AND due <= ? " + _CLAIMED,
    "commit": "UPDATE {p}_workflows SET step = ?, status = ?, error = ?, owner = ?, due = ?,"
    " updated = ?, chain = ?, last_error = '' WHERE " + _FENCE,
    "append_state": "INSERT INTO {p}_states (wf, seq, blob, steps)"
    " SELECT ?, coalesce(max(seq), -1) + 1, ?, ? FROM {p}_states WHERE wf = ?",
    "renew": "UPDATE {p}_workflows SET due = ? WHERE " + _FENCE,
    "release": "UPDATE {p}_workflows SET owner = '', due = ?, last_error = ? WHERE " + _FENCE,
    "load": "SELECT blob FROM {p}_states WHERE wf = ? ORDER BY seq",
    "chain": "SELECT chain FROM {p}_workflows WHERE id = ?",
    "steps": "SELECT steps FROM {p}_states WHERE wf = ? AND steps <> '' ORDER BY seq",
    "get": f"SELECT {_ROW} FROM {{p}}_workflows WHERE id = ?",
    "cancel": "UPDATE {p}_workflows SET status = 'failed', error = ?, owner = '', updated = ?"
    " WHERE id = ? AND status = 'running'",
    "list": f"SELECT {_ROW} FROM {{p}}_workflows ORDER BY n",
    "stale_free": "UPDATE {p}_workflows SET due = ? WHERE n IN (SELECT n FROM {p}_workflows"
    " WHERE status = 'running' AND due <= ? AND owner = '' ORDER BY due LIMIT 500)"
    " RETURNING id, step, last_error",
    "stale_held": "UPDATE {p}_workflows SET owner = '', due = ? WHERE owner <> ''"
    " AND status = 'running' AND due <= ? RETURNING id, step, last_error",
    "count": "SELECT count(*) FROM {p}_workflows WHERE status = 'running'",
    "join": "INSERT INTO {p}_workers (owner, started) VALUES (?, ?) RETURNING n",
    "workers": "SELECT owner, n FROM {p}_workers",
    "free_owner": "UPDATE {p}_workflows SET owner = '', due = 0 WHERE owner = ?"
    " AND status = 'running'",
    "leave": "DELETE FROM {p}_workers WHERE owner = ?",
    "locks": "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND objsubid = 2 AND classid = CAST(? AS bigint)::oid"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
}


class _Tx:
    """An open write transaction: `changed` says a workflow changed (SQLite counts it)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.changed = False


class SQLStore(Store):
    """A store in one SQLite file or PostgreSQL database, as `dialect` says."""

    def __init__(self, url: StoreURL, dialect: Dialect) -> None:
        self.url = url.url
        self._d = dialect
        self._q = {k: dialect.sql(v.replace("{skip_locked}", dialect.skip_locked))
                   for k, v in _SQL.items()}  # fmt: skip
        self._local = threading.local()
        self._conns: dict[threading.Thread, Any] = {}  # every open connection, by thread
        self._lock = threading.Lock()  # guards _conns
        self._owner = ""  # set by join
        db = self._db
        try:
            dialect.prepare(db, [dialect.sql(s) for s in _SCHEMA])
            version = db.execute(self._q["schema"]).fetchone()
            db.execute(dialect.sql("SELECT fence, chain FROM {p}_workflows WHERE 0 = 1"))
        except Exception as exc:
            self.close()
            damage = dialect.damaged(exc)
            if damage is not None:
                raise damage from exc
            raise WorkflowError(
                f"the tables of {url.url!r} (prefix {url.prefix!r}) were not made by this "
                f"version of coroutine.workflow ({exc}); finish their workflows with the "
                "version that made them, or choose another prefix or file"
            ) from exc
        try:
            if version is None or int(version[0]) != SCHEMA_VERSION:
                raise WorkflowError(
                    f"the store {url.url!r} has schema version {version and version[0]}, and "
                    f"this coroutine.workflow reads version {SCHEMA_VERSION}; use the version "
                    "that made it"
                )
            dialect.opened(db, self._q["seq"])
        except BaseException:
            self.close()
            raise

    @property
    def _db(self) -> Any:
        """This thread's connection (opened on first use; those of ended threads closed)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._d.connect()
            with self._lock:
                for t in [t for t in self._conns if not t.is_alive()]:
                    self._conns.pop(t).close()
                self._conns[threading.current_thread()] = db
        return db

    @contextlib.contextmanager
    def _write(self, single: bool = False) -> Iterator[_Tx]:
        """One write transaction (on SQLite, holding the write lock from its start); with
        `single` (one statement that counts no change), none where the dialect needs none."""
        self._d.check()
        tx = _Tx(self._db)
        if single and self._d.single_is_atomic:
            yield tx
            return
        seq = 0
        try:
            tx.db.execute(self._d.begin)
            try:
                yield tx
                if tx.changed:
                    seq = self._d.bump(tx.db, self._q["bump"])
            except BaseException:
                tx.db.execute("ROLLBACK")
                raise
            tx.db.execute("COMMIT")
        except Exception as exc:
            damage = self._d.damaged(exc)
            if damage is not None:
                raise damage from exc
            raise
        if seq:
            self._d.written(seq)

    def _read(self, key: str, args: tuple[Any, ...] = ()) -> builtins.list[Any]:
        try:
            return list(self._db.execute(self._q[key], args).fetchall())
        except Exception as exc:
            damage = self._d.damaged(exc)
            if damage is not None:
                raise damage from exc
            raise

    def create(self, row: Row, state: bytes, now: float) -> Row | None:
        with self._write() as tx:
            args = (row.id, row.entry, row.args, now, now, now, chain(b"", state))
            if tx.db.execute(self._q["create"], args).rowcount != 1:
                return self.get(row.id)
            tx.db.execute(self._q["create_state"], (row.id, state))
            tx.changed = True
        return None

    def discard(self, id: str) -> bool:
        with self._write() as tx:
            if tx.db.execute(self._q["discard"], (id,)).rowcount != 1:
                return False
            tx.db.execute(self._q["drop_states"], (id,))
            tx.changed = True
        return True

    def claim(
        self, owner: str, now: float, lease: float, id: str | None = None, step: int = -1
    ) -> Claim | None:
        args: tuple[Any, ...]
        if id is None:
            if not self._read("ready", (now,)):
                return None  # nothing ready: a read, so idle workers take no write lock
            sql, args = self._q["claim_next"], (owner, now + lease, now)
        else:
            sql, args = self._q["claim_id"], (owner, now + lease, id, step, now)
        with self._write(single=True) as tx:
            r = tx.db.execute(sql, args).fetchone()
        if r is None:
            return None
        return Claim(r[0], r[1], r[2], int(r[3]), r[4], int(r[5]), self._d.blob(r[6]))

    def commit(self, c: Commit, now: float) -> bool:
        k = c.claim
        keep = c.keep_until > 0 and c.status == "running"
        owner, due = (k.owner, c.keep_until) if keep else ("", now)
        args = (c.step, c.status, c.error, owner, due, now, c.chain, k.id, k.owner, k.fence)
        with self._write() as tx:
            if tx.db.execute(self._q["commit"], args).rowcount != 1:
                return False
            if c.state is not None:
                tx.db.execute(self._q["append_state"], (k.id, c.state, c.steps, k.id))
            tx.changed = True
        return True

    def renew(self, claim: Claim, until: float) -> bool:
        with self._write(single=True) as tx:
            args = (until, claim.id, claim.owner, claim.fence)
            return bool(tx.db.execute(self._q["renew"], args).rowcount == 1)

    def release(self, claim: Claim, due: float, last_error: str) -> bool:
        with self._write(single=True) as tx:
            args = (due, last_error, claim.id, claim.owner, claim.fence)
            return bool(tx.db.execute(self._q["release"], args).rowcount == 1)

    def load_state(self, id: str) -> bytes:
        with self._write() as tx:  # one snapshot of the row and its states
            (kept,) = tx.db.execute(self._q["chain"], (id,)).fetchone() or (b"",)
            blobs = [self._d.blob(r[0]) for r in tx.db.execute(self._q["load"], (id,))]
        sum = b""
        for b in blobs:
            sum = chain(sum, b)
        if sum != self._d.blob(kept):
            raise StoreDamagedError(
                f"the stored states of workflow {id!r} do not match their checksum ({len(blobs)}"
                " states): the store was damaged or edited; restore it from a backup"
            )
        return b"".join(blobs)

    def steps(self, id: str) -> builtins.list[str]:
        return [r[0] for r in self._read("steps", (id,))]

    def get(self, id: str) -> Row | None:
        rows = self._read("get", (id,))
        return Row(*rows[0]) if rows else None

    def cancel(self, id: str, error: str, now: float) -> bool:
        with self._write() as tx:
            tx.changed = tx.db.execute(self._q["cancel"], (error, now, id)).rowcount == 1
        return tx.changed

    def list(self) -> builtins.list[Row]:
        return [Row(*r) for r in self._read("list")]

    def stale(self, now: float, older_than: float) -> builtins.list[tuple[str, int, str]]:
        with self._write() as tx:
            rows = tx.db.execute(self._q["stale_held"], (now, now)).fetchall()
            rows += tx.db.execute(self._q["stale_free"], (now, now - older_than)).fetchall()
        return [(i, int(s), e) for i, s, e in rows]

    def count_running(self) -> int:
        return int(self._read("count")[0][0])

    def join(self, owner: str) -> None:
        now = time.time()
        if not self._d.hold(owner, self._q["join"], now):
            with self._write() as tx:
                tx.db.execute(self._q["join"], (owner, now)).fetchone()
        self._owner = owner

    def reap(self, now: float) -> int:
        workers = [(o, int(n)) for o, n in self._read("workers") if o != self._owner]
        if not workers:
            return 0
        freed = 0
        for owner in self._d.dead(self._db, workers, self._q["locks"]):
            with self._write() as tx:
                freed += tx.db.execute(self._q["free_owner"], (owner,)).rowcount
                tx.db.execute(self._q["leave"], (owner,))
            self._d.forget(owner)
        return freed

    def close(self) -> None:
        if self._owner:
            with contextlib.suppress(Exception):
                with self._write() as tx:
                    tx.db.execute(self._q["free_owner"], (self._owner,))
                    tx.db.execute(self._q["leave"], (self._owner,))
        self._d.close(self._owner)
        self._owner = ""
        with self._lock:
            for db in self._conns.values():
                db.close()
            self._conns.clear()
        self._local = threading.local()
