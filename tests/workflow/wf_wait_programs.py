"""Workflows that wait (timers, messages, events, children), run by the wait tests in this
process and in worker processes (imported by name, as wf_programs is)."""

from __future__ import annotations

import os
import time
from typing import Any

import wf_programs as wp

from coroutine import Patched
from coroutine.workflow import (
    activity,
    idempotency_key,
    join,
    receive,
    set_event,
    sleep,
    start_child,
    workflow,
)


@activity
def clock() -> float:
    """The worker's time: when a step ran."""
    return time.time()


def napper(seconds: float) -> list[float]:
    """Sleeps between two steps; returns when each ran."""
    before = clock()
    sleep(seconds)
    return [before, clock()]


def inbox(n: int, topic: str = "m", delay: float = 0.0) -> list[Any]:
    """Receives `n` values, applying an effect (with its idempotency key) for each."""
    got = []
    for _ in range(n):
        value = receive(topic)
        wp.apply(value, delay)
        got.append(value)
    set_event("count", len(got))
    return got


def patient(timeout: float) -> str:
    """Waits for one value on "x", or gives up after `timeout` seconds."""
    set_event("stage", "waiting")
    try:
        return str(receive("x", timeout=timeout))
    except TimeoutError:
        return "timed out"


def failing(n: int) -> int:
    raise ValueError(f"child {n} failed")


def parent(n: int) -> list[Any]:
    """Starts `n` children (two steps each) and a failing one; joins them all."""
    ids = [start_child(wp.small, i) for i in range(n)]
    bad = start_child(failing, n)
    results: list[Any] = [join(i) for i in ids]
    try:
        join(bad)
    except ValueError as exc:
        results.append(f"caught: {exc}")
    return results


def expected_parent(n: int) -> list[Any]:
    return [(i * 7 % 1000) + ((i + 1) * 7 % 1000) for i in range(n)] + [f"caught: child {n} failed"]


@activity
def gate(n: int) -> int:
    """Fails while the file named by WF_GATE exists (a bug, until the fix is deployed)."""
    if os.path.exists(os.environ["WF_GATE"]):
        raise RuntimeError("the gate is closed")
    return n


def gated(n: int) -> list[int]:
    """`n` steps, then the gate, then `n` more: fails at step `n` while the gate is shut."""
    first = [wp.apply(i) for i in range(n)]
    gate(n)
    return first + [wp.apply(100 + i) for i in range(n)]


def collect(n: int, topic: str = "m") -> list[Any]:
    """Receives `n` values on `topic`, nothing else."""
    return [receive(topic) for _ in range(n)]


@workflow(timeout=0.3)
def late_child(n: int) -> int:
    """Two steps, the first longer than its time limit: fails at the second."""
    wp.slow(0.6)
    return wp.double(n)


def parent_of_late(n: int) -> str:
    """Joins a child whose own time limit runs out: its WorkflowTimeoutError at join."""
    child = start_child(late_child, n)
    try:
        join(child)
    except TimeoutError as exc:
        return type(exc).__name__
    return "no timeout"


@activity(attempts=1)
def refused(n: int) -> int:
    """Records its run (an effect under its key), then fails for good."""
    row = (idempotency_key(), str(n), os.getpid())
    wp.effects_db().execute("INSERT INTO effects VALUES (?, ?, ?)", row)
    raise ValueError(f"refused {n}")


def refused_then_receives() -> Any:
    """An activity fails and is caught; then the body waits for a value, in the same step."""
    try:
        refused(1)
    except ValueError:
        pass
    return receive("m")


def refused_then_joins() -> Any:
    """The same, then it joins a child that takes a while."""
    child = start_child(wp.one_slow_step, 1.0)
    try:
        refused(2)
    except ValueError:
        pass
    return join(child)


def _deployed() -> bool:
    """In a worker started with WF_NEW_CODE=1: the code after a deploy."""
    return os.environ.get("WF_NEW_CODE") == "1"


@workflow(version="waiter-1")
def deployed_waiter() -> list[int]:
    """Waits for a value between two changes a deploy makes, each guarded by `Patched`."""
    a = wp.double(1)
    if _deployed() and Patched("waiter-before"):  # passed before the deploy: old branch
        b = wp.triple(a)
    else:
        b = wp.double(a)
    got = receive("m")
    if _deployed() and Patched("waiter-after"):  # reached after it: the new branch
        c = wp.triple(got)
    else:
        c = wp.double(got)
    return [a, b, c]
