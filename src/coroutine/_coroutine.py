"""The coroutine object: creation, the driver's operations, and the lifecycle they follow.

Lifecycle (the `status` a driver sees; "normal" is a running coroutine that is itself
resuming another one):

    operation   created          suspended             running / normal    done
    ---------   -------          ---------             ----------------    ----
    Next        start -> run     resume -> run         ResumeError         False, runs nothing
    Send        value lost       pending for Next      pending for Next    ignored
    Stop        mark             mark                  mark                nothing
    throw       done, raise exc  raise at yield        ResumeError         raise exc
    close       done             Stop + Next           ResumeError         nothing
    collected   nothing          close, errors to      (cannot happen)     nothing
                                 sys.unraisablehook

"run" ends at the next yield (suspended), or at the body's end (done). A marked (stopped)
coroutine resumes by raising `CoroutineExit` at its yield point, or, if it was never
started, ends without running. Every driving operation first checks that it is called on
the coroutine's own thread.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import sys
import threading
import traceback
from _thread import get_ident
from collections.abc import Callable
from contextvars import copy_context
from typing import Any, Generic, TypeVar

from greenlet import error as greenlet_error
from greenlet import getcurrent, greenlet

from . import _durable, _worker
from ._context import CREATED, DONE, NOTHING, RUNNING, SUSPENDED, Context, type_params
from ._errors import CoroutineExit, ResumeError, YieldTypeError, internal_error
from ._signature import Signature, signature
from ._typecheck import describe

__all__ = ["Coroutine", "New", "NewWithReturn", "bad_send"]

R = TypeVar("R")
S = TypeVar("S")


class Coroutine(Generic[R, S]):
    """A body suspended at a `Yield`, driven by whoever holds this object.

    Made by ``New[R, S](fn)`` or ``NewWithReturn[R, S](fn)``. Drive it Go-style with
    `Next`/`Recv`/`Send`, or as a Python generator (iteration, `send`, `throw`, `close`,
    ``with``), or with `Run`.

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

    __slots__ = ("__weakref__", "_ctx", "_fn", "_g", "_with_return")

    # Invariants:
    # _ctx is this coroutine's Context, for life.
    # _g is the worker greenlet running the body iff the body started and is not done, or
    #   it is done by yielding while stopped (then _g keeps that body suspended until this
    #   object is collected, as a generator that ignored GeneratorExit).
    # _fn is the entry function (kept for repr and for durability).
    _ctx: Context[R, S]
    _g: greenlet | None
    _fn: Callable[[], Any]
    _with_return: bool

    def __new__(cls, *_: object, **__: object) -> Coroutine[R, S]:
        raise TypeError("Coroutine objects are made with New[R, S](fn) or NewWithReturn[R, S](fn)")

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
        if ctx._state is not SUSPENDED or ctx._stopping:
            return self._next_not_suspended()
        # -- _resume(ctx._sent, None), inlined: this is the hot path of Go-style driving --
        ctx._driver = getcurrent()
        ctx._state = RUNNING
        try:
            out = self._g.switch(ctx._sent)  # type: ignore[union-attr]
        except greenlet_error:
            raise self._refused() from None
        if ctx._state is SUSPENDED:
            ctx._recv = out
            return True
        return self._ended(out)

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

    def Result(self) -> R | None:
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
            return ctx._durable.status(state)  # type: ignore[no-any-return]
        return state

    # -- Python protocols ------------------------------------------------------------

    def __iter__(self) -> Coroutine[R, S]:
        return self

    def __next__(self) -> R:
        ctx = self._ctx
        if ctx._state is not SUSPENDED or ctx._stopping:
            if self._next_not_suspended():
                return ctx._recv  # type: ignore[no-any-return]
            raise StopIteration(ctx._result)
        # -- Next(), inlined: `for v in coro` is the most common way to drive a coroutine --
        ctx._driver = getcurrent()
        ctx._state = RUNNING
        try:
            out = self._g.switch(ctx._sent)  # type: ignore[union-attr]
        except greenlet_error:
            raise self._refused() from None
        if ctx._state is SUSPENDED:
            ctx._recv = out
            return out  # type: ignore[no-any-return]
        self._ended(out)
        raise StopIteration(ctx._result)

    def send(self, value: S, /) -> R:
        """Generator protocol: ``Send(value); Next()``; the value yielded, or StopIteration.

        On a coroutine that has not started, `value` is lost (like a `Send` before the first
        `Next`) and a None is not type-checked, so ``send(None)`` primes it as it primes a
        generator.

        Raises:
            StopIteration: the body ended; its ``value`` is `Result()`.
        """
        ctx = self._ctx
        if ctx._state is CREATED:
            if value is not None:
                self.Send(value)  # checked, then lost
            return self.__next__()
        check = ctx._sig.check_s
        if check is not None and not check(value):
            raise bad_send(value, ctx._sig)
        if ctx._state is not SUSPENDED or ctx._stopping:
            ctx._sent = value
            return self.__next__()
        # -- Send(value) + Next(), inlined --
        ctx._driver = getcurrent()
        ctx._state = RUNNING
        try:
            out = self._g.switch(value)  # type: ignore[union-attr]
        except greenlet_error:
            raise self._refused() from None
        if ctx._state is SUSPENDED:
            ctx._recv = out
            return out  # type: ignore[no-any-return]
        self._ended(out)
        raise StopIteration(ctx._result)

    def throw(self, exc: BaseException | type[BaseException], /) -> R:
        """Raise `exc` at the yield point and run to the next yield; return its value.

        On a coroutine that never started, marks it done and raises `exc` without running
        the body; on a finished one, raises `exc`.

        Raises:
            StopIteration: the body caught `exc` and ended.
            BaseException: `exc`, or what the body raised instead.
        """
        if isinstance(exc, type):
            exc = exc()
        ctx = self._ctx
        state = ctx._state
        try:
            if state is SUSPENDED:
                if self._resume(NOTHING, exc):
                    return ctx._recv  # type: ignore[no-any-return]
                raise StopIteration(ctx._result)
            if state is CREATED:
                self._check_thread("throw into")
                self._end_unstarted()
            elif state is RUNNING:
                raise self._busy("throw into")
            raise exc
        finally:
            del exc  # else exc -> its traceback -> this frame -> exc: a cycle holding self

    def close(self) -> None:
        """Stop the coroutine and drive it to its end, running its ``finally`` blocks.

        Raises:
            ResumeError: the body yielded again while being stopped, or it is running.
            BaseException: what a ``finally`` block raised while unwinding.
        """
        state = self._ctx._state
        if state is DONE:
            return
        if state is RUNNING:
            raise self._busy("close")
        self._check_thread("close")  # before Stop, so that a refused close changes nothing
        self.Stop()
        self.Next()

    def __enter__(self) -> Coroutine[R, S]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        fn = self._fn
        name = getattr(fn, "__qualname__", None)
        module = getattr(fn, "__module__", None)
        entry = f"{module}.{name}" if name and module else repr(fn)
        return f"<Coroutine{self._ctx._sig} {entry} status={self.status!r}>"

    def __del__(self) -> None:
        # Unwind an abandoned suspended body like a generator's; an exception raised while
        # unwinding escapes __del__, which Python reports through sys.unraisablehook.
        if self._g is None:  # created or done: nothing to unwind (the common, fast case)
            return
        ctx = self._ctx
        if ctx._thread != get_ident():
            return  # greenlet unwinds it when its own thread next switches (see README)
        try:
            if ctx._state is SUSPENDED:
                self.close()
        except greenlet_error:
            pass  # greenlet itself is being finalized: nothing can run any more
        finally:
            if ctx._state is DONE and self._g is not None:
                # The body yielded while stopping: unwind it now, not whenever its greenlet
                # goes (a parked worker it once drove may hold that greenlet until reused).
                g = self._g
                self._g = None
                g.parent = getcurrent()  # where what the dying body raises goes
                g.throw()  # GreenletExit: the yield raises CoroutineExit, for good

    # -- the driver's side of a switch -----------------------------------------------

    def _resume(self, value: Any, exc: BaseException | None) -> bool:
        """Switch into the suspended body with `value` (or raising `exc`) until it yields
        (True) or ends (False)."""
        ctx = self._ctx
        g = self._g
        ctx._driver = getcurrent()
        ctx._state = RUNNING
        try:
            if exc is None and not ctx._stopping:
                out = g.switch(value)  # type: ignore[union-attr]
            else:
                out = g.throw(exc if exc is not None else CoroutineExit())  # type: ignore[union-attr]
                exc = None  # _ended may raise it: through this frame, that would be a cycle
        except greenlet_error:
            raise self._refused() from None
        if ctx._state is SUSPENDED:
            ctx._recv = out
            return True
        return self._ended(out)

    def _refused(self) -> BaseException:
        """greenlet refused a switch in (before anything ran): restore and explain.

        The thread is checked after the fact, so that the common path has no thread lookup.
        """
        ctx = self._ctx
        ctx._state = SUSPENDED
        if ctx._thread != get_ident():
            return self._wrong_thread()
        return internal_error("greenlet refused to resume the body of a suspended coroutine")

    def _next_not_suspended(self) -> bool:
        ctx = self._ctx
        state = ctx._state
        if state is SUSPENDED:  # and stopping
            return self._resume(NOTHING, None)
        if state is DONE:
            return False
        if state is RUNNING:
            raise self._busy("resume")
        self._check_thread("start")
        if ctx._stopping and (ctx._durable is None or not ctx._durable.replays_stop()):
            self._end_unstarted()
            return False
        if ctx._durable is not None:
            ctx._durable.before_start(ctx)
        g = _worker.acquire()
        g.gr_context = ctx._vars
        ctx._vars = None
        ctx._gid = id(g)
        ctx._driver = getcurrent()
        self._g = g
        ctx._state = RUNNING
        out = g.switch((ctx, self._fn, self._with_return))
        if ctx._state is SUSPENDED:
            ctx._recv = out
            return True
        return self._ended(out)

    def _ended(self, out: Any) -> bool:
        """The body ended: recycle its worker and raise what it raised."""
        ctx = self._ctx
        if ctx._state is not DONE:
            raise internal_error(
                f"the body's greenlet switched to its driver without yielding (got {out!r}); "
                "another greenlet library switched to this driver"
            )
        ctx._driver = None
        if out is _worker.PARKED:
            g = self._g
            self._g = None
            ctx._gid = 0
            _worker.release(g)  # type: ignore[arg-type]
        # else the body yielded while stopping: self._g keeps it suspended until collected.
        exc = ctx._exc
        if exc is not None:
            ctx._exc = None
            try:
                raise exc
            finally:
                del exc
        return False

    def _end_unstarted(self) -> None:
        ctx = self._ctx
        ctx._state = DONE
        ctx._vars = None

    def _check_thread(self, op: str) -> None:
        if self._ctx._thread != get_ident():
            raise self._wrong_thread(op)

    def _wrong_thread(self, op: str = "resume") -> ResumeError:
        owner = _thread_name(self._ctx._thread)
        here = threading.current_thread().name
        return ResumeError(
            f"cannot {op} {self!r} from thread {here!r}: it belongs to thread {owner!r}, "
            "which created it; drive each coroutine from its own thread"
        )

    def _busy(self, op: str) -> ResumeError:
        status = self.status
        why = "it is running" if status == "running" else "it is resuming another coroutine"
        return ResumeError(
            f"cannot {op} {self!r}: {why}; a coroutine can only be resumed while suspended"
        )


