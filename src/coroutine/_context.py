"""The switch protocol: the only code in the library that switches between a driver and a body.

Theory of operation. A coroutine's body runs in a worker greenlet (`_worker`) whose
contextvars context holds, in `CURRENT`, the coroutine's `Context`: the state its driver and
its body share. The driver switches in with `resume` (`start` prepares a worker, then
resumes it with the body's task); the body switches out with `switch_out` at a yield, or
ends with `run_body` returning (the worker then parks) or `end_from_body`.
``grep -n "[.]switch(\\|[.]throw("`` over the package finds these functions, the copy of
`switch_out` inlined in `_yield` (a test compares the two ASTs), and the worker parking in
`_worker`.

The handshake, as numbered rules (`Context._state` is the state; "normal" is not stored, it
is a running coroutine whose worker is not the current greenlet):

    D1. The driver refuses (wrong thread, wrong state) before it writes anything.
    D2. The driver makes itself the worker's parent and `_driver` (only when they differ:
        the common loop pays one identity test). Anything that escapes the worker therefore
        lands in the driver's switch call, never in an unrelated greenlet.
    D3. The driver writes RUNNING (and, to throw, `_exc` with the THROWN signal) last, then
        switches. If anything is raised in the driver while `_state` is still RUNNING, the
        body never took control: `recover` rolls back to SUSPENDED (or CREATED), or to DONE
        if the worker died after the body had started.
    B1. A yield checks that it runs in the body's own greenlet, and that the body is
        RUNNING, before it writes anything.
    B2. A yield writes `_recv`, clears `_sent`, writes SUSPENDED last, then switches to
        `_driver`. If anything is raised in the body while `_state` is still SUSPENDED, it
        never left: the yield restores RUNNING and `_recv` and lets the exception propagate
        in the body, as if raised at the yield.
    B3. The body ends by writing `_exc`/`_result`, then DONE, then returning (`run_body`) or
        switching (`end_from_body`) to `_driver`. An exception escaping the worker after
        that is raised in the driver (D2), which finds DONE and finishes the hand-off.
    E1. The driver, seeing DONE, takes the worker back (parked: to the pool) and raises
        `_exc` if set. Interrupted, it leaves the coroutine DONE, with at worst a worker
        that is collected instead of pooled.

Inlined. In pure Python, `_inline` compiles `resume`'s statements into the hot driving
operations at import (`Coroutine.Next`, `__next__`, `send`, `Run`'s loop, `start`), in place
of the call: one source, so the rules below have one text. That is why `resume` ends with its
only ``return``.

Compiled. When the optional extension `coroutine._speedups` is loaded (`coroutine.ACCELERATED`),
`src/coroutine/_speedups_c/` runs the common case of `start`, `resume`, `ended`, `release` and
of the yield (`switch_out` as inlined in `_yield`) under these same rules, on these same
slots, and calls back into this module for everything else (`adopt`, `recover`, `signalled`,
`killed`); the functions below stay the reference, and ``COROUTINE_PURE=1`` runs them.

Memory invariant. Nothing reachable from a body's frames or from its contextvars context may
own the `Coroutine` object or the worker greenlet: greenlet cannot collect a suspended
greenlet inside a reference cycle, and an abandoned coroutine's ``finally`` blocks would never
run. Hence `Context` holds only a weak reference to its `Coroutine` and knows its worker by
`id()`; while suspended, a body's frames reference only its driver greenlet.
"""

from __future__ import annotations

import os
import sys
import weakref
from _thread import get_ident
from collections.abc import Callable
from contextvars import Context as _VarsContext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet

from . import _accel, _inline, _worker
from ._errors import (
    CoroutineExit,
    NotDurableError,
    NotInCoroutineError,
    ResumeError,
    YieldTypeError,
    internal_error,
)
from ._signature import Rule, Signature

if TYPE_CHECKING:
    from ._coroutine import Coroutine

__all__ = [
    "CURRENT",
    "NOTHING",
    "Context",
    "Durability",
    "end_from_body",
    "new_context",
    "restore",
    "resume",
    "run_body",
    "start",
    "switch_out",
    "user_site",
]

R = TypeVar("R")
S = TypeVar("S")

CREATED = "created"
SUSPENDED = "suspended"
RUNNING = "running"
DONE = "done"


