"""Workflows whose activities are ``async def`` (tests/workflow/test_async_activities.py).

Worker subprocesses import this module by name. Each run of an activity is one row in the
effects database (wf_programs.effects_db) with its idempotency key, and, as its value, the
process, thread and event loop it ran on, so a test can count runs and see where they ran.
"""

from __future__ import annotations

import asyncio
import os
import threading

from wf_programs import effects_db

from coroutine.workflow import activity, idempotency_key


def _record(value: str) -> None:
    effects_db().execute(
        "INSERT INTO effects VALUES (?, ?, ?)", (idempotency_key(), value, os.getpid())
    )


def _where() -> str:
    loop = asyncio.get_running_loop()
    return f"{os.getpid()}/{threading.current_thread().name}/{id(loop)}"


@activity
async def aapply(value: int, delay: float = 0.0) -> int:
    """An external effect from a coroutine: it awaits, records, answers."""
    await asyncio.sleep(delay)
    _record(_where())
    return value * 7 % 1000


@activity(attempts=3, backoff=0.01)
async def aflaky(fail_times: int) -> str:
    """Fails its first `fail_times` attempts of a step (counted in the effects database)."""
    await asyncio.sleep(0)
    _record("attempt")
    key = idempotency_key()
    (tries,) = effects_db().execute("SELECT count(*) FROM effects WHERE key = ?", (key,)).fetchone()
    if tries <= fail_times:
        raise ValueError(f"attempt {tries} of {key} declined")
    return f"ok after {tries}"


def achain(steps: int, delay: float = 0.0) -> list[int]:
    """Steps of async activities, each depending on the last answer."""
    seen: list[int] = []
    x = 1
    for i in range(steps):
        x = aapply(x + i, delay)
        seen.append(x)
    return seen


def retried(fail_times: int) -> str:
    """One async activity retried by the engine; its final failure caught by the body."""
    try:
        return aflaky(fail_times)
    except ValueError as e:
        return f"gave up: {e}"


@activity
async def nested() -> int:
    """An async activity calling another as a plain call: refused (it would block the loop)."""
    return aapply(1)


@activity
async def awhere() -> str:
    """Where it ran: process, thread and loop."""
    return _where()
