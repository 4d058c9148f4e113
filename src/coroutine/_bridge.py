"""The async bridge's driver, in pure Python: how `run_sync`'s body and its task take turns.

Theory of operation. `run_sync(fn)` runs `fn` in a greenlet of its own, the *body*, and gives
the awaiting task `drive(...)`, the body's *driver*: an iterable coroutine (a generator that
the task's ``await`` delegates to). The driver switches into the body, which runs
synchronously until `await_(aw)` switches back to the driver, leaving `aw`'s iterator in
the `Bridge`; the driver awaits it with ``yield from``, so the event loop sees exactly what
``await aw`` would show it (send, throw and close included), then switches back into the
greenlet waiting in `await_` with the result, or with the exception to raise there.
`await_`, `Bridge.start` and `Bridge.resume` are the only functions here that switch.

The greenlet waiting in `await_` is the body's own or that of a `New` coroutine nested in the
body: `await_` finds its bridge by walking up greenlet parents from the current greenlet to
the body (each nested coroutine's worker has its driver as parent), so the whole chain waits
and the coroutines in between see nothing (they stay running and normal; nothing can resume
them meanwhile). The body greenlet names its bridge by a weak reference (`MARK`): a strong
one would be a cycle through a suspended greenlet, which the collector cannot break.

The handshake, as rules (`Bridge.state`):

    A1. The driver refuses another thread before it writes anything.
    A2. The driver makes itself the body's parent and `driver` when they differ: the body's
        end (its return value or its exception) lands in the driver's switch.
    A3. The driver writes RUNNING last, then switches in the awaitable's result, or a
        `Thrown` carrying the exception to raise. Anything raised at the switch while the
        body lives means the body never took control: back to AWAITING (CREATED if it never
        started). A dead body ended: DONE.
    W1. `await_` writes `inner` and `waiter`, never the state, then switches; it keeps no
        reference to the bridge across the switch (the body's frames must not own it, and a
        bridge unwound by the collector is no longer found through its weak reference).
    A4. Back from its switch, the driver reads AWAIT as "the body waits" (AWAITING) and a
        dead body as its end (DONE). Anything else is a foreign greenlet's switch.
    A5. Anything raised while the body waits (by the awaitable, a cancellation, the driver
        itself) is raised at the `await_`: the body unwinds, as an ``await`` would.
    A6. A bridge whose body still waits when it is dropped unwinds it (`unwind`): GeneratorExit
        at the `await_`, as for a closed coroutine. A body that awaits again then is abandoned.

The compiled driver (`_speedups_c/aio.c`) follows the same rules; this module stays the
reference and is what ``COROUTINE_PURE=1`` runs.
"""

from __future__ import annotations

import types
import weakref
from _thread import get_ident
from collections.abc import Callable, Generator, Iterator
from typing import Any

from greenlet import getcurrent, greenlet

from ._context import _Signal
from ._errors import CoroutineError, NotInCoroutineError

__all__ = ["MARK", "Bridge", "Thrown", "await_", "awaitable_iter", "drive"]

CREATED = "created"
RUNNING = "running"
AWAITING = "awaiting"
DONE = "done"

MARK = "_coroutine_aio_bridge"
"""The body greenlet's attribute naming its `Bridge` (a weak reference)."""


AWAIT: Any = _Signal("await")  # await_ -> driver: `inner` is to be awaited


