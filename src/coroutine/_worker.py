"""Worker greenlets: what runs a coroutine's body, and a per-thread pool of idle ones.

Starting a fresh greenlet costs about 10 µs on Python 3.11+ (each gets its own data-stack
chunk), against about 1 µs to wake a parked one. So a worker that finishes a body does not
die: it parks, switching `PARKED` to its driver, and waits in its thread's pool for the next
body. The pool is capped; a worker beyond the cap is dropped, which kills it.

Only workers first started outside any body are pooled. greenlet fixes a greenlet's
recursion depth at its first switch, to its starter's: a worker first started by a driver
that is itself a body would carry that body's depth to every later body it ran, and workers
made inside those would start deeper still (SPEC §4 line 17). Such a worker runs its one
body and dies; a body that creates coroutines still reuses the pooled, shallow workers.

A worker holds no reference to the `Coroutine` object (see `_context`'s memory invariant):
its task is the body's `Context`, the entry function, and whether to keep the result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent, greenlet

from ._context import CURRENT, DONE, Context
from ._errors import CoroutineExit

__all__ = ["PARKED", "POOL_CAP", "Task", "acquire", "release"]

POOL_CAP = 64
"""Idle workers kept per thread: enough for schedulers that finish coroutines in bursts."""

Task = tuple[Context[Any, Any], Callable[[], Any], bool]


class _Parked:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<worker parked>"


PARKED: Any = _Parked()

_local = threading.local()


class _Worker(greenlet):
    """A worker greenlet. `poolable` is False for one first started inside a body."""

    __slots__ = ("poolable",)
    poolable: bool


def acquire() -> greenlet:
    """An idle worker of this thread, woken or newly made."""
    pool: list[greenlet] | None = getattr(_local, "pool", None)
    if pool:
        return pool.pop()
    # A worker's parent is where control lands when it dies. The default, the greenlet that
    # made it, may be another worker that is by then parked or reused: use the thread's root.
    worker = _Worker(_worker_main, parent=_root())
    worker.poolable = CURRENT.get() is None
    return worker


def _root() -> greenlet:
    root: greenlet | None = getattr(_local, "root", None)
    if root is None:
        root = getcurrent()
        while root.parent is not None:
            root = root.parent
        _local.root = root
    return root


def release(worker: greenlet) -> None:
    """Return a parked worker to this thread's pool, or let it die if the pool is full or the
    worker is not poolable (see the module docstring)."""
    worker.gr_context = None  # drop the finished body's contextvars
    if not worker.poolable:  # type: ignore[attr-defined]
        return
    pool: list[greenlet] | None = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = []
    if len(pool) < POOL_CAP:
        pool.append(worker)


def _worker_main(task: Task) -> None:
    while True:
        driver = _run(*task)
        del task  # a parked worker must not keep the finished body's entry or state alive
        if driver is None:
            return  # abandoned: this worker dies
        # While parked, this frame still references `driver` (the switch call is under way).
        # That only delays the collection of a driver that is itself a worker abandoned by
        # its coroutine, until this worker is reused or dropped from the pool.
        task = driver.switch(PARKED)
        del driver


def _run(ctx: Context[Any, Any], fn: Callable[[], Any], with_return: bool) -> greenlet | None:
    """Run one body to its end; the driver to park with, or None if abandoned."""
    CURRENT.set(ctx)
    try:
        result = fn()
    except BaseException as exc:  # the body's exception belongs to its driver
        if ctx._state is DONE:  # abandoned: stopped and yielded, or collected
            if isinstance(exc, CoroutineExit):
                return None
            raise  # out of a greenlet being collected: greenlet reports it as unraisable
        ctx._state = DONE
        if not isinstance(exc, CoroutineExit):  # a stop that unwound the body is a quiet end
            # Drop this frame (the worker's) so the traceback starts in the body.
            ctx._exc = exc.with_traceback(exc.__traceback__.tb_next if exc.__traceback__ else None)
        return ctx._driver  # type: ignore[no-any-return]
    if ctx._state is DONE:
        return None
    ctx._state = DONE
    if with_return and not ctx._stopping:
        ctx._result = result
    return ctx._driver  # type: ignore[no-any-return]
