"""Helpers shared by the workflow tests and their fixtures (conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services import SERVICES

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REDIS = SERVICES["redis"].url
POSTGRES = SERVICES["postgres"].url
RABBITMQ = SERVICES["rabbitmq"].url


# The crash and concurrency tests run at full size (200 steps, 1,000 workflows) unless
# WORKFLOW_TEST_SCALE=small: scripts/test.sh sets that on the Pythons other than the primary
# one, where the same tests run (never skipped) at a quarter of the size, to keep CI short.
SMALL = os.environ.get("WORKFLOW_TEST_SCALE", "full") == "small"


def scaled(n: int) -> int:
    return n // 4 if SMALL else n


def unique(tag: str) -> str:
    return f"t{tag}{uuid.uuid4().hex[:10]}"


def drop_redis(prefix: str) -> None:
    """Delete the keys named with `prefix`, and kombu's unacked copies of its messages (which
    a later Celery worker would otherwise restore, recreating the queue)."""
    import redis

    r = redis.Redis.from_url(REDIS)
    keys = list(r.scan_iter(match=f"*{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i : i + 500])
    for tag, message in r.hscan_iter("unacked"):
        if prefix.encode() in message:
            r.hdel("unacked", tag)
            r.zrem("unacked_index", tag)
    r.close()


def drop_amqp(queue: str, nodes: list[str]) -> None:
    """Delete a RabbitMQ queue and the sticky queues of the worker `nodes`."""
    from kombu import Connection

    with Connection(RABBITMQ) as c:
        ch = c.default_channel
        for name in [queue, *(f"{queue}.sticky.{n}@{socket.gethostname()}" for n in nodes)]:
            ch.queue_delete(name)


def drop_postgres(prefix: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {prefix}_workflows, {prefix}_states, {prefix}_queues, "
                   f"{prefix}_schedules")  # fmt: skip
        waits = ", ".join(f"{prefix}_{t}" for t in ("waits", "messages", "events"))
        db.execute(f"DROP TABLE IF EXISTS {waits}")


def subprocess_env(effects: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["C_FORCE_ROOT"] = "1"
    if effects:
        env["WF_EFFECTS"] = effects
    return env


class Procs:
    """Worker subprocesses started by a test; all stopped at its end.

    Their output goes to files in `logs` (a pipe nobody reads would fill and stall them).
    """

    def __init__(self, logs: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = logs
        self.python = sys.executable  # the interpreter the workers run on

    def log_of(self, p: subprocess.Popen[bytes]) -> str:
        """What worker `p` printed (for an assertion's message: the test's files are gone
        by the time anyone reads a CI log)."""
        path = self.logs / f"worker{self.procs.index(p)}.log"
        return f"worker {p.args!r} printed:\n" + path.read_text(errors="replace")[-4000:]

    def start(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"worker{len(self.procs)}.log", "wb") as log:
            p = subprocess.Popen(
                [self.python, "-m", "coroutine.workflow", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        # Celery workers: killed (a warm shutdown on RabbitMQ takes seconds, and a dead
        # worker is what the engine must survive anyway); our own workers: SIGTERM.
        for p in self.procs:
            if p.poll() is None:
                celery = "celery-worker" in p.args  # type: ignore[operator]
                os.killpg(p.pid, signal.SIGKILL if celery else signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


# What the crash tests measured, printed at the end of the run (the at-least-once counts).
class _Reports(list[str]):
    """The crash tests' figures, printed at the end of the run. Under pytest-xdist the tests
    run in worker processes, so each line also goes to the file the run's first process named
    in WORKFLOW_TEST_REPORTS (conftest.py), which that process reads back."""

    def append(self, line: str) -> None:
        super().append(line)
        path = os.environ.get("WORKFLOW_TEST_REPORTS")
        if path and os.environ.get("PYTEST_XDIST_WORKER"):
            with open(path, "a") as f:
                f.write(line + "\n")


REPORTS: list[str] = _Reports()


def hostname() -> str:
    return socket.gethostname()


def state_records(engine: Any, wid: str) -> int:
    """How many state records the store holds for workflow `wid` (full state, then deltas)."""
    store = engine.store
    if hasattr(store, "_r"):  # Redis: one list item per record
        return int(store._r.llen(store._k("st", wid)))
    sql = store._d.sql("SELECT count(*) FROM {p}_states WHERE wf = ?")
    return int(store._db.execute(sql, (wid,)).fetchone()[0])


def owner_pid(owner: str) -> int:
    """The process id in a worker's name (``host:pid:tag``)."""
    return int(owner.split(":")[-2])


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.01)
