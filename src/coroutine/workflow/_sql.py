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
from typing import Any

from . import _queues, _schedule
from ._dialects import Dialect
from ._errors import StoreDamagedError, WorkflowError
from ._records import Row
from ._sql_waits import FENCE as _FENCE
from ._sql_waits import WAITS_SCHEMA, WAITS_SQL, SQLWaits
from ._store import Claim, Commit, Store, StoreURL, chain

__all__ = ["SQLStore"]

# 3: queues, time limits, schedules (`_queues`, `_schedule`) and waits (`_sql_waits`)
SCHEMA_VERSION = 3

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
    chain {blob} NOT NULL,
    -- queues and time limits (`_queues`), from schema 3
    queue TEXT NOT NULL DEFAULT '',
    deadline {real} NOT NULL DEFAULT 0
)""",
    # Covering what a claim checks of each ready row it passes (`_queues.SLOT`): read from
    # the index alone.
    "CREATE INDEX IF NOT EXISTS {p}_due ON {p}_workflows (due, queue, owner, deadline)"
    " WHERE status = 'running'",
    "CREATE INDEX IF NOT EXISTS {p}_owner ON {p}_workflows (owner) WHERE owner <> ''",
    """CREATE TABLE IF NOT EXISTS {p}_states (
    k {counter},
    wf TEXT NOT NULL,
    seq {int} NOT NULL,
    blob {blob} NOT NULL,
    steps TEXT NOT NULL DEFAULT '',
    UNIQUE (wf, seq)
)""",
    """CREATE TABLE IF NOT EXISTS {p}_workers (
    n {serial},
    owner TEXT NOT NULL UNIQUE,
    started {real} NOT NULL
)""",
    "CREATE TABLE IF NOT EXISTS {p}_meta (k TEXT PRIMARY KEY, v {int} NOT NULL)",
    # --- waits (`_sql_waits`): waits, messages, events ---
    *WAITS_SCHEMA,
    # ---
    f"INSERT INTO {{p}}_meta VALUES ('schema', {SCHEMA_VERSION}) ON CONFLICT (k) DO NOTHING",
    # --- schema 3: queues and schedules (`_queues`, `_schedule`) ---
    *_queues.SQL_SCHEMA,
    *_schedule.SQL_SCHEMA,
]

_ROW = "id, entry, args, status, step, error, created, updated, last_error, owner, queue, deadline"
_CLAIMED = "RETURNING id, entry, args, step, owner, fence, chain, queue, deadline"
_SQL = {
    "schema": "SELECT v FROM {p}_meta WHERE k = 'schema'",
    "count": "SELECT coalesce(max(k), 0) FROM {p}_states",
    "create": "INSERT INTO {p}_workflows (id, entry, args, status, step, due, created, updated,"
    " chain, queue, deadline) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO NOTHING",
    "create_state": "INSERT INTO {p}_states (wf, seq, blob, steps) VALUES (?, 0, ?, ?)",
    "discard": "DELETE FROM {p}_workflows WHERE id = ? AND step = 0 AND owner = ''"
    " AND status = 'running'",
    # Its states stay, emptied, as tombstones: a state's key is never reused (`_sqlite_file`).
    "drop_states": "UPDATE {p}_states SET wf = '', seq = -k, blob = ?, steps = '' WHERE wf = ?",
    "claim_next": "UPDATE {p}_workflows SET owner = ?, fence = fence + 1, due = ? WHERE n = ("
    "SELECT n FROM {p}_workflows w WHERE status = 'running' AND due <= ? AND {slot}"
    " ORDER BY due LIMIT 1{skip_locked}) " + _CLAIMED,
    "claim_id": "UPDATE {p}_workflows AS w SET owner = ?, fence = fence + 1, due = ? WHERE"
    " id = ? AND step = ? AND status = 'running' AND due <= ? AND {slot} " + _CLAIMED,
    "commit": "UPDATE {p}_workflows SET step = ?, status = ?, error = ?, owner = '', due = ?,"
    " updated = ?, chain = ?, last_error = '' WHERE " + _FENCE,
    "commit_keep": "UPDATE {p}_workflows SET step = ?, due = ?, updated = ?, chain = ?,"
    " last_error = '' WHERE " + _FENCE,
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
    "running": "SELECT count(*) FROM {p}_workflows WHERE status = 'running'",
    "join": "INSERT INTO {p}_workers (owner, started) VALUES (?, ?) RETURNING n",
    "workers": "SELECT owner, n FROM {p}_workers",
    "free_owner": "UPDATE {p}_workflows SET owner = '', due = 0 WHERE owner = ?"
    " AND status = 'running'",
    "leave": "DELETE FROM {p}_workers WHERE owner = ?",
    **WAITS_SQL,  # waits (`_sql_waits`)
    "locks": "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND objsubid = 2 AND classid = CAST(? AS bigint)::oid"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    # --- queues and schedules (`_queues`, `_schedule`) ---
    **_queues.SQL,
    **_schedule.SQL,
}


class _Tx:
    """One write transaction of `store` (on SQLite, holding the write lock from its start),
    as a context manager; `stored` is the cursor of a state it stored, if any (SQLite counts
    those: `_sqlite_file`). With `single` (one statement, no state), no transaction where the
    dialect needs none. A class, not a generator: it is on every step's path."""

    def __init__(self, store: SQLStore, single: bool = False) -> None:
        self.d = store._d
        self.d.check()
        self.db = store._db
        self.stored: Any = None
        self.bare = single and self.d.single_is_atomic

    def __enter__(self) -> _Tx:
        if not self.bare:
            self._do(self.d.begin)
        return self

    def _do(self, sql: str) -> None:
        try:
            self.db.execute(sql)
        except Exception as exc:
            damage = self.d.damaged(exc)
            if damage is not None:
                raise damage from exc
            raise

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if self.bare:
            return
        if exc is None:
            try:
                seq = self.d.counted(self.stored) if self.stored is not None else 0
            except BaseException:
                self._do("ROLLBACK")
                raise
            self._do("COMMIT")
            if seq:
                self.d.written(seq)
            return
        self._do("ROLLBACK")
        damage = self.d.damaged(exc)
        if damage is not None:
            raise damage from exc


