"""`RunAsync`: `Run` for event loops, so synchronous bodies can wait on async work.

The body stays synchronous and runs in its worker greenlet; only the driver awaits. Each
resume of the body happens inside one step of the awaiting task, and the awaits happen
between resumes, so the event loop never runs inside a body.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

from greenlet import getcurrent

from ._context import NOTHING, SUSPENDED
from ._coroutine import Coroutine, bad_send
from ._driver import resume

__all__ = ["RunAsync"]

R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")


async def RunAsync(coro: Coroutine[R, S, T], fn: Callable[[R], S | Awaitable[S]]) -> T | None:
    """Drive `coro` to its end like `Run`, awaiting `fn(v)` when it returns an awaitable.

    An `Exception` from `fn` or its awaitable is raised in the body at its `Yield`, which
    may handle it; cancellation (and any other `BaseException`) stops and unwinds the body,
    then propagates.

    >>> import asyncio
    >>> from coroutine import NewWithReturn, RunAsync, Yield
    >>> def body() -> int:
    ...     return Yield[float, int](0.0) + 1
    >>> async def sleep_then_answer(delay: float) -> int:
    ...     await asyncio.sleep(delay)
    ...     return 41
    >>> asyncio.run(RunAsync(NewWithReturn[float, int](body), sleep_then_answer))
    42

    Raises:
        YieldTypeError: `fn` produced a value that is not an `S` (raised at the yield too).
        BaseException: what the body raised (an unhandled exception from `fn` included), or
            a cancellation once the body is unwound.
    """
    ctx = coro._ctx
    if not coro.Next():
        return ctx._result  # type: ignore[no-any-return]
    check = ctx._sig.check_s
    while True:
        try:
            sent = fn(ctx._recv)
            if inspect.isawaitable(sent):
                sent = await sent
            if check is not None and not check(sent):
                raise bad_send(sent, ctx._sig)
        except Exception as exc:
            if ctx._state is not SUSPENDED:
                raise
            going = resume(coro, NOTHING, exc, getcurrent())
        except BaseException:
            coro.close()
            raise
        else:
            going = ctx._state is SUSPENDED and coro._advance("Next", sent)
        if not going:
            return ctx._result  # type: ignore[no-any-return]
