"""The switch protocol's shared state, `Context`, and the body's side of the protocol.

Theory of operation. A coroutine's body runs in a worker greenlet (`_worker`) whose
contextvars context holds, in `CURRENT`, the coroutine's `Context`: the state its driver and
its body share. The driver switches in with `_driver.resume` (`_driver.start` prepares a
worker, then resumes it with the body's task); the body switches out with `switch_out` at a
yield, or ends with `_worker.run_body` returning (the worker then parks) or `end_from_body`.
``grep -n "[.]switch(\\|[.]throw("`` over the package finds these functions, the worker
parking in `_worker`, and `Coroutine.__del__` unwinding a body abandoned while stopping.
The layers, each importing only those before it: `_context` (this module: the state and the
body's side), `_worker` (the greenlets that run bodies), `_driver` (the driver's side), then
the coroutine object (`_coroutine`, `_new`) and the drivers (`_run`).

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

Compiled. When the optional extension `coroutine._speedups` is loaded (`coroutine.ACCELERATED`),
`src/coroutine/_speedups_c/` runs the common case of `start`, `resume`, `ended`, `release` and
of the yield (`switch_out`) under these same rules, on these same slots, and calls back into
the Python functions for everything else (`adopt`, `recover`, `signalled`, `killed`);
`_accel` wires it in. The Python functions stay the reference, and
``COROUTINE_PURE=1`` runs them.

Memory invariant. Nothing reachable from a body's frames or from its contextvars context may
own the `Coroutine` object or the worker greenlet: greenlet cannot collect a suspended
greenlet inside a reference cycle, and an abandoned coroutine's ``finally`` blocks would never
run. Hence `Context` holds only a weak reference to its `Coroutine` and knows its worker by
`id()`; while suspended, a body's frames reference only its driver greenlet.
"""

from __future__ import annotations

import weakref
from _thread import get_ident
from collections.abc import Callable
from contextvars import Context as _VarsContext
from contextvars import ContextVar
from typing import Any, Generic, NoReturn, Protocol, SupportsIndex, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet

from ._errors import (
    CoroutineExit,
    NotDurableError,
    NotInCoroutineError,
    ResumeError,
    YieldTypeError,
    internal_error,
    not_copyable,
    user_site,
)
from ._signature import Rule, Signature, bad_value

__all__ = [
    "CURRENT",
    "NOTHING",
    "Context",
    "Durability",
    "end_from_body",
    "new_context",
    "restore",
    "switch_out",
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
    """What the durable layer (`coroutine.durable`) plugs into a coroutine; the core calls only
    this (the layer is loaded by the first durable coroutine: see `_new`)."""

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
    _coro: Callable[[], Any]  # -> the Coroutine, or None once it is collected

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
        if CURRENT.get() is not self:
            raise NotInCoroutineError(
                f"Context.Yield called outside its own coroutine ({self!r}): a context can "
                "only yield from inside the body it belongs to, on that body's thread"
            )
        sig = self._sig
        rule = sig.self_rule
        if rule.check is not None and not rule.check(v):
            raise bad_value(v, sig, sig)
        if self._durable is not None:
            return self._durable.on_yield(self, v, rule)  # type: ignore[no-any-return]
        return switch_out(self, v, rule)  # type: ignore[no-any-return]

    def Marshal(self) -> bytes:
        """The coroutine's durable state as bytes (see `New(..., durable=True)`).

        Raises:
            NotDurableError: the coroutine is volatile, or stopped recording.
            InvalidStateError: the state it was restored from turns out to be malformed.
        """
        return self._durability("Marshal").marshal(self)

    def MarshalDelta(self) -> bytes:
        """What was recorded since the last `Marshal` or `MarshalDelta`, as bytes.

        ``Unmarshal(full + delta1 + delta2 + ...)`` restores the latest state.

        Raises:
            NotDurableError: the coroutine is volatile, or stopped recording.
            InvalidStateError: as `Marshal`.
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

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise not_copyable("Context")  # pickle, and copy.copy and copy.deepcopy through it


def new_context(sig: Signature, coro: object, vars: _VarsContext) -> Context[Any, Any]:
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


def restore(ctx: Context[Any, Any], *, done: bool, sent: Any = NOTHING, result: Any = None) -> None:
    """Load a restored durable state into the created `ctx` (for `Unmarshal`)."""
    ctx._recv = None
    ctx._sent = sent
    if done:
        coro = ctx._coro()
        ctx._result = result if coro is not None and coro._with_return else None
        ctx._vars = None
        ctx._state = DONE


def foreign_yield() -> NotInCoroutineError:
    """A yield from a greenlet other than the body's, in (a copy of) its contextvars
    context: another thread, or greenback / SQLAlchemy's greenlets (B1: nothing changes)."""
    return NotInCoroutineError(
        "Yield reached a coroutine from outside its body: from another thread or greenlet "
        "running in (a copy of) the body's contextvars context; a coroutine can only yield "
        "from the greenlet that runs its body"
    )
