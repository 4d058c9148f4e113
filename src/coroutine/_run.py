"""`Run`: drive a coroutine to its end, answering each yield with a callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from greenlet import getcurrent

from ._context import RUNNING, SUSPENDED
from ._coroutine import Coroutine, bad_send

__all__ = ["Run"]

R = TypeVar("R")
S = TypeVar("S")


def Run(coro: Coroutine[R, S], fn: Callable[[R], S]) -> R | None:
    """Drive `coro` to its end, sending back `fn(v)` for each value `v` it yields.

    Starts from the coroutine's current position: a value received before `Run` is not
    passed to `fn`, and a pending `Send` is delivered. Returns `coro.Result()`. `fn` may call
    ``coro.Stop()``; the body is then unwound and `Run` returns.

    >>> from coroutine import NewWithReturn, Run, Yield
    >>> def ask() -> int:
    ...     return Yield[str, int]("a") + Yield[str, int]("b")
    >>> Run(NewWithReturn[str, int](ask), lambda name: {"a": 1, "b": 2}[name])
    3

    Raises:
        YieldTypeError: `fn` returned a value that is not an `S`.
        BaseException: what `fn` raised, after the coroutine was stopped and unwound (an error
            raised while unwinding wins, with `fn`'s exception as its ``__context__``); or
            what the body raised.
        ResumeError: see `Coroutine.Next`.
    """
    ctx = coro._ctx
    if not coro.Next():  # checks the thread, and delivers a pending Send
        return ctx._result  # type: ignore[no-any-return]
    check = ctx._sig.check_s
    driver = getcurrent()
    worker = coro._g
    while True:
        try:
            sent = fn(ctx._recv)
            if check is not None and not check(sent):
                raise bad_send(sent, ctx._sig)
        except BaseException:
            coro.close()
            raise
        if ctx._state is not SUSPENDED or ctx._stopping:
            # fn stopped the coroutine, or drove it itself (maybe to its end, or closed it):
            # take the general path.
            if ctx._state is not SUSPENDED or not coro._resume(sent, None):
                return ctx._result  # type: ignore[no-any-return]
            continue
        # -- Coroutine._resume(sent, None), inlined: the hot path of Run --
        ctx._driver = driver
        ctx._state = RUNNING
        out = worker.switch(sent)  # type: ignore[union-attr]
        if ctx._state is SUSPENDED:
            ctx._recv = out
        else:
            coro._ended(out)
            return ctx._result  # type: ignore[no-any-return]
