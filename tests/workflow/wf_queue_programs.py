"""Workflows for the queue, time-limit and schedule tests, run in worker processes.

Each activity records the span of its run (start and end, by wall clock, with its worker's
process id and idempotency key) in the ``spans`` table of the WF_EFFECTS database, from
inside the activity: so a test sees which runs overlapped, even runs whose worker was
killed before they ended (their end stays NULL).
"""

from __future__ import annotations

import os
import sqlite3
import time

from wf_programs import effects_db

from coroutine.workflow import activity, idempotency_key, workflow

QUEUE = "one"


def spans_db(path: str | None = None) -> sqlite3.Connection:
    db = effects_db(path)
    db.execute(
        "CREATE TABLE IF NOT EXISTS spans (key TEXT, tag TEXT, pid INTEGER, start REAL, end REAL)"
    )
    return db


@activity
def occupy(tag: str, seconds: float) -> int:
    """Hold the worker for `seconds`, recording the span; answer the step's number."""
    key = idempotency_key()
    db = spans_db()
    row = db.execute(
        "INSERT INTO spans VALUES (?, ?, ?, ?, NULL)", (key, tag, os.getpid(), time.time())
    ).lastrowid
    time.sleep(seconds)
    db.execute("UPDATE spans SET end = ? WHERE rowid = ?", (time.time(), row))
    return int(key.rsplit(":", 1)[1])


@workflow(queue=QUEUE)
def queued(n: int, steps: int, seconds: float) -> int:
    """A workflow of the limited queue: `steps` activities in a row."""
    return n + sum(occupy(f"queued{n}", seconds) for _ in range(steps))


def free(n: int, steps: int, seconds: float) -> int:
    """The same, in no queue."""
    return n + sum(occupy(f"free{n}", seconds) for _ in range(steps))


@workflow(timeout=1.5)
def limited(steps: int, seconds: float) -> int:
    """A workflow of 1.5 s at most."""
    return sum(occupy("limited", seconds) for _ in range(steps))


def scheduled(tag: str) -> int:
    """A scheduled run: one activity (its key names the run, which names its due time)."""
    return occupy(tag, 0.0)


def spans(path: str) -> list[tuple[str, str, int, float, float | None]]:
    """Every recorded span (key, tag, pid, start, end), by start."""
    return list(
        spans_db(path).execute("SELECT key, tag, pid, start, end FROM spans ORDER BY start")
    )


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of the spans (start, end) open at one moment (an end at the very
    time of a start does not overlap it)."""
    events = sorted(
        [(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1])
    )
    most = now = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


@workflow(queue=QUEUE, timeout=1.5)
def queued_and_limited(steps: int, seconds: float) -> int:
    """In the limited queue, and of 1.5 s at most."""
    return sum(occupy("both", seconds) for _ in range(steps))
