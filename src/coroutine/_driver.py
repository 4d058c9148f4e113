"""The driver's side of the switch protocol: start a body, resume it, take its worker back.

These functions apply rules D1-D3 and E1 of `_context`'s theory of operation; `resume` is the
one driver primitive every driving operation calls (`Coroutine.Next` and its kin, `Run`,
`RunAsync`), and `start` the one that hands a created coroutine's body to a worker. They
take the coroutine object, which owns the worker greenlet (`_g`): its `Context` may not (the
memory invariant of `_context`).
"""

from __future__ import annotations

import sys
from _thread import get_ident
from typing import Any, Protocol

from greenlet import getcurrent, greenlet

from ._context import ABANDONED, CREATED, DONE, RUNNING, SUSPENDED, THROWN, Context
from ._errors import ResumeError, internal_error
from ._worker import PARKED, Task, acquire, is_parked, release

__all__ = ["Driven", "adopt", "ended", "recover", "resume", "start"]


class Driven(Protocol):
    """What the driver's side reads and writes of a coroutine (a `_coroutine.Coroutine`)."""

    _ctx: Context[Any, Any]
    _g: greenlet | None  # the worker running its body (see `Coroutine`'s invariants)

    def _refusal(self, op: str, wrong_thread: bool = False) -> ResumeError: ...


def start(coro: Driven, task: Task) -> bool:
    """Start the body of the created coroutine `coro` in a worker (D2, D3): True if it
    yielded, False if it ended (raising what it raised)."""
    ctx = coro._ctx
    g = acquire()
    driver = getcurrent()
    # Interrupted here, the coroutine is still created: the next start takes another worker.
    if g.parent is not driver:  # D2 (a pooled worker's parent is often its last driver)
        g.parent = driver
    coro._g = g
    ctx._gid = id(g)
    ctx._driver = driver
    return resume(coro, task, None, driver)  # its roll-back knows an unstarted body (D3)


def resume(
    coro: Driven,
    value: Any,
    exc: BaseException | None,
    driver: greenlet,
) -> bool:
    """Resume the suspended body of `coro` with `value`, or raising `exc` at its yield
    (D1-D3): True if it yielded again, False if it ended (raising what it raised).

    `driver` is the current greenlet (a loop such as `Run` looks it up once). Callers pass
    every argument: a call without defaults is the cheapest Python has."""
    ctx = coro._ctx
    g: greenlet = coro._g  # type: ignore[assignment]
    if driver is not ctx._driver:
        adopt(coro, g, driver)
    try:
        if exc is not None:
            ctx._exc = exc
            exc = None  # it may come back through this frame: no cycle through a local
            value = THROWN
        ctx._state = RUNNING
        out = g.switch(value)
    except BaseException:
        recover(coro)
        raise
    return ctx._state is SUSPENDED or ended(coro, out)


def adopt(coro: Driven, g: greenlet, driver: greenlet) -> None:
    """Rule D2, with D1's thread check first (a greenlet of this thread passes the identity
    test of `resume`, so only a new driver needs the thread looked up)."""
    ctx = coro._ctx
    if ctx._thread != get_ident():
        raise coro._refusal("resume")
    g.parent = driver
    ctx._driver = driver


def recover(coro: Driven) -> None:
    """Rule D3: an exception reached the driver during a switch; leave a defined state."""
    ctx = coro._ctx
    g = coro._g
    if ctx._state is RUNNING:
        ctx._exc = None
        if ctx._vars is not None:  # the body never started: created again
            ctx._state = CREATED
            coro._g = None
            ctx._driver = None
        elif g is None or g.dead:  # the worker died after the body started: it ended
            ctx._state = DONE
            coro._g = None
        else:  # the switch never happened
            ctx._state = SUSPENDED
    elif ctx._state is DONE and g is not None and (g.dead or is_parked(g)):
        lost = ctx._exc  # interrupted while taking the worker back (E1)
        ctx._exc = None
        coro._g = None
        current = sys.exc_info()[1]
        if lost is not None and current is not None and current.__context__ is None:
            current.__context__ = lost


def ended(coro: Driven, out: Any) -> bool:
    """Rule E1: the body ended; take its worker back and raise what it raised."""
    ctx = coro._ctx
    if ctx._state is not DONE:
        raise internal_error(
            f"the body's greenlet switched to its driver without yielding (got {out!r}); "
            "another greenlet library switched to this driver"
        )
    g = coro._g
    if out is not ABANDONED:  # else the body yielded while stopping: keep it until collected
        coro._g = None
        ctx._driver = None
        if out is PARKED:
            release(g)  # type: ignore[arg-type]
    exc = ctx._exc
    if exc is not None:
        ctx._exc = None
        try:
            raise exc
        finally:
            del exc
    return False