@atexit.register
def _unwind_survivors() -> None:
    """At interpreter exit, unwind the suspended coroutines of this (the main) thread that are
    still alive, as finalization unwinds a suspended generator held by a global.

    Runs once, at exit, so a scan of the heap is affordable. Errors raised while unwinding
    are reported on stderr like other exceptions ignored at exit.
    """
    me = get_ident()
    for obj in gc.get_objects():
        if type(obj) is not Coroutine or obj._g is None:
            continue
        ctx = obj._ctx
        if ctx._state is SUSPENDED and ctx._thread == me:
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


def _create(
    sig: Signature,
    with_return: bool,
    fn: Callable[[], Any],
    /,
    *,
    durable: bool | None = None,
    version: str | None = None,
) -> Coroutine[Any, Any]:
    if not callable(fn):
        kind = "NewWithReturn" if with_return else "New"
        raise TypeError(
            f"{kind} takes the body as a function of no arguments, got {fn!r}; write "
            f"{kind}[R, S](fn), or wrap arguments with functools.partial or a lambda"
        )
    coro: Coroutine[Any, Any] = object.__new__(Coroutine)
    coro._g = None  # first: __del__ reads it
    coro._fn = fn
    coro._with_return = with_return
    coro._ctx = Context._make(sig, coro, copy_context())
    if durable or (durable is None and _durable.DURABLE):
        _durable.attach(coro, explicit=bool(durable), version=version)
    return coro


