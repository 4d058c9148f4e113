"""DBOS's side of ``bench_workflow --dbos``: the same two workloads, in one process.

    python -m benchmarks.dbos_side CONFIG STEPS WORKFLOWS

CONFIG is ``sqlite`` (DBOS's own SQLite engine: rollback journal, default ``synchronous``,
an fsync per commit), ``sqlite-wal`` (the same plus ``journal_mode=WAL`` and
``synchronous=NORMAL``: the durability of our SQLite store, which survives a killed process
but not a power cut) or ``postgres`` (a fresh ``dbos_system_schema`` in database ``test``, the
server's ``synchronous_commit``, as for our PostgreSQL store). Prints two numbers, steps/s
for one workflow of STEPS steps and for WORKFLOWS workflows of 2 steps, each timed after a
one-workflow warm-up. Steps are ``@DBOS.step()`` with defaults (no retries); workflows are
called directly (DBOS runs a workflow in the calling process).

DBOS is installed only in the benchmark's own environment (``pip install dbos`` in
``.venv-bench/3.11``), never as a dependency of this project.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from typing import Any

from dbos import DBOS  # type: ignore[import-not-found]

POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@DBOS.step()  # type: ignore[untyped-decorator]
def bump(x: int) -> int:
    return x + 1


@DBOS.workflow()  # type: ignore[untyped-decorator]
def long_flow(n: int) -> int:
    x = 0
    for _ in range(n):
        x = bump(x)
    return x


@DBOS.workflow()  # type: ignore[untyped-decorator]
def short_flow() -> int:
    return int(bump(bump(0)))


def _config(kind: str) -> tuple[dict[str, Any], str]:
    """DBOS's config for `kind`, and the schema to drop afterwards (PostgreSQL)."""
    config: dict[str, Any] = {"name": "bench", "log_level": "WARNING"}
    if kind == "postgres":
        schema = f"dbos_bench_{uuid.uuid4().hex[:8]}"
        config.update(system_database_url=POSTGRES, dbos_system_schema=schema)
        return config, schema
    url = f"sqlite:///{tempfile.mkdtemp(prefix='bench_dbos')}/sys.db"
    config["system_database_url"] = url
    if kind == "sqlite-wal":
        import sqlalchemy as sa
        from sqlalchemy import event

        engine = sa.create_engine(url)

        @event.listens_for(engine, "connect")
        def pragmas(conn: Any, record: Any) -> None:  # DBOS's own, plus WAL
            conn.isolation_level = "IMMEDIATE"
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")

        config["system_database_engine"] = engine
    elif kind != "sqlite":
        raise SystemExit(f"unknown config {kind!r}: sqlite, sqlite-wal or postgres")
    return config, ""


def main() -> None:
    kind, steps, workflows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    config, schema = _config(kind)
    DBOS(config=config)  # type: ignore[arg-type]
    DBOS.launch()
    try:
        short_flow()  # warm up
        t = time.perf_counter()
        assert long_flow(steps) == steps
        long_rate = steps / (time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(workflows):
            assert short_flow() == 2
        short_rate = 2 * workflows / (time.perf_counter() - t)
    finally:
        DBOS.destroy()
        if schema:
            import psycopg

            with psycopg.connect(POSTGRES, autocommit=True) as db:
                db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    print(f"{long_rate:.1f} {short_rate:.1f}")


if __name__ == "__main__":
    main()
