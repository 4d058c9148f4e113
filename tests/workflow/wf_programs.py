"""Workflows and activities the workflow tests run, in this process and in worker processes.

Worker subprocesses import this module by name (the tests put this directory on their
PYTHONPATH). Effects go to a SQLite file named by the WF_EFFECTS environment variable: one
row per time an activity's effect is applied, with its idempotency key, so a test can count
how many times each step's effect ran.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

from coroutine import Patched, Yield
from coroutine.workflow import ActivityError, activity, idempotency_key, workflow

_DB: dict[tuple[str, int], sqlite3.Connection] = {}


def effects_db(path: str | None = None) -> sqlite3.Connection:
    """The effects database (created on first use), one connection per thread."""
    path = path or os.environ["WF_EFFECTS"]
    db = _DB.get((path, threading.get_ident()))
    if db is None:
        db = sqlite3.connect(path, isolation_level=None, timeout=60.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT, value TEXT, pid INTEGER)")
        _DB[path, threading.get_ident()] = db
    return db


def effect_counts(path: str) -> dict[str, int]:
    """How many times each idempotency key's effect was applied."""
    rows = effects_db(path).execute("SELECT key, count(*) FROM effects GROUP BY key")
    return {k: n for k, n in rows}


def extra_runs(path: str, wid: str, steps: int) -> tuple[dict[str, int], int]:
    """Each step's effect count (every step of `wid` applied at least once, checked), and
    how many runs there were beyond the first of each."""
    counts = effect_counts(path)
    assert set(counts) == {f"{wid}:{k}" for k in range(steps)}
    return counts, sum(n - 1 for n in counts.values())


@activity
def apply(value: int, delay: float = 0.0) -> int:
    """An external effect: record (key, value), then answer a function of the value."""
    if delay:
        time.sleep(delay)
    effects_db().execute(
        "INSERT INTO effects VALUES (?, ?, ?)", (idempotency_key(), str(value), os.getpid())
    )
    return value * 7 % 1000


def chain(steps: int, delay: float = 0.0) -> list[int]:
    """A long workflow: each step's input depends on the previous answer."""
    seen: list[int] = []
    x = 1
    for i in range(steps):
        x = apply(x + i, delay)
        seen.append(x)
    return seen


def expected_chain(steps: int) -> list[int]:
    seen, x = [], 1
    for i in range(steps):
        x = (x + i) * 7 % 1000
        seen.append(x)
    return seen


def small(n: int) -> int:
    """A short workflow of two steps."""
    return apply(n) + apply(n + 1)


# In-process counters for the unit tests (one process, so a module global is enough).
CALLS: list[Any] = []


@activity
def double(x: int) -> int:
    CALLS.append(("double", x, idempotency_key()))
    return 2 * x


class Declined(Exception):
    """An activity's own failure, thrown into the workflow body."""


@activity(attempts=3, backoff=0.01)
def flaky(x: int, fail_times: int) -> int:
    """Fails its first `fail_times` attempts for a given key, then succeeds."""
    key = idempotency_key()
    CALLS.append(("flaky", x, key))
    if sum(1 for c in CALLS if c[0] == "flaky" and c[2] == key) <= fail_times:
        raise Declined(f"declined {x}")
    return x + 100


def doubles(n: int) -> int:
    return sum(double(i) for i in range(n))


def with_retry(fail_times: int) -> str:
    try:
        v = flaky(1, fail_times)
    except Declined as e:
        return f"caught {e}: {double(5)}"
    return f"ok {v}"


def uncaught() -> None:
    double(1)
    flaky(2, 99)


class Unloaded(Exception):
    pass


def raises_unloaded() -> None:
    double(1)
    raise Unloaded("gone")


def returns_at_once(x: int) -> int:
    return x + 1


def no_args_kw(*, a: int, b: tuple[int, ...]) -> list[Any]:
    return [a, b, double(a)]


@activity
def triple(x: int) -> int:
    CALLS.append(("triple", x))
    return 3 * x


# A deployed change, simulated: NEW_CODE switches what `patched_flow` and `unguarded_flow` do,
# as a redeploy of changed code would (their version string stays, so the bytecode could
# change too).
NEW_CODE = False


@workflow(version="orders-1")
def patched_flow() -> list[int]:
    if NEW_CODE and Patched("triple-first"):
        a = triple(1)
    else:
        a = double(1)
    return [a, double(a)]


@workflow(version="orders-1")
def unguarded_flow() -> list[int]:
    a = triple(1) if NEW_CODE else double(1)
    return [a, double(a)]


def yields_itself() -> None:
    double(1)
    Yield[Any, Any]("not an activity call")


@activity
def slow(seconds: float) -> str:
    time.sleep(seconds)
    CALLS.append(("slow", idempotency_key()))
    return "slept"


def one_slow_step(seconds: float) -> str:
    return slow(seconds)


# -- the bad inputs of the review (docs/how-to/workflows.md "Trust") -------------------------


class NeedsKw(Exception):
    """An exception whose class keeps state outside its args: a replay cannot rebuild it."""

    def __init__(self, *, code: int) -> None:
        super().__init__(f"code {code}")
        self.code = code


@activity(attempts=1)
def raise_kw() -> None:
    CALLS.append(("raise_kw",))
    raise NeedsKw(code=7)


@activity
def echo(x: Any) -> Any:
    CALLS.append(("echo", x))
    return x


@activity
def make_obj() -> object:
    CALLS.append(("make_obj",))
    return object()


def catch_kw() -> str:
    """Catches the stand-in; reads what it carries (the same live and on replay)."""
    try:
        raise_kw()
    except ActivityError as e:
        return echo(f"caught {e.type_name}: {e.message}; traceback has raise_kw: "
                    f"{'raise_kw' in e.remote_traceback}")  # fmt: skip
    return "not raised"


def catch_kw_by_class() -> str:
    """Catches the original class: never, live or on replay (it arrives as ActivityError)."""
    try:
        raise_kw()
    except NeedsKw as e:
        return echo(f"caught {e.code}")
    return "not raised"


def echo_arg(x: Any) -> Any:
    return echo(x)


def unrecordable_result() -> str:
    try:
        make_obj()
    except TypeError as e:
        return echo(f"refused: {e}")
    return "recorded"


def uses_an_object() -> Any:
    return echo(object())