class Thrown:
    """driver -> await_: raise `exc` at the await (the only switch that allocates)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Bridge:
    """The state one `run_sync` body shares with its driver."""

    __slots__ = ("__weakref__", "body", "closing", "driver", "inner", "state", "thread", "waiter")

    # Invariants:
    # state is CREATED, then RUNNING (control is in the body, or about to be: A3) and AWAITING
    #   (`waiter` is suspended in await_) in turns, then DONE; a dead `body` is DONE whatever
    #   `state` says (an interruption may leave it unwritten).
    # body is the body's greenlet from `start` on; None once DONE.
    # waiter is the greenlet that last called await_ (or the body, before it started).
    # inner is the iterator of the awaitable passed to await_ until the driver takes it.
    # driver is the greenlet that last switched into the body, and the body's parent (A2).
    # closing is True once GeneratorExit was thrown in: an await_ then abandons the body.
    # thread is get_ident() of the thread that started the body.
    state: str
    body: greenlet | None
    waiter: greenlet | None
    inner: Any  # an iterator, or a native coroutine (which `yield from` drives as one)
    driver: greenlet | None
    closing: bool
    thread: int

    def __init__(self) -> None:
        self.state = CREATED
        self.body = self.waiter = self.inner = self.driver = None
        self.closing = False
        self.thread = get_ident()

    def start(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run `fn(*args, **kwargs)` in a new body greenlet until it awaits (AWAIT) or ends
        (its return value; raises what it raised)."""
        driver = getcurrent()
        body = greenlet(fn, driver)
        body.gr_context = driver.gr_context  # the body runs in the awaiting task's context
        setattr(body, MARK, weakref.ref(self))
        self.body = self.waiter = body
        self.driver = driver
        try:
            self.state = RUNNING  # A3
            out = body.switch(*args, **kwargs)
        except BaseException as raised:
            if self.recover() and isinstance(raised, (StopIteration, StopAsyncIteration)):
                raise stop_error(raised) from raised
            raise
        return self.landed(out)

    def resume(self, value: Any, exc: BaseException | None) -> Any:
        """Switch into the greenlet waiting in `await_` with `value`, or raising `exc` there
        (A1-A3): AWAIT if the body awaits again, else its return value (A4)."""
        driver = getcurrent()
        if driver is not self.driver:
            self.adopt(driver)
        if exc is not None:
            self.closing = self.closing or isinstance(exc, GeneratorExit)
            value = Thrown(exc)
            exc = None  # it may come back through this frame: no cycle through a local
        try:
            self.state = RUNNING  # A3
            out = self.waiter.switch(value)  # type: ignore[union-attr]
        except BaseException as raised:
            value = None  # (nor through the Thrown)
            if self.recover() and isinstance(raised, (StopIteration, StopAsyncIteration)):
                raise stop_error(raised) from raised
            raise
        if out is AWAIT and not self.closing:  # `landed`'s common case, here
            self.state = AWAITING
            return AWAIT
        return self.landed(out)

    def adopt(self, driver: greenlet) -> None:
        """A1, then A2: a new driver (another task's greenlet, or a finalizer's)."""
        if self.thread != get_ident():
            raise wrong_thread()
        self.body.parent = driver  # type: ignore[union-attr]
        self.driver = driver

    def recover(self) -> bool:
        """A3: something was raised at the switch; leave a defined state. True if the body
        ended (raising it)."""
        body = self.body
        if body is not None and body.dead:
            self.state = DONE
            self.body = self.waiter = None
            return True
        if self.state is RUNNING:
            self.state = AWAITING if body else CREATED
        return False

    def landed(self, out: Any) -> Any:
        """A4: what the switch into the body came back with."""
        if out is AWAIT:
            self.state = AWAITING
            if self.closing:
                raise self.abandon()
            return AWAIT
        body = self.body
        if body is not None and body.dead:
            self.state = DONE
            self.body = self.waiter = None
            return out
        self.abandon()
        raise foreign(out)

    def abandon(self) -> RuntimeError:
        """Give the body up for good, leaving it where it waits (A6): it awaited while being
        closed. Its greenlet unwinds when collected."""
        inner: Any = self.inner
        self.inner = None
        if type(inner) is types.CoroutineType:
            inner.close()  # never awaited: no warning
        self.state = DONE
        self.body = self.waiter = None
        return abandoned()

    def unwind(self) -> None:
        """A6: unwind a body that waits, raising GeneratorExit at its `await_`; then DONE.

        Raises what the body raised while unwinding, but GeneratorExit.
        """
        body = self.body
        if body is None or body.dead or not body or self.thread != get_ident():
            return  # done, never started, or unreachable from here (greenlet unwinds it)
        try:
            self.resume(None, GeneratorExit())
        except GeneratorExit:
            pass

    def __del__(self) -> None:
        self.unwind()  # what it raises is reported through sys.unraisablehook


