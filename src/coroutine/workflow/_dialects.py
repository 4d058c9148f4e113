"""What differs between SQLite and PostgreSQL for the SQL store: every difference, here.

`_sql.SQLStore` writes its statements once, with ``?`` placeholders and ``{type}`` names; a
`Dialect` says how to connect, how to spell types and placeholders, how a write transaction
begins (SQLite takes its write lock with ``BEGIN IMMEDIATE``), what the claim's select adds
(PostgreSQL's ``FOR UPDATE SKIP LOCKED``, so concurrent claimers take different rows instead
of queueing on one), how a worker process shows it is alive, and how damage is noticed.

Liveness. SQLite: a lock file per worker process (`_sqlite_file`). PostgreSQL: a
session-level advisory lock, ``(hash of the prefix, the worker's number)``, held by a
connection the worker keeps open for nothing else; the server drops it when that connection
ends, which the process's death ends at once. A claimer reads ``pg_locks`` to see which
registered workers no longer hold theirs.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from typing import Any, ClassVar

from ._errors import StoreDamagedError, WorkflowError
from ._sqlite_file import SQLiteFile

__all__ = ["Dialect", "Postgres", "SQLite", "dialect_for"]


class Dialect:
    """The SQL spelling, connections, liveness and damage checks of one database kind."""

    begin = "BEGIN"  # starts a write transaction
    single_is_atomic = False  # a lone statement needs no BEGIN ... COMMIT around it
    skip_locked = ""  # appended to the claim's row selection
    concurrent_claims = False  # claims may interleave (then `_queues` confirms queue slots)
    types: ClassVar[dict[str, str]] = {}

    def __init__(self, target: str, prefix: str) -> None:
        self.target, self.prefix = target, prefix

    def connect(self) -> Any:
        """A new connection in autocommit mode (transactions are explicit), for any thread."""
        raise NotImplementedError

    def sql(self, text: str) -> str:
        """`text` in this dialect: tables named for the prefix, types spelled."""
        return text.format(p=self.prefix, **self.types)

    def prepare(self, db: Any, schema: list[str]) -> None:
        """Create the tables (idempotent), safely against other processes doing the same."""
        db.execute(self.begin)
        try:
            self._exclusive(db)
            for stmt in schema:
                db.execute(stmt)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _exclusive(self, db: Any) -> None:
        """Inside `prepare`'s transaction: keep other processes out until it commits."""

    def blob(self, value: Any) -> bytes:
        return bytes(value)

    # Damage: only SQLite checks (a server database has its own guarantees).
    def opened(self, db: Any, count_sql: str) -> None:
        """Check the store once it is opened and prepared."""

    def check(self) -> None:
        """Before each change: raise `StoreDamagedError` if the store is no longer there."""

    def counted(self, stored: Any) -> int:
        """Inside a transaction that stored a state (`stored`: the insert's cursor): the
        store's count of states stored so far, checked (0: not counted)."""
        return 0

    def written(self, seq: int) -> None:
        """After the transaction `counted` counted has committed."""

    def damaged(self, exc: BaseException) -> StoreDamagedError | None:
        """The damage a driver error reports, if it reports damage."""
        return None

    # Liveness.
    def hold(self, owner: str, join_sql: str, now: float) -> bool:
        """Make `owner`'s liveness lock; True if it also registered the worker's row."""
        raise NotImplementedError

    def dead(self, db: Any, workers: list[tuple[str, int]], classid_sql: str) -> list[str]:
        """Which of the registered (owner, number) pairs are gone."""
        raise NotImplementedError

    def forget(self, owner: str) -> None:
        """After a dead worker's claims were freed and its row deleted."""

    def close(self, owner: str) -> None:
        """The store is closing: give up this process's liveness lock (if `owner`)."""


