"""Worker greenlets: what runs a coroutine's body, and a per-thread pool of idle ones.

`run_body` runs one body to its end, in its worker (rule B3 of `_context`); `_worker_main`
calls it for each body a worker runs.

Starting a fresh greenlet costs about 10 µs on Python 3.11+ (each gets its own data-stack
chunk), against about 1 µs to wake a parked one. So a worker that finishes a body does not
die: it parks, switching `PARKED` to its driver, and waits in its thread's pool for the next
body. The pool is capped; a worker beyond the cap is dropped, which kills it.

Only workers first started outside any body are pooled. greenlet fixes a greenlet's
recursion depth at its first switch, to its starter's: a worker first started by a driver
that is itself a body would carry that body's depth to every later body it ran, and workers
made inside those would start deeper still (SPEC §4 line 17). Such a worker runs
`_worker_once`: its one body, then it returns `PARKED` to its driver (its parent) and dies,
so it is never released to the pool. A body that creates coroutines still reuses the
pooled, shallow workers.

Which function a worker runs is the only mark it carries: no flag in an instance
dictionary, which would cost every suspended coroutine a dict (about 200 bytes, a sixth of
what a coroutine adds to its greenlet). `release` keeps only a worker still alive, and only
a `_worker_main` one is alive after its body ended.

Compiled. With the extension, a worker made by the compiled `acquire` runs `_accel`'s
`worker_main`: this module's `_worker_main` loop, still a Python frame that calls the body,
with `run_body`'s steps and the parking switch compiled (`_speedups.worker_*`); it calls the
Python `_as_reported` for a body that raised. tests/test_speedups.py holds both loops to the
same outcomes for every way a body ends. Workers of both kinds share the pool.

A worker holds no reference to the `Coroutine` object (see `_context`'s memory invariant):
its task is the body's `Context`, the entry function, and whether to keep the result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import CodeType
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

from ._context import CURRENT, DONE, Context
from ._errors import CoroutineExit, trimmed

__all__ = ["PARKED", "POOL_CAP", "Task", "acquire", "is_parked", "release", "run_body"]

POOL_CAP = 64
"""Idle workers kept per thread: enough for schedulers that finish coroutines in bursts."""

Task = tuple[Context[Any, Any], Callable[[], Any], bool]


class _Parked:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<worker parked>"


PARKED: Any = _Parked()

_local = threading.local()


# A worker is a plain greenlet, not a subclass: greenlet checks the type of the greenlets it
# switches several times per switch, and a subclass turns each check into a walk of its MRO
# (about 200 instructions a round trip).


def acquire() -> greenlet:
    """An idle worker of this thread, woken or newly made."""
    pool: list[greenlet] | None = getattr(_local, "pool", None)
    if pool:
        return pool.pop()
    if CURRENT.get() is not None:
        return greenlet(_worker_once)  # first started inside a body: never pooled
    worker = greenlet(_worker_main)
    # Started here, to park at once: greenlet keeps the arguments of a greenlet's first
    # switch for its whole life, so the first task must come, as every later one does, as
    # the value of a switch to a parked worker (else a pooled worker would keep its first
    # body's entry and Context alive).
    worker.switch()
    return worker


def is_parked(worker: greenlet) -> bool:
    """Whether `worker` waits for a body (rather than holding an abandoned one): it is
    suspended in `_worker_main` itself, at its switch to the driver (a body's innermost frame
    is the body's, or the yield's), or in `_accel`'s compiled loop, `PARKING`'s other code. A
    `_worker_once` worker never parks: its body ended, it is dead. Read only off the hot path
    (rule E1's recovery), of a worker whose body ended or is suspended in `end_from_body`: a
    body with no Python frame of its own (a partial of a compiled yield) could suspend with
    the worker's loop on top, but only at a yield, never once ended."""
    frame = worker.gr_frame
    return frame is not None and frame.f_code in PARKING


def release(worker: greenlet) -> None:
    """Return a parked worker to this thread's pool, or let it die if the pool is full; a
    `_worker_once` worker is dead already (see the module docstring)."""
    if worker.dead:
        return
    pool: list[greenlet] | None = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = []
    if len(pool) < POOL_CAP:
        pool.append(worker)


def _worker_main(task: Task | None = None) -> None:
    """A worker's life: run bodies until abandoned or dropped.

    Whatever escapes this function goes to the worker's parent, which the switch protocol
    keeps equal to the driver that switched in (`_driver`, rule D2): so an exception raised
    at any instruction here, the first included, lands in that driver's switch call.

    Started by `acquire` without a task, it parks at once (its parent is then `acquire`'s
    caller). The compiled start passes a new worker its first task instead, and takes it out
    of the arguments greenlet keeps (`start_worker` in _speedups_c/driver.c): parking first
    costs about 150 bytes per suspended coroutine there (measured, benchmarks/bench_memory).
    """
    if task is None:
        try:
            task = getcurrent().parent.switch(PARKED)  # type: ignore[union-attr]
        except GreenletExit:
            return  # dropped before its first body
    while True:
        driver = run_body(*task)
        del task  # a parked worker must not keep the finished body's entry or state alive
        if driver is None:
            return  # abandoned: this worker dies
        # While parked, this frame still references `driver` (the switch call is under way).
        # That only delays the collection of a driver that is itself a worker abandoned by
        # its coroutine, until this worker is reused or dropped from the pool.
        # (Not kept in a local: a suspended greenlet referenced from its own frame would
        # form a cycle, and greenlet cannot collect those.)
        try:
            task = driver.switch(PARKED)
        except GreenletExit:
            return  # dropped from the pool, or by an interrupted hand-off: die quietly
        del driver


PARKING: set[CodeType] = {_worker_main.__code__}
"""The code of every function a parked worker is suspended in: `_worker_main`'s, and with
the extension that of `_accel`'s worker loop, whose steps are compiled."""


def _worker_once(task: Task) -> Any:
    """The life of a worker first started inside a body: one body, then death.

    Returning hands `PARKED` (or None if abandoned, as `_worker_main` dies) to the worker's
    parent, the driver (rule D2), exactly as `_worker_main`'s switch would; the worker is dead
    by the time the driver sees it, so `release` does not pool it.
    """
    return None if run_body(*task) is None else PARKED


# -- one body ---------------------------------------------------------------------------------


def run_body(ctx: Context[Any, Any], fn: Callable[[], Any], with_return: bool) -> Any:
    """Run one body to its end (B3); return the driver to park with, or None if abandoned."""
    try:
        # The body runs in its own contextvars context, set here by the worker: for the
        # running greenlet, greenlet's setter only swaps the thread state's context (the
        # compiled `begin` does the same in a few instructions), where the driver setting
        # it on a suspended worker goes through greenlet's checks, twice per body.
        getcurrent().gr_context = ctx._vars
        ctx._vars = None  # started: from here on, a lost worker means a finished body
        CURRENT.set(ctx)
        result = fn()
    except BaseException as exc:
        if ctx._state is DONE:  # abandoned: it yielded while stopped, or it was collected
            if isinstance(exc, CoroutineExit):
                return None
            raise  # greenlet reports it as unraisable
        ctx._exc = _as_reported(ctx, exc)
        getcurrent().gr_context = None  # a parked worker keeps nothing of the body
        ctx._exit = None
        ctx._state = DONE
        return ctx._driver
    if ctx._state is DONE:
        return None
    getcurrent().gr_context = None
    if with_return and not ctx._stopping:
        ctx._result = result
    ctx._exit = None
    ctx._state = DONE
    return ctx._driver


def _as_reported(ctx: Context[Any, Any], exc: BaseException) -> BaseException | None:
    """What the driver raises for a body that raised `exc`, or None for a quiet end."""
    if isinstance(exc, CoroutineExit) or _swallowed_exit(ctx._exit, exc):
        return None
    if isinstance(exc, (StopIteration, StopAsyncIteration)):  # PEP 479, as for generators
        err = RuntimeError(f"coroutine body raised {type(exc).__name__}")
        err.__cause__ = exc
        return err
    return trimmed(exc)  # the worker's frame and the yields' machinery: the body's frames


def _swallowed_exit(exit: CoroutineExit | None, exc: BaseException) -> bool:
    """Whether C code swallowed the stop's `exit` and raised `exc` instead.

    sqlite3's user functions do this: the exit propagates out of the Python function that
    sqlite3 called, and sqlite3 raises its own OperationalError, unchained, in the frame that
    called sqlite3. So: `exc` is unchained, and the frame it was raised in is a strict
    ancestor of the last frame the exit reached (a frame that caught the exit in Python is
    that last frame itself). An error raised by a ``finally`` or ``except`` while the exit
    propagates is chained to it, and propagates (SPEC §4.8).
    """
    if exit is None or exit.__traceback__ is None or exc.__traceback__ is None:
        return False
    if exc.__context__ is not None or exc.__cause__ is not None:
        return False
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = exit.__traceback__.tb_frame.f_back
    while frame is not None:
        if frame is tb.tb_frame:
            return True
        frame = frame.f_back
    return False
