"""The yield path: how a body finds its coroutine, and how it switches out.

Theory of operation. A coroutine's body runs in a worker greenlet whose contextvars context
holds, in `_CURRENT`, the coroutine's `Context`: the state shared by the driver and the body.
`Yield` looks that `Context` up, applies the type rule, and switches to the driver. `switch`
below, and its copy inlined in `_make_yield` for speed, are the only code in the library that
switches from a body to its driver (``grep -n "[.]switch("`` proves it: the driver side
switches in from `_coroutine.py` and `_run.py`, and a finished worker parks in `_worker.py`).

Memory invariant. Nothing reachable from a body's frames or from its contextvars context may
own the `Coroutine` object or the worker greenlet: greenlet cannot collect a suspended
greenlet that sits in a reference cycle, so such a reference would make an abandoned
coroutine immortal and its ``finally`` blocks would never run. Hence `Context` holds only a
weak reference to its `Coroutine`, and knows its worker only by `id()`; while suspended, a
body's frames reference only its driver greenlet (the target of the switch under way).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from contextvars import Context as _VarsContext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from greenlet import GreenletExit, getcurrent

from ._errors import (
    CoroutineExit,
    NotDurableError,
    NotInCoroutineError,
    ResumeError,
    YieldTypeError,
    internal_error,
)
from ._signature import Rule, Signature, signature
from ._typecheck import describe, is_any_form

if TYPE_CHECKING:
    from ._coroutine import Coroutine

__all__ = [
    "CURRENT",
    "Context",
    "Current",
    "LoadContext",
    "Yield",
    "switch",
    "switch_out",
    "type_params",
]

R = TypeVar("R")
S = TypeVar("S")

# The states a Context moves through (see `_coroutine.py` for the transitions). "normal" is
# not stored: it is a running coroutine whose greenlet is not the current one.
CREATED = "created"
SUSPENDED = "suspended"
RUNNING = "running"
DONE = "done"


class _Nothing:
    """What a resume carries when the driver sent nothing."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<nothing sent>"


NOTHING: Any = _Nothing()