@types.coroutine
def drive(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Generator[Any, Any, Any]:
    """The driver of one body: what the task awaits for ``run_sync(fn, *args, **kwargs)``."""
    bridge = Bridge()
    out = bridge.start(fn, args, kwargs)
    while out is AWAIT:
        it = bridge.inner
        bridge.inner = None
        try:
            value = yield from it
        except BaseException as exc:  # A5
            out = bridge.resume(None, exc)
        else:
            out = bridge.resume(value, None)
    return out


def await_(aw: Any, /) -> Any:
    """Wait for `aw` from synchronous code run by `run_sync`, at any depth; return its result.

    The whole body, the `New` coroutines it is running included, waits while the task that
    awaits `run_sync` awaits `aw`; the event loop runs other tasks meanwhile.

    >>> import asyncio
    >>> from coroutine.aio import await_, run_sync
    >>> def total(n: int) -> int:  # synchronous, waits on async work
    ...     return sum(await_(asyncio.sleep(0, result=i)) for i in range(n))
    >>> asyncio.run(run_sync(total, 4))
    6

    Raises:
        NotInCoroutineError: not inside a `run_sync` body (on this thread); a coroutine
            passed is closed, so it does not warn that it was never awaited.
        TypeError: `aw` is not awaitable.
        BaseException: what awaiting `aw` raised, cancellation included (raised here, chained
            to the exception being handled, as ``await`` would).
    """
    waiter = getcurrent()
    ref = getattr(waiter, MARK, None)  # the body's own greenlet: the common case
    bridge: Bridge | None = (ref if ref is not None else _ref_above(waiter, aw))()
    if bridge is None or bridge.state is not RUNNING:
        raise not_running(aw)
    bridge.inner = aw if type(aw) is types.CoroutineType else awaitable_iter(aw)  # W1
    bridge.waiter = waiter
    driver = bridge.driver
    del bridge, ref, waiter
    out = driver.switch(AWAIT)  # type: ignore[union-attr]
    if type(out) is not Thrown:
        return out
    exc = out.exc
    del out
    try:
        raise exc.with_traceback(_user_frames(exc.__traceback__))
    finally:
        del exc


def _ref_above(g: greenlet, aw: Any) -> Callable[[], Bridge | None]:
    """The weak reference to the bridge whose body runs `g`, a nested coroutine's worker:
    the first greenlet up the parents that carries one (each worker's parent is its
    driver)."""
    while True:
        parent = g.parent
        if parent is None:
            raise outside(aw)
        g = parent
        ref = getattr(g, MARK, None)
        if ref is not None:
            return ref  # type: ignore[no-any-return]


def _user_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """`tb` without its leading frames of this module (the driver's), as the compiled driver,
    which has none, would raise it."""
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def awaitable_iter(aw: Any) -> Iterator[Any]:
    """The iterator ``await aw`` delegates to (what CPython's ``_PyCoro_GetAwaitableIter``
    gives); TypeError if `aw` is not awaitable."""
    cls = type(aw)
    if cls is types.CoroutineType:
        return aw  # type: ignore[no-any-return]
    if cls is types.GeneratorType and aw.gi_code.co_flags & 0x100:  # CO_ITERABLE_COROUTINE
        return aw  # type: ignore[no-any-return]
    method = getattr(cls, "__await__", None)
    if method is None:
        raise TypeError(
            f"await_ takes an awaitable, got {aw!r} of type {cls.__name__}; pass a coroutine "
            "(await_(fetch(url)), not await_(fetch)), a future, or an object with __await__"
        )
    it = method(aw)
    if not hasattr(type(it), "__next__") or isinstance(it, types.CoroutineType):
        raise TypeError(
            f"__await__() of {aw!r} returned {it!r} of type {type(it).__name__}, not an "
            "iterator; fix its __await__"
        )
    if not hasattr(type(it), "__iter__"):  # `await` takes it, `yield from` wants an iterable
        return _Iterable(it)  # type: ignore[return-value]
    return it  # type: ignore[no-any-return]


class _Iterable:
    """An iterator without ``__iter__``, as `yield from` takes it (it delegates to `it`)."""

    __slots__ = ("it",)

    def __init__(self, it: Iterator[Any]) -> None:
        self.it = it

    def __iter__(self) -> Iterator[Any]:
        return self.it


# -- errors (the compiled driver raises them too) ---------------------------------------------


def outside(aw: Any) -> NotInCoroutineError:
    """`await_` outside any `run_sync` body."""
    _close(aw)
    return NotInCoroutineError(
        "await_ called outside a run_sync body: call it from synchronous code run by "
        "`await coroutine.aio.run_sync(fn, *args)` (at any depth, inside New coroutines "
        "too, but not in threads started there); in async code, write `await aw`"
    )


def not_running(aw: Any) -> CoroutineError:
    """`await_` in a body that its driver did not switch into (a foreign greenlet switch)."""
    _close(aw)
    return CoroutineError(
        "await_ called in a run_sync body that its driver is not running: another greenlet "
        "library switched into it; only its driver may resume a body"
    )


def _close(aw: Any) -> None:
    if type(aw) is types.CoroutineType:
        aw.close()  # it will never be awaited: say so here, not in a warning later


def stop_error(exc: BaseException) -> RuntimeError:
    """PEP 479: a StopIteration escaping the body would end the driver quietly."""
    return RuntimeError(f"run_sync body raised {type(exc).__name__}")


def wrong_thread() -> CoroutineError:
    return CoroutineError(
        "a run_sync body can only be driven from the thread that started it: its awaitable "
        "was resumed from another thread; await it in its own thread's event loop"
    )


def foreign(out: Any) -> CoroutineError:
    return CoroutineError(
        f"a greenlet switched to the run_sync driver without await_ (it sent {out!r}): code "
        "in the body switched to a greenlet of the event loop's thread; the body is abandoned"
    )


def abandoned() -> RuntimeError:
    return RuntimeError(
        "a run_sync body called await_ while being closed (it caught GeneratorExit and "
        "awaited again); it is abandoned: let GeneratorExit propagate"
    )
