"""The four ways the wait tests run workflows: worker processes on SQLite, PostgreSQL and
Redis stores, and Celery workers (Redis broker, Redis store) with this process supervising.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Any

import pytest
from wf_support import REDIS, Procs, subprocess_env

from coroutine.workflow import CeleryExecutor, Engine

KINDS = ["sqlite", "postgres", "redis", "celery"]


class Backend:
    """Worker processes of one kind, and an engine on their store (supervising, for
    Celery, as ``python -m coroutine.workflow supervise`` would)."""

    def __init__(self, kind: str, request: pytest.FixtureRequest, procs: Procs, effects: str):
        self.kind = kind
        self.procs = procs
        self.env = subprocess_env(effects)
        self.url = request.getfixturevalue(f"{'redis' if kind == 'celery' else kind}_url")
        self.executor: CeleryExecutor | None = None
        self.n = 0
        if kind == "celery":
            self.queue = request.getfixturevalue("queue")
            self.executor = CeleryExecutor(REDIS, queue=self.queue)
        # Over Celery, a worker killed after a commit, before the next step's message was
        # consumed from its sticky queue, leaves the step to the supervisor after a lease:
        # a short one keeps these tests short.
        self.engine = Engine(self.url, self.executor, lease=2.0 if self.executor else 30.0)
        self._supervisor: threading.Thread | None = None
        if self.executor is not None:
            self._supervisor = threading.Thread(
                target=self.engine.run, kwargs={"until_idle": False, "poll": 0.02}
            )
            self._supervisor.start()

    def start(self) -> subprocess.Popen[bytes]:
        """Start one more worker process."""
        self.n += 1
        if self.kind == "celery":
            args = ["celery-worker", REDIS, "--queue", self.queue, "--name", f"w{self.n}"]
        else:
            args = ["worker", self.url]
        return self.procs.start(args, self.env)

    def kill(self, p: subprocess.Popen[bytes]) -> None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def close(self) -> None:
        self.engine.stop()
        if self._supervisor is not None:
            self._supervisor.join()
        self.engine.close()
        if self.executor is not None:
            self.executor.close()


def raw_due(engine: Engine, id: str) -> float:
    """The row's due time as the store holds it."""
    store: Any = engine.store
    if hasattr(store, "_r"):
        return float(store._r.hget(store._k("wf", id), "due"))
    sql = store._d.sql("SELECT due FROM {p}_workflows WHERE id = ?")
    return float(store._db.execute(sql, (id,)).fetchone()[0])


def raw_waiting(engine: Engine, id: str) -> bool:
    """Whether the store still records what workflow `id` waits for (`_sql_waits`'s row,
    `_redis_waits`'s set member)."""
    store: Any = engine.store
    if hasattr(store, "_r"):
        return bool(store._r.sismember(f"{store._p}:waiting", id))
    sql = store._d.sql("SELECT 1 FROM {p}_waits WHERE wf = ?")
    return store._db.execute(sql, (id,)).fetchone() is not None