class _Signal:
    """What a switch carries when it carries no user value."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


NOTHING: Any = _Signal("nothing sent")  # a resume with no Send pending
THROWN: Any = _Signal("exception thrown")  # raise `_exc` at the yield (D3)
ABANDONED: Any = _Signal("body abandoned")  # end_from_body: the body stays suspended

CURRENT: ContextVar[Context[Any, Any] | None] = ContextVar("coroutine.current", default=None)


class Durability(Protocol):
    """What the durable layer (`_durable`) plugs into a coroutine; the core calls only this."""

    def on_yield(self, ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
        """A yield of a durable coroutine: replay it, or record around `switch_out`."""

    def status(self, state: str) -> str:
        """The status to show for the core's `state` (a restored state reads "suspended")."""

    def replays_stop(self) -> bool:
        """Whether a Stop before the first Next must still replay, to unwind the body."""

    def marshal(self, ctx: Context[Any, Any]) -> bytes: ...
    def marshal_delta(self, ctx: Context[Any, Any]) -> bytes: ...
    def unmarshal(self, ctx: Context[Any, Any], b: bytes) -> None: ...


class Context(Generic[R, S]):
    """The state of one coroutine, shared by its driver and its body.

    `Coroutine.Context()` and `LoadContext[R, S]()` inside the body return the same object.
    Users do not construct it.
    """

    __slots__ = (
        "__weakref__",
        "_coro",
        "_driver",
        "_durable",
        "_exc",
        "_exit",
        "_gid",
        "_recv",
        "_result",
        "_sent",
        "_sig",
        "_state",
        "_stopping",
        "_thread",
        "_vars",
    )

    # Invariants:
    # _state is CREATED, SUSPENDED, RUNNING or DONE; it moves forward, except SUSPENDED <->
    #   RUNNING and the roll-backs of rule D3.
    # _vars is the contextvars copy taken at creation until the body starts (run_body's first
    #   write), None afterwards: so "started" is `_vars is None`.
    # _gid is id() of the worker greenlet once started, until it is released: an int, since a
    #   reference would form a cycle through the worker's contextvars context.
    # _driver is the greenlet that last resumed the body, and the worker's parent (D2).
    # _sent is NOTHING unless a Send is pending; every yield clears it.
    # _exc carries an exception across the switch under way: thrown in (D3) or raised by the
    #   body (B3); None otherwise.
    # _exit is the CoroutineExit thrown by a stop until the body ends; None otherwise.
    # _durable is None for a volatile coroutine, else its Durability.
    # _coro is a weak reference to the Coroutine object (a strong one would form a cycle).
    _sig: Signature
    _state: str
    _sent: Any
    _recv: Any
    _result: Any
    _exc: BaseException | None
    _exit: CoroutineExit | None
    _stopping: bool
    _thread: int
    _driver: greenlet | None
    _gid: int
    _vars: _VarsContext | None
    _durable: Durability | None
    _coro: Callable[[], Coroutine[Any, Any, Any] | None]

    def __new__(cls, *_: object, **__: object) -> Context[R, S]:
        raise TypeError(
            "Context objects are made by the library: use coro.Context() or "
            "LoadContext[R, S]() inside a coroutine"
        )

    def Yield(self, v: R, /) -> S:
        """Yield `v` from this context's coroutine, which must be the innermost active one.

        Same as ``Yield[R, S](v)`` with the coroutine's own types.

        Raises:
            NotInCoroutineError: this context's coroutine is not the innermost active one on
                this thread (it is suspended, done, or another coroutine runs inside it).
            YieldTypeError: `v` is not an `R`, or the coroutine resumed with nothing sent and
                `S` does not admit None.
        """
        from ._yield import yield_in  # the yield path lives there; imported late (a cycle)

        return yield_in(self, v)  # type: ignore[no-any-return]

    def Marshal(self) -> bytes:
        """The coroutine's durable state as bytes (see `New(..., durable=True)`).

        Raises:
            NotDurableError: the coroutine is volatile.
        """
        return self._durability("Marshal").marshal(self)

    def MarshalDelta(self) -> bytes:
        """What was recorded since the last `Marshal` or `MarshalDelta`, as bytes.

        ``Unmarshal(full + delta1 + delta2 + ...)`` restores the latest state.

        Raises:
            NotDurableError: the coroutine is volatile.
        """
        return self._durability("MarshalDelta").marshal_delta(self)

    def Unmarshal(self, b: bytes, /) -> None:
        """Restore state produced by `Marshal` into this not-yet-started coroutine.

        Raises:
            NotDurableError: the coroutine is volatile.
            InvalidStateError: the bytes are corrupt or belong to another entry or program.
        """
        self._durability("Unmarshal").unmarshal(self, b)

    def _durability(self, op: str) -> Durability:
        if self._durable is None:
            raise NotDurableError(
                f"{op} needs a durable coroutine: create it with New[R, S](fn, durable=True), "
                "or set COROUTINE_DURABLE=1"
            )
        return self._durable

    def __repr__(self) -> str:
        return f"<coroutine.Context{self._sig} of {self._coro()!r}>"


