"""The worker's event loop, on which `async def` activities run.

Theory of operation. A workflow body is synchronous and so is a worker's step loop: an
`async def` activity still has to run somewhere that drives coroutines. Each worker *process*
has one asyncio event loop for that, started on first use in a daemon thread of its own and
kept for the life of the process. A runner thread (any of them: a worker's, or one of a
Celery worker's pool threads) hands the activity's coroutine to that loop
(`asyncio.run_coroutine_threadsafe`) and waits for its outcome, as it waits for a
synchronous activity's return.

Why one loop per process rather than ``asyncio.run`` per call: what an async activity keeps
between calls (a client session, a connection pool) is bound to the loop it was made on, so
a new loop per call would break it on the second call; and starting a loop costs more than
most short activities. Why its own thread rather than the runner's: a worker may itself be
called from a thread that runs a loop (an engine inside an async application), and Celery's
pool threads come and go; one loop on one thread serves them all, and async activities of
different runner threads overlap on it.

The activity's task runs in a copy of the calling thread's context (the idempotency key of
its step included), as ``asyncio.to_thread`` does the other way round. A process that forks
(Celery's prefork pool) starts a new loop in the child on first use: a loop's thread does not
survive a fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # at run time imported on first use: `import coroutine.workflow` stays light
    import asyncio

__all__ = ["run_async"]

T = TypeVar("T")

_LOCK = threading.Lock()
# (process id, loop, its thread): the process id notices a fork.
_STATE: list[tuple[int, asyncio.AbstractEventLoop, threading.Thread]] = []


def _loop() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    import asyncio

    with _LOCK:
        if _STATE and _STATE[0][0] == os.getpid():
            return _STATE[0][1], _STATE[0][2]
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=loop.run_forever, name="coroutine.workflow activity loop", daemon=True
        )
        thread.start()
        _STATE[:] = [(os.getpid(), loop, thread)]
        return loop, thread


def run_async(coro: Coroutine[Any, Any, T], what: str) -> T:
    """Run `coro` on this process's activity loop, in a copy of this thread's context; its
    result, or its exception raised here.

    Raises:
        RuntimeError: called from the loop itself (an async activity calling another: it
            would wait for itself; ``await other.fn(...)`` instead). `coro` is closed.
    """
    import asyncio

    loop, thread = _loop()
    if threading.current_thread() is thread:
        coro.close()
        raise RuntimeError(
            f"{what} was called from code running on the activity event loop (another async "
            "activity), where waiting for it would block the loop that must run it: await "
            "its coroutine instead, ``await name.fn(...)``"
        )
    # The task is made in a callback that runs in a copy of this thread's context.
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