CURRENT: ContextVar[Context[Any, Any] | None] = ContextVar("coroutine.current", default=None)
_current = CURRENT.get


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
    # _state is one of CREATED, SUSPENDED, RUNNING, DONE; it only moves forward, except
    #   SUSPENDED <-> RUNNING.
    # _vars is the contextvars copy taken at creation while CREATED, None afterwards.
    # _gid is id() of the worker greenlet while it runs this body (from the start until it is
    #   released to the pool), else 0: an int, as a reference to the worker would form a cycle
    #   through the worker's contextvars context.
    # _driver is the greenlet that last resumed the body (where a yield switches to), or
    #   None before the start. (Not the worker's `parent`: assigning that costs more.)
    # _sent is NOTHING unless a Send is pending; every yield clears it.
    # _exc is the body's uncaught exception between the worker finishing and the driver
    #   raising it; None otherwise.
    # _durable is None for a volatile coroutine, else the durability recorder.
    # _coro is a weak reference to the Coroutine object (a strong one would form a cycle).

    _sig: Signature
    _state: str
    _sent: Any
    _recv: Any
    _result: Any
    _exc: BaseException | None
    _stopping: bool
    _thread: int
    _driver: Any
    _gid: int
    _vars: _VarsContext | None
    _durable: Any
    _coro: Callable[[], Coroutine[Any, Any] | None]

    def __new__(cls, *_: object, **__: object) -> Context[R, S]:
        raise TypeError(
            "Context objects are made by the library: use coro.Context() or "
            "LoadContext[R, S]() inside a coroutine"
        )

    @classmethod
    def _make(cls, sig: Signature, coro: Coroutine[Any, Any], vars: _VarsContext) -> Context[R, S]:
        self = object.__new__(cls)
        self._sig = sig
        self._state = CREATED
        self._sent = NOTHING
        self._recv = None
        self._result = None
        self._exc = None
        self._stopping = False
        self._thread = threading.get_ident()
        self._driver = None
        self._gid = 0
        self._vars = vars
        self._durable = None
        self._coro = weakref.ref(coro)
        return self

    def Yield(self, v: R, /) -> S:
        """Yield `v` from this context's coroutine, which must be the innermost active one.

        Same as ``Yield[R, S](v)`` with the coroutine's own types: checks `v` against `R`,
        suspends, and returns what the driver sent.

        Raises:
            NotInCoroutineError: this context's coroutine is not the innermost active one on
                this thread (it is suspended, done, or another coroutine is running inside it).
            YieldTypeError: `v` is not an `R`, or the coroutine resumed with nothing sent and
                `S` does not admit None.
        """
        if _current() is not self:
            raise NotInCoroutineError(
                f"Context.Yield called outside its own coroutine ({self!r}): a context can "
                "only yield from inside the body it belongs to, on that body's thread"
            )
        rule = self._sig.self_rule
        if rule.check is not None and not rule.check(v):
            raise _bad_value(v, self._sig, self._sig, _caller_site())
        return switch_out(self, v, rule)  # type: ignore[no-any-return]

    def Marshal(self) -> bytes:
        """The coroutine's durable state as bytes (see `New(..., durable=True)`).

        Raises:
            NotDurableError: the coroutine is volatile.
        """
        if self._durable is None:
            raise _not_durable("Marshal")
        return self._durable.marshal(self)  # type: ignore[no-any-return]

    def MarshalDelta(self) -> bytes:
        """What was recorded since the last `Marshal`/`MarshalDelta` (or `Unmarshal`), as
        bytes to append to the state saved then; the full state if nothing was saved yet.

        A store that saves after every step appends each delta: ``Unmarshal(full + delta1 +
        delta2 + ...)`` restores the latest, and the bytes written grow with the steps taken,
        not with their square.

        Raises:
            NotDurableError: the coroutine is volatile.
        """
        if self._durable is None:
            raise _not_durable("MarshalDelta")
        return self._durable.marshal_delta(self)  # type: ignore[no-any-return]

    def Unmarshal(self, b: bytes, /) -> None:
        """Restore state produced by `Marshal` into this not-yet-started coroutine.

        Raises:
            NotDurableError: the coroutine is volatile.
            InvalidStateError: the bytes are corrupt or belong to another entry or program.
        """
        if self._durable is None:
            raise _not_durable("Unmarshal")
        self._durable.unmarshal(self, b)

    def __repr__(self) -> str:
        coro = self._coro()
        return f"<coroutine.Context{self._sig} of {coro!r}>"


def _not_durable(op: str) -> NotDurableError:
    return NotDurableError(
        f"{op} needs a durable coroutine: create it with New[R, S](fn, durable=True), "
        "or set COROUTINE_DURABLE=1"
    )