def new_context(
    sig: Signature, coro: Coroutine[Any, Any, Any], vars: _VarsContext
) -> Context[Any, Any]:
    """The `Context` of the created coroutine `coro`, whose body will run in `vars`."""
    ctx: Context[Any, Any] = object.__new__(Context)
    ctx._sig = sig
    ctx._state = CREATED
    ctx._sent = NOTHING
    ctx._recv = ctx._result = ctx._exc = ctx._exit = ctx._driver = ctx._durable = None
    ctx._stopping = False
    ctx._thread = get_ident()
    ctx._gid = 0
    ctx._vars = vars
    ctx._coro = weakref.ref(coro)
    return ctx


# -- the body's side ------------------------------------------------------------------------


def switch_out(ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
    """Suspend the running body of `ctx`, handing `value` to its driver (rules B1, B2).

    Returns what the driver sent; raises what it threw in. `rule` is the yield site's type
    rule, already applied to `value`; here it decides a resume with nothing sent.
    """
    if id(getcurrent()) != ctx._gid:
        raise foreign_yield()
    if ctx._state is not RUNNING:
        raise ResumeError("cannot yield from a coroutine that has been stopped")
    if ctx._stopping:
        end_from_body(ctx, ResumeError("cannot yield from a coroutine that has been stopped"))
    recv = ctx._recv
    try:
        ctx._recv = value
        ctx._sent = NOTHING
        ctx._state = SUSPENDED
        sent = ctx._driver.switch(value)  # type: ignore[union-attr]
    except BaseException as exc:
        if isinstance(exc, GreenletExit):
            raise killed(ctx) from None
        if ctx._state is SUSPENDED:  # B2: raised before the switch; we never left
            ctx._state = RUNNING
            ctx._recv = recv
        raise
    if type(sent) is _Signal:
        return signalled(ctx, sent, rule)
    return sent


def signalled(ctx: Context[Any, Any], sent: _Signal, rule: Rule) -> None:
    """A resume that carried no user value: raise what was thrown, or apply the rule for a
    resume with nothing sent (the yield returns None if its S admits it)."""
    if sent is THROWN:
        exc = ctx._exc
        ctx._exc = None
        try:
            raise exc  # type: ignore[misc]  # here, so that it chains to what the body handles
        finally:
            del exc
    if not rule.none_ok:
        raise nothing_sent(ctx)


def nothing_sent(ctx: Context[Any, Any]) -> YieldTypeError:
    return YieldTypeError(
        f"the coroutine {ctx._sig} resumed without a value, but this yield's send type "
        "does not admit None; call Send before Next (or declare the yield's S as Optional)",
        expected=ctx._sig.s,
        got=None,
        site=user_site(),
    )


def killed(ctx: Context[Any, Any]) -> CoroutineExit:
    """The worker is collected without its Coroutine's help (dropped in another thread):
    nobody will drive it again, so it unwinds as a stop, for good."""
    ctx._stopping = True
    ctx._state = DONE
    return CoroutineExit()


def end_from_body(ctx: Context[Any, Any], exc: BaseException) -> NoReturn:
    """End the coroutine from inside its body: the driving operation raises `exc` (B3).

    The body stays suspended here, never resumed; when its coroutine is collected it sees
    `CoroutineExit` (like a generator that ignored GeneratorExit).
    """
    ctx._exc = _detached(exc)  # the driver raises it: its traceback will hold the driver's
    del exc  # frames, so the suspended body must not keep it (a cycle greenlet cannot collect)
    ctx._exit = None
    ctx._state = DONE
    try:
        ctx._driver.switch(ABANDONED)  # type: ignore[union-attr]
    except GreenletExit:
        raise CoroutineExit from None
    raise internal_error("an abandoned coroutine body was resumed")


def _detached(exc: BaseException) -> BaseException:
    """A copy of `exc` for the driver to raise, where the caller's frame may keep `exc`
    itself (on Python 3.10 a call's arguments stay on the caller's stack until it returns,
    and `end_from_body` never returns)."""
    try:
        copy = type(exc)(*exc.args)
    except Exception:
        return exc  # a constructor of another shape: the original, at worst kept longer
    copy.__cause__, copy.__context__ = exc.__cause__, exc.__context__
    copy.__suppress_context__ = exc.__suppress_context__
    return copy


def run_body(ctx: Context[Any, Any], fn: Callable[[], Any], with_return: bool) -> Any:
    """Run one body to its end (B3); return the driver to park with, or None if abandoned."""
    try:
        ctx._vars = None  # started: from here on, a lost worker means a finished body
        CURRENT.set(ctx)
        result = fn()
    except BaseException as exc:
        if ctx._state is DONE:  # abandoned: it yielded while stopped, or it was collected
            if isinstance(exc, CoroutineExit):
                return None
            raise  # greenlet reports it as unraisable
        ctx._exc = _as_reported(ctx, exc)
        ctx._exit = None
        ctx._state = DONE
        return ctx._driver
    if ctx._state is DONE:
        return None
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
    tb = exc.__traceback__  # drop the worker's frame, so the traceback starts in the body
    return exc.with_traceback(tb.tb_next if tb is not None else None)


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


# -- the driver's side ----------------------------------------------------------------------


def start(coro: Coroutine[Any, Any, Any], task: _worker.Task) -> bool:
    """Start the body of the created coroutine `coro` in a worker (D2, D3): True if it
    yielded, False if it ended (raising what it raised)."""
    ctx = coro._ctx
    g = _worker.acquire()
    driver = getcurrent()
    # Interrupted here, the coroutine is still created: the next start takes another worker.
    if g.parent is not driver:  # D2 (a pooled worker's parent is often its last driver)
        g.parent = driver
    g.gr_context = ctx._vars
    coro._g = g
    ctx._gid = id(g)
    ctx._driver = driver
    return resume(coro, task, None, driver)  # its roll-back knows an unstarted body (D3)


def resume(
    coro: Coroutine[Any, Any, Any],
    value: Any,
    exc: BaseException | None,
    driver: greenlet,
) -> bool:
    """Resume the suspended body of `coro` with `value`, or raising `exc` at its yield
    (D1-D3): True if it yielded again, False if it ended (raising what it raised).

    `driver` is the current greenlet (a loop such as `Run` looks it up once). Callers pass
    every argument: a call without defaults is the cheapest Python has, and inlined, an
    `exc` of None takes the throw branch out (`_inline`, rule I5)."""
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
    return ctx._state is SUSPENDED or ended(coro, out)  # the only return: see `_inline`


def adopt(coro: Coroutine[Any, Any, Any], g: greenlet, driver: greenlet) -> None:
    """Rule D2, with D1's thread check first (a greenlet of this thread passes the identity
    test of `resume`, so only a new driver needs the thread looked up)."""
    ctx = coro._ctx
    if ctx._thread != get_ident():
        raise coro._refusal("resume")
    g.parent = driver
    ctx._driver = driver


def recover(coro: Coroutine[Any, Any, Any]) -> None:
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
    elif ctx._state is DONE and g is not None and (g.dead or _worker.is_parked(g)):
        lost = ctx._exc  # interrupted while taking the worker back (E1)
        ctx._exc = None
        coro._g = None
        current = sys.exc_info()[1]
        if lost is not None and current is not None and current.__context__ is None:
            current.__context__ = lost


def ended(coro: Coroutine[Any, Any, Any], out: Any) -> bool:
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
        if out is _worker.PARKED:
            _worker.release(g)  # type: ignore[arg-type]
    exc = ctx._exc
    if exc is not None:
        ctx._exc = None
        try:
            raise exc
        finally:
            del exc
    return False


def restore(ctx: Context[Any, Any], *, done: bool, sent: Any = NOTHING, result: Any = None) -> None:
    """Load a restored durable state into the created `ctx` (for `Unmarshal`)."""
    ctx._recv = None
    ctx._sent = sent
    if done:
        coro = ctx._coro()
        ctx._result = result if coro is not None and coro._with_return else None
        ctx._vars = None
        ctx._state = DONE


# -- the compiled protocol -------------------------------------------------------------------

py_resume = resume
"""The reference `resume`; `_speedups.resume` (the same rules, compiled) replaces it below
when the extension is loaded, and calls back into `adopt`, `recover` and `ended`."""
if _accel.speedups is not None:
    resume = _accel.speedups.resume
else:  # pure Python: `start` runs `resume`'s statements in its own frame (see `_inline`)
    start = _inline.inline(resume, start)


# -- errors ---------------------------------------------------------------------------------

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_site() -> str | None:
    """ "file:line" of the innermost frame outside this package (where the user's yield is)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
    return None if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def foreign_yield() -> NotInCoroutineError:
    """A yield from a greenlet other than the body's, in (a copy of) its contextvars
    context: another thread, or greenback / SQLAlchemy's greenlets (B1: nothing changes)."""
    return NotInCoroutineError(
        "Yield reached a coroutine from outside its body: from another thread or greenlet "
        "running in (a copy of) the body's contextvars context; a coroutine can only yield "
        "from the greenlet that runs its body"
    )
