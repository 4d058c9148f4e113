"""`Run`: drive a coroutine to its end, answering each yield with a callback.

With the extension loaded, `_accel` puts `_speedups.Run` in place of `Run`: the same loop,
compiled, with this docstring and signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from greenlet import getcurrent

from ._context import NOTHING, SUSPENDED
from ._coroutine import Coroutine, bad_send, not_a_coroutine, not_callable
from ._driver import resume
from ._errors import StoppedError, trim_handled, trimmed

__all__ = ["Run", "refused", "stopped"]

R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")


def Run(coro: Coroutine[R, S, T], fn: Callable[[R], S]) -> T:
    """Drive `coro` to its end, sending back `fn(v)` for each value `v` it yields.

    Starts from the coroutine's current position: a value received before `Run` is not
    passed to `fn`, and a pending `Send` is delivered. Returns what the body returned
    (`coro.Result()`: for a `New` coroutine, None). `fn` may call ``coro.Stop()``: the body
    is then unwound, and having no result to return, `Run` raises `StoppedError`.

    If `fn` raises an `Exception`, it is raised in the body at its `Yield` (as `throw`
    does), so the code that asked can handle it:

    >>> from coroutine import NewWithReturn, Run, Yield
    >>> def ask() -> int:
    ...     try:
    ...         return Yield[str, int]("a") + Yield[str, int]("b")
    ...     except KeyError:
    ...         return -1
    >>> Run(NewWithReturn[str, int](ask), lambda name: {"a": 1, "b": 2}[name])
    3
    >>> Run(NewWithReturn[str, int](ask), lambda name: {"a": 1}[name])
    -1

    Raises:
        StoppedError: the body was stopped before it returned (by `fn`, or by a `Stop`,
            `close` or `throw` before `Run`), so there is no result; the coroutine is done.
        YieldTypeError: `fn` returned a value that is not an `S` (raised at the yield too).
        BaseException: what the body raised (an exception from `fn` it did not handle
            included); or, for a `BaseException` from `fn` that is not an `Exception`
            (KeyboardInterrupt, SystemExit), that exception once the body is unwound.
        ResumeError: see `Coroutine.Next`.
        TypeError: `coro` is not a coroutine, or `fn` is not callable (nothing runs).
    """
    if not isinstance(coro, Coroutine) or not callable(fn):
        raise refused(coro, fn)
    try:
        return _loop(coro, fn)
    except BaseException as exc:
        trim_handled(exc)  # see _errors.trim_handled: a bare raise adds no frame
        raise


def _loop(coro: Coroutine[R, S, T], fn: Callable[[R], S]) -> T:
    ctx = coro._ctx
    if not coro.Next():  # checks the thread, and delivers a pending Send
        if ctx._stopping:
            raise stopped(coro)
        return ctx._result  # type: ignore[no-any-return]
    check = ctx._sig.check_s
    driver = getcurrent()
    try:
        while True:
            try:
                sent = fn(ctx._recv)
                if check is not None and not check(sent):
                    raise bad_send(sent, ctx._sig)
            except Exception as exc:
                if ctx._state is not SUSPENDED:  # fn drove the coroutine itself
                    raise
                # Thrown in without this frame in its traceback, as the compiled loop
                # throws it: a body that catches it and yields would otherwise keep this
                # frame, and through it `coro`, alive from its worker's stack.
                going = resume(coro, NOTHING, trimmed(exc), driver)
            else:
                if ctx._state is SUSPENDED and not ctx._stopping:
                    going = resume(coro, sent, None, driver)
                else:  # fn stopped the coroutine, or drove it (maybe to its end) itself
                    going = ctx._state is SUSPENDED and coro._advance("Next", sent)
            if not going:
                if ctx._stopping:
                    raise stopped(coro)
                return ctx._result  # type: ignore[no-any-return]
    except BaseException:
        # A KeyboardInterrupt or the like from fn, or one that reached this loop between
        # two switches (a signal in the library's own lines): the body did not raise it,
        # so it is still suspended; unwind it, then raise, as the compiled loop does.
        if ctx._state is SUSPENDED:
            coro.close()
        raise


def refused(coro: object, fn: object) -> TypeError:
    """Why `Run(coro, fn)` refuses to start: `coro` is not a coroutine, or `fn` is not
    callable (the compiled loop calls this too, for the same words)."""
    if not isinstance(coro, Coroutine):
        return not_a_coroutine("Run", coro)
    return not_callable("Run", fn)


def stopped(coro: Coroutine[Any, Any, Any]) -> StoppedError:
    """The error for `Run` ending `coro`, whose body was stopped before it returned (the
    compiled loop calls this too)."""
    return StoppedError(
        f"Run: the body of {coro!r} was stopped before it returned, so there is no result "
        "to return; where a stop is expected, catch StoppedError, or drive the coroutine "
        "with Next and read Result() (None when it was stopped)"
    )