def switch_out(ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
    """Suspend the running body of `ctx`, handing `value` to its driver; return what it sent.

    Called with the type rule already applied to `value`; applies the "resumed without a
    value" rule to what comes back. Handles every case: stopped and durable coroutines too.
    """
    if ctx._state is not RUNNING:
        # Only a body caught in a stop (or collected while its driver was gone) gets here.
        raise ResumeError("cannot yield from a coroutine that has been stopped")
    if ctx._durable is not None:
        # The recorder replays this yield from its record, or records it around `switch`.
        return ctx._durable.on_yield(ctx, value, rule, switch)
    return switch(ctx, value, rule)


def switch(ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
    """The switch itself: `switch_out` without the durability hook.

    `Yield`'s closure repeats the common case inline (see `_make_yield`); keep them in step.
    """
    if id(getcurrent()) != ctx._gid:
        raise _foreign_yield(ctx)
    driver = ctx._driver
    if ctx._stopping:
        # The body caught CoroutineExit (or a finally yields) while being stopped: end it
        # here and report in the driver, where the body cannot swallow the error.
        # Like a generator that ignored GeneratorExit, the abandoned body stays suspended
        # here until its Coroutine is collected; then greenlet kills it and the body sees
        # CoroutineExit once more.
        ctx._state = DONE
        ctx._exc = ResumeError("cannot yield from a coroutine that has been stopped")
        try:
            driver.switch(None)
        except GreenletExit:
            raise CoroutineExit from None
        raise internal_error("an abandoned coroutine was resumed")
    ctx._state = SUSPENDED
    ctx._sent = NOTHING
    try:
        sent = driver.switch(value)
    except GreenletExit:
        raise _killed(ctx) from None
    if sent is NOTHING:
        return _nothing_sent(ctx, rule)
    return sent


def _killed(ctx: Context[Any, Any]) -> CoroutineExit:
    """The worker is being collected without its Coroutine's help (it was dropped in another
    thread): nobody will drive it again, so it unwinds as a stop, for good."""
    ctx._state = DONE
    ctx._stopping = True
    return CoroutineExit()


def _nothing_sent(ctx: Context[Any, Any], rule: Rule) -> None:
    """A resume with nothing sent: the yield returns None if its S admits it."""
    if not rule.none_ok:
        raise YieldTypeError(
            f"the coroutine {ctx._sig} resumed without a value, but this yield's send type "
            "does not admit None; call Send before Next (or declare the yield's S as "
            "Optional)",
            expected=ctx._sig.s,
            got=None,
            site=_caller_site(3),
        )


def _foreign_yield(ctx: Context[Any, Any]) -> NotInCoroutineError:
    """The yield runs in a greenlet other than the body's (another thread, or a greenlet that
    shares the body's contextvars context, as greenback and SQLAlchemy's asyncio layer make
    them). Nothing switched; the body's state is as it was."""
    ctx._state = RUNNING
    return NotInCoroutineError(
        "Yield reached a coroutine from outside its body: from another thread or greenlet "
        "running in (a copy of) the body's contextvars context; a coroutine can only yield "
        "from the greenlet that runs its body"
    )


def _caller_site(depth: int = 2) -> str | None:
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return None
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _bad_value(
    value: object, site: Signature, coro: Signature, where: str | None
) -> YieldTypeError:
    expected = coro.r if is_any_form(site.r) else site.r
    loc = f" at {where}" if where else ""
    return YieldTypeError(
        f"Yield{site}{loc} got {value!r} of type {type(value).__name__}, which does not "
        f"match {describe(expected)} (the coroutine is {coro}); yield a value of type "
        f"{describe(expected)}, or widen the declared types",
        expected=expected,
        got=value,
        site=where,
    )


def _not_in_coroutine(what: str) -> NotInCoroutineError:
    return NotInCoroutineError(
        f"{what} called with no active coroutine: call it from code running inside a body "
        "started with New[R, S](fn) (threads started inside a body do not count)"
    )


def _make_yield(site: Signature) -> Callable[[Any], Any]:
    """The function `Yield[R2, S2]` stands for, specialised to one site signature.

    This is the hot path of the library: it inlines the common case of `switch_out` (a
    volatile coroutine that is not stopping) to save two calls per yield.
    """
    self_rule = site.self_rule
    self_check = self_rule.check
    rules = site.rules

    def yield_(value: Any, /) -> Any:
        ctx = _current()
        if ctx is None:
            raise _not_in_coroutine("Yield")
        sig = ctx._sig
        if sig is site:
            rule = self_rule
            check = self_check
        else:
            rule = rules.get(sig) or site.rule_in(sig, _caller_site())
            check = rule.check
        if check is not None and not check(value):
            raise _bad_value(value, site, sig, _caller_site())
        if ctx._stopping or ctx._durable is not None:
            return switch_out(ctx, value, rule)
        # -- switch(), inlined --
        if id(getcurrent()) != ctx._gid:
            raise _foreign_yield(ctx)
        ctx._state = SUSPENDED
        ctx._sent = NOTHING
        try:
            sent = ctx._driver.switch(value)
        except GreenletExit:
            raise _killed(ctx) from None
        if sent is NOTHING:
            return _nothing_sent(ctx, rule)
        return sent

    yield_.__qualname__ = yield_.__name__ = f"Yield{site}"
    return yield_


def type_params(item: object, name: str) -> tuple[Any, Any]:
    """The `(R, S)` of a subscription `name[R, S]`; TypeError saying how to write it."""
    if not isinstance(item, tuple) or len(item) != 2:
        raise TypeError(
            f"{name} takes two type arguments, the yielded and the sent type: "
            f"{name}[R, S] (got {name}[{describe(item)}]); write {name}[int, Any] for example"
        )
    return item[0], item[1]


class _YieldTable(dict[Any, Callable[[Any], Any]]):
    """``Yield[R, S](value)``: suspend the innermost active coroutine, handing it `value`.

    Returns what the driver sends back (an `S`). The active coroutine is found through a
    context variable, so any function down the body's call stack may yield, through C code
    such as ``sorted(key=...)`` included.

    >>> from coroutine import New, Yield
    >>> def body() -> None:
    ...     for i in range(3):
    ...         Yield[int, None](i)
    >>> list(New[int, None](body))
    [0, 1, 2]

    Raises:
        NotInCoroutineError: no coroutine is active on this thread and greenlet.
        YieldTypeError: ``[R, S]`` does not fit the coroutine's types (R must be a subtype of
            the coroutine's R, and its S of ours), `value` is not an `R`, or the coroutine was
            resumed with nothing sent and `S` does not admit None.
        CoroutineExit: the driver stopped the coroutine while it was suspended here.

    Type arguments must be hashable (they are, but for ``Annotated`` with unhashable
    metadata); the lookup is a plain dict subscription, the cheapest Python offers.
    """

    __slots__ = ()

    def __missing__(self, item: Any) -> Callable[[Any], Any]:
        r, s = type_params(item, "Yield")
        fn = self[item] = _make_yield(signature(r, s))
        return fn

    def __call__(self, value: Any, /) -> Any:
        return _yield_any(value)

    def __repr__(self) -> str:
        return "coroutine.Yield"


# Yield is a dict from type pairs to specialised yield functions, not a class: `Yield[R, S]`
# runs on every yield, and a dict subscription costs half a `__class_getitem__` call.
# Type checkers read it as the generic class declared in stubs/.
Yield = _YieldTable()


_yield_any = _make_yield(signature(Any, Any))


class LoadContext(Generic[R, S]):
    """``LoadContext[R, S]()``: the `Context` of the innermost active coroutine.

    It is the same object as that coroutine's ``Context()``. The pair ``[R, S]`` must fit
    the coroutine's types by the same rule as `Yield`.

    Raises:
        NotInCoroutineError: no coroutine is active.
        YieldTypeError: ``[R, S]`` does not fit the coroutine's types.
    """

    def __class_getitem__(cls, item: Any) -> Any:
        r, s = type_params(item, "LoadContext")
        site = signature(r, s)

        def load() -> Context[Any, Any]:
            return _load(site)

        return load

    def __new__(cls) -> Any:
        return _load(None)


def _load(site: Signature | None) -> Context[Any, Any]:
    ctx = _current()
    if ctx is None:
        raise _not_in_coroutine("LoadContext")
    if site is not None and site is not ctx._sig:
        site.rule_in(ctx._sig, _caller_site(3))
    return ctx


def Current() -> Coroutine[Any, Any] | None:
    """The innermost active coroutine on this thread, or None outside any body.

    >>> from coroutine import Current, New
    >>> Current() is None
    True
    """
    ctx = _current()
    return None if ctx is None else ctx._coro()