class SQLite(Dialect):
    """One file, WAL mode, ``synchronous=NORMAL``: a commit survives a killed process."""

    begin = "BEGIN IMMEDIATE"  # the write lock before the first read: no lost update
    types: ClassVar[dict[str, str]] = {
        "serial": "INTEGER PRIMARY KEY",
        # The rowid, one more than the largest: the store's count of states (`_sqlite_file`).
        "counter": "INTEGER PRIMARY KEY",
        "real": "REAL",
        "int": "INTEGER",
        "blob": "BLOB",
    }
    _CORRUPT = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB

    def __init__(self, target: str, prefix: str) -> None:
        if sqlite3.sqlite_version_info < (3, 35):
            raise WorkflowError(
                f"the SQLite store needs SQLite 3.35 or later (for RETURNING); this Python has "
                f"{sqlite3.sqlite_version}: use a Python built with a newer SQLite"
            )
        super().__init__(target, prefix)
        self.file = SQLiteFile(target, prefix)

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.target, isolation_level=None, timeout=60.0, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def opened(self, db: Any, count_sql: str) -> None:
        self.file.opened(db, count_sql)

    def check(self) -> None:
        self.file.check()

    def counted(self, stored: Any) -> int:
        return self.file.counted(int(stored.lastrowid))

    def written(self, seq: int) -> None:
        self.file.written(seq)

    def damaged(self, exc: BaseException) -> StoreDamagedError | None:
        if not isinstance(exc, sqlite3.DatabaseError):
            return None
        code = getattr(exc, "sqlite_errorcode", None)  # 3.11+
        text = str(exc)
        if (code is not None and code & 0xFF in self._CORRUPT) or (
            code is None and ("malformed" in text or "not a database" in text)
        ):
            return StoreDamagedError(
                f"the SQLite store {self.file.path} is damaged ({text}); restore it from a "
                f"backup, or move it and {self.file.dir} away to start an empty store"
            )
        return None

    def hold(self, owner: str, join_sql: str, now: float) -> bool:
        self.file.lock(owner)  # before the row: a reaper never sees a row without its lock
        return False

    def dead(self, db: Any, workers: list[tuple[str, int]], classid_sql: str) -> list[str]:
        return self.file.dead([owner for owner, _ in workers])

    def forget(self, owner: str) -> None:
        self.file.forget(owner)

    def close(self, owner: str) -> None:
        self.file.close(owner)


class Postgres(Dialect):
    """One database shared by workers on many machines."""

    skip_locked = " FOR UPDATE SKIP LOCKED"
    concurrent_claims = True  # queue slots are confirmed after the claim (`_queues`)
    single_is_atomic = True  # (SQLite's lone UPDATE could not wait for the write lock)
    types: ClassVar[dict[str, str]] = {
        "serial": "BIGSERIAL PRIMARY KEY",
        "counter": "BIGSERIAL PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "int": "BIGINT",
        "blob": "BYTEA",
    }

    def __init__(self, target: str, prefix: str) -> None:
        super().__init__(target, prefix)
        # The first key of this store's advisory locks: the prefix's hash, as a positive int4.
        self.classid = zlib.crc32(prefix.encode()) & 0x7FFFFFFF
        self._presence: Any = None  # the connection holding this process's lock, once joined
        self._lock = threading.Lock()

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.target, autocommit=True)

    def sql(self, text: str) -> str:
        return super().sql(text).replace("?", "%s")

    def _exclusive(self, db: Any) -> None:
        # Workers starting together would race on CREATE TABLE IF NOT EXISTS.
        db.execute("SELECT pg_advisory_xact_lock(%s, 0)", (self.classid,))

    def hold(self, owner: str, join_sql: str, now: float) -> bool:
        with self._lock:
            db = self._presence = self._presence or self.connect()
            db.execute("BEGIN")  # the row appears only once its lock is held
            (n,) = db.execute(join_sql, (owner, now)).fetchone()
            db.execute("SELECT pg_advisory_lock(%s, %s)", (self.classid, int(n)))
            db.execute("COMMIT")
        return True

    def dead(self, db: Any, workers: list[tuple[str, int]], classid_sql: str) -> list[str]:
        held = {int(k) for (k,) in db.execute(classid_sql, (self.classid,)).fetchall()}
        return [owner for owner, n in workers if n not in held]

    def close(self, owner: str) -> None:
        with self._lock:
            if self._presence is not None:
                self._presence.close()  # the lock goes with the session
                self._presence = None


def dialect_for(kind: str, target: str, prefix: str) -> Dialect:
    """The dialect of a store URL's kind, ``"sqlite"`` or ``"postgresql"``."""
    return SQLite(target, prefix) if kind == "sqlite" else Postgres(target, prefix)