class SQLStore(SQLWaits, _queues.QueueSQL, _schedule.ScheduleSQL, Store):
    """A store in one SQLite file or PostgreSQL database, as `dialect` says."""

    def __init__(self, url: StoreURL, dialect: Dialect) -> None:
        self.url = url.url
        self._d = dialect
        self._q = {k: dialect.sql(v.replace("{skip_locked}", dialect.skip_locked)
                                  .replace("{slot}", _queues.SLOT))
                   for k, v in _SQL.items()}  # fmt: skip
        self._local = threading.local()
        self._conns: dict[threading.Thread, Any] = {}  # every open connection, by thread
        self._lock = threading.Lock()  # guards _conns
        self._owner = ""  # set by join
        try:
            self._open(url)
        except BaseException:
            self.close()
            raise

    def _open(self, url: StoreURL) -> None:
        """Create the tables if need be; check they are this version's and undamaged."""
        db, d = self._db, self._d
        try:
            d.prepare(db, [d.sql(s) for s in _SCHEMA])
            (version,) = db.execute(self._q["schema"]).fetchone()
        except Exception as exc:
            damage = d.damaged(exc)
            if damage is not None:
                raise damage from exc
            for column, since in (("fence", 2), ("queue", 3)):  # columns older tables lack
                try:
                    db.execute(d.sql(f"SELECT {column} FROM {{p}}_workflows WHERE 0 = 1"))
                except Exception as old:
                    version = f"older than {since} ({old})"
                    break
            else:
                raise
        if version != SCHEMA_VERSION:
            raise WorkflowError(
                f"the tables of {url.url!r} (prefix {url.prefix!r}) have schema version "
                f"{version}, and this coroutine.workflow reads version {SCHEMA_VERSION}; "
                "finish their workflows with the version that made them, or choose another "
                "prefix or file"
            )
        d.opened(db, self._q["count"])

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

    def _write(self, single: bool = False) -> _Tx:
        return _Tx(self, single)

    def _read(self, key: str, args: tuple[Any, ...] = ()) -> builtins.list[Any]:
        try:
            return list(self._db.execute(self._q[key], args).fetchall())
        except Exception as exc:
            damage = self._d.damaged(exc)
            if damage is not None:
                raise damage from exc
            raise

    def create(self, row: Row, state: bytes, now: float, steps: str | None = None) -> Row | None:
        with self._write() as tx:
            args = (row.id, row.entry, row.args, row.step, now, now, now, chain(b"", state),
                    row.queue, row.deadline)  # fmt: skip
            if tx.db.execute(self._q["create"], args).rowcount != 1:
                return self.get(row.id)
            first = (row.id, state, steps or "")
            tx.stored = tx.db.execute(self._q["create_state"], first)
        return None

    def discard(self, id: str) -> bool:
        with self._write() as tx:
            if tx.db.execute(self._q["discard"], (id,)).rowcount != 1:
                return False
            tx.db.execute(self._q["drop_states"], (b"", id))
        return True

    def claim(
        self, owner: str, now: float, lease: float, id: str | None = None, step: int = -1
    ) -> Claim | None:
        args: tuple[Any, ...]
        if id is None:
            if not self._read("claimable", (now,)):
                return None  # nothing ready: a read, so idle workers take no write lock
            sql, args = self._q["claim_next"], (owner, now + lease, now, now)
        else:
            sql, args = self._q["claim_id"], (owner, now + lease, id, step, now, now)
        with self._write(single=id is not None) as tx:
            if id is None:
                self.tidy(tx.db, now)  # full queues' waiting rows out of the walk (`_queues`)
            r = tx.db.execute(sql, args).fetchone()
        if r is None:
            return None
        c = Claim(r[0], r[1], r[2], int(r[3]), r[4], int(r[5]), self._d.blob(r[6]), r[7], r[8])
        if c.queue and self._d.concurrent_claims and not self.confirm_slot(c):
            return None  # the queue was full after all (`_queues`)
        return c

    def commit(self, c: Commit, now: float) -> bool:
        k = c.claim
        fence = (k.id, k.owner, k.fence)
        args: tuple[Any, ...]
        if c.keep_until > 0 and c.status == "running":  # the claim goes on: owner unchanged
            sql, args = self._q["commit_keep"], (c.step, c.keep_until, now, c.chain, *fence)
        else:
            sql, args = self._q["commit"], (c.step, c.status, c.error, now, now, c.chain, *fence)
        with self._write() as tx:
            if tx.db.execute(sql, args).rowcount != 1:
                return False
            if c.state is not None:
                append = (k.id, c.state, c.steps, k.id)
                tx.stored = tx.db.execute(self._q["append_state"], append)
            if c.status != "running":  # what it waited for, if no supervisor cleared it
                tx.db.execute(self._q["unwait"], (k.id,))
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
            if tx.db.execute(self._q["cancel"], (error, now, id)).rowcount != 1:
                return False
            tx.db.execute(self._q["unwait"], (id,))
        return True

    def list(self) -> builtins.list[Row]:
        return [Row(*r) for r in self._read("list")]

    def stale(self, now: float, older_than: float) -> builtins.list[tuple[str, int, str]]:
        with self._write() as tx:
            # Rows parked by plain workers' claims come back here too (Celery's claims are
            # by id: they park nothing, and a parked row's message would be dropped).
            self.tidy(tx.db, now, park=False)
            rows = tx.db.execute(self._q["stale_held"], (now, now)).fetchall()
            rows += tx.db.execute(self._q["stale_free"], (now, now - older_than)).fetchall()
        return [(i, int(s), e) for i, s, e in rows]

    def count_running(self) -> int:
        return int(self._read("running")[0][0])

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
