"""A workflow that survives SIGKILL: run by tests/test_durable_process.py.

    python crash_workflow.py DB [--delay SECONDS]

The body asks its driver to do work and to emit output lines; it keeps its own running
total, which lives only in the coroutine (rebuilt by replay after a restart). After each
step the driver applies the step's effect (an output line) and saves the coroutine's state
in the same SQLite transaction, so a kill at any point loses no step and applies none twice.
At the end it prints every output line.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from typing import Any

from coroutine import New, Yield

STEPS = 30


def workflow() -> None:
    total = 0
    for step in range(STEPS):
        result = Yield[tuple[Any, ...], Any](("work", step, total))
        total += result
        if step % 3 == 2:
            Yield[tuple[Any, ...], Any](("emit", f"step {step}: result {result}, total {total}"))
    Yield[tuple[Any, ...], Any](("emit", f"done: total {total}"))


def work(step: int, total: int) -> int:
    return (step * 7919 + total) % 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--delay", type=float, default=0.0, help="sleep after each step")
    args = parser.parse_args()
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY, blob BLOB)")
    db.execute("CREATE TABLE IF NOT EXISTS output (n INTEGER PRIMARY KEY, line TEXT)")
    coro = New[tuple[Any, ...], Any](workflow, durable=True)
    row = db.execute("SELECT blob FROM state WHERE id = 1").fetchone()
    if row is not None:
        coro.Context().Unmarshal(row[0])
    while coro.Next():
        request = coro.Recv()
        db.execute("BEGIN IMMEDIATE")
        if request[0] == "emit":
            db.execute("INSERT INTO output (line) VALUES (?)", (request[1],))
            coro.Send(None)
        else:
            coro.Send(work(request[1], request[2]))
        state = coro.Context().Marshal()  # holds the pending Send: the step's answer
        db.execute("INSERT OR REPLACE INTO state (id, blob) VALUES (1, ?)", (state,))
        db.execute("COMMIT")
        time.sleep(args.delay)
    state = coro.Context().Marshal()
    db.execute("INSERT OR REPLACE INTO state (id, blob) VALUES (1, ?)", (state,))
    for (line,) in db.execute("SELECT line FROM output ORDER BY n"):
        print(line)


if __name__ == "__main__":
    main()
