"""What differs between SQLite and PostgreSQL for the SQL store: every difference, here.

`_sql.SQLStore` writes its statements once, with ``?`` placeholders and ``{type}`` names;
a `Dialect` says how to connect, how to spell the types and placeholders, how a write
transaction begins (SQLite takes its write lock with ``BEGIN IMMEDIATE``), and what the
claim's select adds (PostgreSQL's ``FOR UPDATE SKIP LOCKED``, so that concurrent claimers
take different rows instead of queueing on one).
"""

from __future__ import annotations

import sqlite3
from typing import Any, ClassVar

__all__ = ["Dialect", "Postgres", "SQLite", "dialect_for"]


class Dialect:
    """The SQL spelling and connection handling of one database kind."""

    name = ""
    begin = "BEGIN"  # starts a write transaction
    skip_locked = ""  # appended to the claim's row selection
    types: ClassVar[dict[str, str]] = {}

    def connect(self, target: str) -> Any:
        """A connection in autocommit mode: transactions are explicit ``begin`` ... COMMIT."""
        raise NotImplementedError

    def sql(self, text: str, prefix: str) -> str:
        """`text` in this dialect: tables named for `prefix`, types and placeholders spelled."""
        text = text.format(p=prefix, **self.types)
        return text

    def prepare(self, db: Any, schema: list[str]) -> None:
        """Create the tables (idempotent), safely against other processes doing the same."""
        for stmt in schema:
            db.execute(stmt)

    def blob(self, value: Any) -> bytes:
        return bytes(value)


class SQLite(Dialect):
    """One file, WAL mode, ``synchronous=NORMAL``: a commit survives a killed process."""

    name = "sqlite"
    begin = "BEGIN IMMEDIATE"  # the write lock before the first read: no lost update
    types: ClassVar[dict[str, str]] = {
        "serial": "INTEGER PRIMARY KEY",
        "real": "REAL",
        "int": "INTEGER",
        "blob": "BLOB",
    }

    def connect(self, target: str) -> sqlite3.Connection:
        db = sqlite3.connect(target, isolation_level=None, timeout=60.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def prepare(self, db: Any, schema: list[str]) -> None:
        db.execute(self.begin)  # one writer at a time creates the tables
        try:
            super().prepare(db, schema)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class Postgres(Dialect):
    """One database shared by workers on many machines."""

    name = "postgresql"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    types: ClassVar[dict[str, str]] = {
        "serial": "BIGSERIAL PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "int": "BIGINT",
        "blob": "BYTEA",
    }

    def connect(self, target: str) -> Any:
        import psycopg

        return psycopg.connect(target, autocommit=True)

    def sql(self, text: str, prefix: str) -> str:
        return super().sql(text, prefix).replace("?", "%s")

    def prepare(self, db: Any, schema: list[str]) -> None:
        with db.transaction():
            # Workers starting together would race on CREATE TABLE IF NOT EXISTS.
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (schema[0],))
            super().prepare(db, schema)


def dialect_for(kind: str) -> Dialect:
    """The dialect of a store URL's kind, ``"sqlite"`` or ``"postgresql"``."""
    return SQLite() if kind == "sqlite" else Postgres()
