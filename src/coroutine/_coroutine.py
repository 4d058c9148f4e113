"""The coroutine object and the driver's operations on it (`_new` makes it).

Every operation that runs the body goes through the driver's side of the switch protocol
(`_driver.start`, `_driver.resume`); what an operation does in each state, and each
refusal's words, come from the table in `_lifecycle`. Every driving operation refuses,
before it changes anything, a coroutine of another thread or one that is running.
"""

from __future__ import annotations

import atexit
import gc
import sys
import threading
import traceback
from _thread import get_ident
from collections.abc import Callable
from typing import Any, Generic, NoReturn, SupportsIndex, TypeVar

from greenlet import error as greenlet_error
from greenlet import getcurrent, greenlet

from . import _lifecycle
from ._context import CREATED, DONE, NOTHING, RUNNING, SUSPENDED, Context
from ._driver import resume, start
from ._errors import CoroutineExit, ResumeError, YieldTypeError, not_copyable, trim_handled
from ._signature import Signature
from ._typecheck import describe

__all__ = ["Coroutine", "bad_send", "not_a_coroutine", "not_callable"]

R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")


class Coroutine(Generic[R, S, T]):
    """A body suspended at a `Yield`, driven by whoever holds this object.

    Made by ``New[R, S](fn)`` or ``NewWithReturn[R, S](fn)``. Drive it Go-style with
    `Next`/`Recv`/`Send`, or as a Python generator (iteration, `send`, `throw`, `close`,
    ``with``), or with `Run`. ``Coroutine[R, S]`` is ``Coroutine[R, S, None]``.

    >>> from coroutine import New, Yield
    >>> def doubler() -> None:
    ...     x = 1
    ...     while x < 10:
    ...         x = Yield[int, int](x) * 2
    >>> c = New[int, int](doubler)
    >>> c.Next(), c.Recv()
    (True, 1)
    >>> c.Send(3); c.Next(), c.Recv()
    (True, 6)
    >>> c.Send(5); c.Next(), c.Done()
    (False, True)
    """

    __slots__ = ("__weakref__", "_body", "_ctx", "_fn", "_g", "_with_return")

    # Invariants:
    # _ctx is this coroutine's Context, for life.
    # _g is the worker greenlet running the body iff the body started and is not done, or
    #   it is done by yielding while stopped (then _g keeps that body suspended until this
    #   object is collected, as a generator that ignored GeneratorExit).
    # _fn is the entry function (for repr and durability); _body is what the worker runs:
    #   _fn, or _fn wrapped by the durable recorder.
    _ctx: Context[R, S]
    _g: greenlet | None
    _fn: Callable[[], Any]
    _body: Callable[[], Any]
    _with_return: bool

    def __new__(cls, *_: object, **__: object) -> Coroutine[R, S, T]:
        raise TypeError("Coroutine objects are made with New[R, S](fn) or NewWithReturn[R, S](fn)")

    def __class_getitem__(cls, item: Any) -> Any:
        # Coroutine[R, S] means Coroutine[R, S, None] (the default of T, PEP 696).
        if isinstance(item, tuple) and len(item) == 2:
            item = (*item, type(None))
        return super().__class_getitem__(item)  # type: ignore[misc]

    # -- Go-style driving ------------------------------------------------------------

    def Next(self) -> bool:
        """Run the body to its next yield (True) or to its end (False).

        Delivers a pending `Send` to the yield it resumes. After the end, returns False
        and runs nothing. A stopped coroutine unwinds and returns False.

        Raises:
            ResumeError: the coroutine is running or normal, belongs to another thread, or
                yielded again while being stopped.
            BaseException: whatever the body raised and did not catch; the coroutine is
                then done.
        """
        ctx = self._ctx
        try:
            if ctx._state is SUSPENDED and not ctx._stopping:
                return resume(self, ctx._sent, None, getcurrent())
            return self._advance("Next", NOTHING)
        except BaseException as exc:
            trim_handled(exc)  # see _errors.trim_handled: a bare raise adds no frame
            raise

    def Recv(self) -> R:
        """The value of the last yield; None before the first; kept after the end."""
        return self._ctx._recv  # type: ignore[no-any-return]

    def Send(self, v: S, /) -> None:
        """Set what the pending yield returns when `Next` next resumes the body.

        The last `Send` before a `Next` wins; each yield clears it, so a `Send` before the
        first `Next` is lost, and so is one after the end.

        Raises:
            YieldTypeError: `v` is not an `S` (unless COROUTINE_TYPECHECK=0).
        """
        ctx = self._ctx
        check = ctx._sig.check_s
        if check is not None and not check(v):
            raise bad_send(v, ctx._sig)
        ctx._sent = v

    def Result(self) -> T | None:
        """`NewWithReturn`'s return value once done; None before, and if stopped."""
        return self._ctx._result  # type: ignore[no-any-return]

    def Stop(self) -> None:
        """Mark the coroutine to be unwound by the next `Next`; idempotent.

        Nothing runs now. The next `Next` raises `CoroutineExit` at the yield point, so
        ``finally`` blocks run innermost first, and returns False. Stopping a coroutine that
        never started means its body never runs. Does nothing once done.
        """
        ctx = self._ctx
        if ctx._state is not DONE:
            ctx._stopping = True

    def Done(self) -> bool:
        """True once the body has returned, raised, or been unwound."""
        return self._ctx._state is DONE

    def Context(self) -> Context[R, S]:
        """This coroutine's `Context`: the object ``LoadContext`` returns inside the body."""
        return self._ctx

    @property
    def status(self) -> str:
        """One of ``"created"``, ``"suspended"``, ``"running"``, ``"normal"``, ``"done"``.

        ``"normal"`` means running but resuming another coroutine, as in Lua.
        """
        ctx = self._ctx
        state = ctx._state
        if state is RUNNING and self._g is not getcurrent():
            return "normal"
        if state is CREATED and ctx._durable is not None:
            return ctx._durable.status(state)
        return state

    # -- Python protocols ------------------------------------------------------------

    def __iter__(self) -> Coroutine[R, S, T]:
        return self

    def __next__(self) -> R:
        """Iteration: ``Next()``, then the value yielded; StopIteration with `Result()` after
        the end."""
        ctx = self._ctx
        try:
            if ctx._state is SUSPENDED and not ctx._stopping:
                going = resume(self, ctx._sent, None, getcurrent())
            else:
                going = self._advance("next", NOTHING)
        except BaseException as exc:
            trim_handled(exc)  # see _errors.trim_handled: a bare raise adds no frame
            raise
        if going:
            return ctx._recv  # type: ignore[no-any-return]
        raise StopIteration(ctx._result)

    def send(self, value: S | None, /) -> R:
        """Generator protocol: ``Send(value); Next()``; the value yielded, or StopIteration.

        On a coroutine that has not started, `value` is lost (like a `Send` before the first
        `Next`) and a None is not type-checked, so ``send(None)`` primes it as it primes a
        generator.

        Raises:
            StopIteration: the body ended; its ``value`` is `Result()`.
        """
        ctx = self._ctx
        if ctx._state is CREATED and value is None:
            return self.__next__()
        check = ctx._sig.check_s
        if check is not None and not check(value):
            raise bad_send(value, ctx._sig)
        try:
            if ctx._state is SUSPENDED and not ctx._stopping:
                going = resume(self, value, None, getcurrent())
            else:
                going = self._advance("send", value)
        except BaseException as exc:
            trim_handled(exc)  # see _errors.trim_handled: a bare raise adds no frame
            raise
        if going:
            return ctx._recv  # type: ignore[no-any-return]
        raise StopIteration(ctx._result)

    def throw(self, exc: BaseException | type[BaseException], /) -> R:
        """Raise `exc` at the yield point and run to the next yield; return its value.

        On a coroutine that never started, marks it done and raises `exc` without running
        the body; on a finished one, raises `exc`.

        Raises:
            TypeError: `exc` is neither an exception nor an exception class (nothing changes).
            StopIteration: the body caught `exc` and ended.
            BaseException: `exc`, or what the body raised instead.
        """
        if isinstance(exc, type) and issubclass(exc, BaseException):
            exc = exc()
        elif not isinstance(exc, BaseException):
            raise TypeError(
                f"throw() takes an exception or an exception class, got {exc!r}; "
                "write coro.throw(ValueError('why'))"
            )
        ctx = self._ctx
        try:
            going = self._advance("throw", exc)
        except BaseException as error:
            trim_handled(error)  # see _errors.trim_handled: a bare raise adds no frame
            raise
        finally:
            del exc  # else exc -> its traceback -> this frame -> exc: a cycle holding self
        if going:
            return ctx._recv  # type: ignore[no-any-return]
        raise StopIteration(ctx._result)

    def close(self) -> None:
        """Stop the coroutine and drive it to its end, running its ``finally`` blocks.

        Raises:
            ResumeError: the body yielded again while being stopped, or it is running.
            BaseException: what a ``finally`` block raised while unwinding.
        """
        try:
            self._advance("close", NOTHING)
        except BaseException as exc:
            trim_handled(exc)  # see _errors.trim_handled: a bare raise adds no frame
            raise

    def __enter__(self) -> Coroutine[R, S, T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Leaving a ``with`` block: `close`, whatever ended the block."""
        try:
            self._advance("close", NOTHING)
        except BaseException as exc:
            trim_handled(exc)  # see _errors.trim_handled: a bare raise adds no frame
            raise

    def __repr__(self) -> str:
        fn = self._fn
        name = getattr(fn, "__qualname__", None)
        module = getattr(fn, "__module__", None)
        entry = f"{module}.{name}" if name and module else repr(fn)
        return f"<Coroutine{self._ctx._sig} {entry} status={self.status!r}>"

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise not_copyable("Coroutine")  # pickle, and copy.copy and copy.deepcopy through it

    def __del__(self) -> None:
        """Unwind an abandoned suspended body, as a collected generator is closed."""
        # An exception raised while unwinding escapes __del__, which Python reports through
        # sys.unraisablehook.
        try:
            g = self._g
        except AttributeError:  # interrupted inside New, before the slots were set
            return
        if g is None:  # created or done: nothing to unwind (the common, fast case)
            return
        ctx = self._ctx
        if ctx._thread != get_ident():
            return  # greenlet unwinds it on its own thread (docs/explanation/decisions.md)
        try:
            if ctx._state is SUSPENDED:
                self.close()
        except greenlet_error:
            pass  # greenlet itself is being finalized: nothing can run any more
        finally:
            g = self._g
            if ctx._state is DONE and g is not None:
                # The body yielded while stopping: unwind it now, not whenever its greenlet
                # goes (a parked worker it once drove may hold that greenlet until reused).
                self._g = None
                g.parent = getcurrent()  # where what the dying body raises goes
                g.throw()  # GreenletExit: the yield raises CoroutineExit, for good

    # -- the lifecycle, off the hot path ---------------------------------------------

    def _advance(self, op: str, value: Any) -> bool:
        """`op` ("Next", "next", "send", "throw" or "close") in any state but a plain
        suspended one: what `_lifecycle.TABLE` says, refusals first (D1)."""
        try:
            ctx = self._ctx
            state = ctx._state
            if state is DONE:
                if op == "throw":
                    raise value
                return False
            if state is RUNNING:
                raise self._refusal(op)
            if ctx._thread != get_ident():
                raise self._refusal(op, wrong_thread=True)
            if state is SUSPENDED:
                if op == "throw":
                    return resume(self, NOTHING, value, getcurrent())
                if op == "close":
                    ctx._stopping = True
                if ctx._stopping:
                    ctx._exit = CoroutineExit()
                    return resume(self, NOTHING, ctx._exit, getcurrent())
                return resume(self, value, None, getcurrent())
            # created
            if op == "throw" or op == "close":
                ctx._stopping = True
            if ctx._stopping and (ctx._durable is None or not ctx._durable.replays_stop()):
                ctx._vars = None
                ctx._state = DONE
                if op == "throw":
                    raise value
                return False
            went = start(self, (ctx, self._body, self._with_return))
            if op == "throw":  # a restored body was replayed to be unwound; then, as created
                raise value
            return went
        finally:
            del value  # an exception thrown may come back through this frame: no cycle

    def _refusal(self, op: str, wrong_thread: bool = False) -> ResumeError:
        """The ResumeError for `op` refused here: its words come from `_lifecycle`."""
        if wrong_thread or self._ctx._thread != get_ident():
            return _lifecycle.wrong_thread(
                op, repr(self), threading.current_thread().name, _thread_name(self._ctx._thread)
            )
        return _lifecycle.refusal(self.status, op, repr(self))


@atexit.register
def _unwind_survivors() -> None:
    """At interpreter exit, unwind the suspended coroutines of this (the main) thread that are
    still alive, as finalization unwinds a suspended generator held by a global.

    Runs once, at exit, so a scan of the heap is affordable. Errors raised while unwinding
    are reported on stderr like other exceptions ignored at exit.
    """
    me = get_ident()
    alive = [
        obj
        for obj in gc.get_objects()
        if type(obj) is Coroutine and obj._g is not None and obj._ctx._thread == me
    ]
    # Outer before inner, as generators are finalized (an outer's finally may still drive
    # the inner it holds): the worker of a suspended inner has its driver's as parent. Not
    # the heap's order, which a collection during the program reshuffles.
    workers = {id(obj._g) for obj in alive}

    def depth(obj: Coroutine[Any, Any, Any]) -> int:
        n, g = 0, obj._g and obj._g.parent
        while g is not None:
            n += id(g) in workers
            g = g.parent
        return n

    for obj in sorted(alive, key=depth):
        if obj._g is not None and obj._ctx._state is SUSPENDED:
            try:
                obj.close()
            except BaseException as exc:  # reported, as __del__ would report it
                print(f"Exception ignored while unwinding {obj!r} at exit:", file=sys.stderr)
                traceback.print_exception(exc, file=sys.stderr)


def _thread_name(ident: int) -> str:
    for t in threading.enumerate():
        if t.ident == ident:
            return t.name
    return f"<exited thread {ident}>"


def bad_send(value: object, sig: Signature) -> YieldTypeError:
    """The error for sending `value` to a coroutine of `sig`."""
    return YieldTypeError(
        f"cannot send {value!r} of type {type(value).__name__} to a coroutine of {sig}: "
        f"it expects {describe(sig.s)}; send a {describe(sig.s)}",
        expected=sig.s,
        got=value,
    )


def not_a_coroutine(op: str, got: object) -> TypeError:
    """The error for a driver `op` ("Run", ...) given `got`, which is not a coroutine."""
    hint = (
        "to run a function as a coroutine's body, pass New[R, S](fn) rather than fn"
        if callable(got)
        else "pass the object New[R, S](fn) or NewWithReturn[R, S](fn) returned"
    )
    return TypeError(f"{op} takes a coroutine, got {got!r} of type {type(got).__name__}; {hint}")


def not_callable(op: str, got: object) -> TypeError:
    """The error for a driver `op` given a callback `got` that cannot be called."""
    return TypeError(
        f"{op} takes a callback that answers each yielded value, got {got!r} of type "
        f"{type(got).__name__}, which is not callable; write {op}(coro, lambda value: ...)"
    )