_ANY = signature(Any, Any)
_factories: dict[tuple[object, bool], Callable[..., Coroutine[Any, Any]]] = {}


def _factory(item: Any, with_return: bool, name: str) -> Callable[..., Coroutine[Any, Any]]:
    try:
        return _factories[item, with_return]
    except (KeyError, TypeError):
        pass
    made = functools.partial(_create, signature(*type_params(item, name)), with_return)
    with contextlib.suppress(TypeError):  # unhashable type forms are not cached
        _factories[item, with_return] = made
    return made


class New(Coroutine[R, S]):
    """``New[R, S](fn)``: a coroutine that will run `fn()` as its body; nothing runs yet.

    `fn` may call ``Yield[R, S](v)`` anywhere down its call stack. Its return value is
    ignored (see `NewWithReturn`). ``New(fn)`` is ``New[Any, Any](fn)``.

    Args:
        fn: the body, a function of no arguments.
        durable: record the coroutine so it can be marshalled (see docs/durable.md);
            None means the `coroutine.Durable` default.
        version: the program's version, for a durable coroutine: its states then resume
            under the same version whatever the code has become (guard changes with
            `coroutine.Patched`); without it, only under the same code.

    Raises:
        TypeError: `fn` is not callable.
        NotDurableError: ``durable=True`` and `fn` cannot be recorded.
    """

    __slots__ = ()

    def __class_getitem__(cls, item: Any) -> Any:
        return _factory(item, False, "New")

    def __new__(
        cls, fn: Callable[[], object], /, *, durable: bool | None = None, version: str | None = None
    ) -> Any:
        return _create(_ANY, False, fn, durable=durable, version=version)


class NewWithReturn(Coroutine[R, S]):
    """``NewWithReturn[R, S](fn)``: like `New`, and `Result()` is `fn`'s return value.

    Raises:
        TypeError: `fn` is not callable.
        NotDurableError: ``durable=True`` and `fn` cannot be recorded.
    """

    __slots__ = ()

    def __class_getitem__(cls, item: Any) -> Any:
        return _factory(item, True, "NewWithReturn")

    def __new__(
        cls, fn: Callable[[], R], /, *, durable: bool | None = None, version: str | None = None
    ) -> Any:
        return _create(_ANY, True, fn, durable=durable, version=version)
