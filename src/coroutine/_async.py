"""`RunAsync`: `Run` for event loops, so synchronous bodies can wait on async work.

It is `Run` inside a `run_sync` body, whose callback waits for an awaitable answer with
`await_`: so it shares the async bridge's driver loop (compiled when the extension is
loaded), and `Run`'s rules hold as written. An `Exception` from the callback or its
awaitable is raised in the body at its `Yield`; a cancellation (a `BaseException`) stops and
unwinds the body, then propagates. The event loop never runs inside a body: every await
happens in the awaiting task, between two resumes.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import TypeVar, cast

from ._coroutine import Coroutine
from ._run import Run
from .aio import await_, run_sync

__all__ = ["RunAsync"]

R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")


def RunAsync(coro: Coroutine[R, S, T], fn: Callable[[R], S | Awaitable[S]]) -> Awaitable[T]:
    """Drive `coro` to its end like `Run`, awaiting `fn(v)` when it returns an awaitable.

    Returns a coroutine to await, whose result is the body's return value (`Result()`).
    An `Exception` from `fn` or its awaitable is raised in the body at its `Yield`, which
    may handle it; cancellation (and any other `BaseException`) stops and unwinds the body,
    then propagates. The body may also call `coroutine.aio.await_` itself.

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
        TypeError: at the call, `coro` is not a coroutine made by `New` or `NewWithReturn`.
        YieldTypeError: `fn` produced a value that is not an `S` (raised at the yield too).
        StoppedError: the body was stopped before it returned (`fn` called ``coro.Stop()``),
            so there is no result.
        BaseException: what the body raised (an unhandled exception from `fn` included), or
            a cancellation once the body is unwound.
    """
    if not isinstance(coro, Coroutine):
        raise TypeError(
            f"RunAsync takes a coroutine made by New[R, S](fn) or NewWithReturn[R, S](fn), "
            f"got {coro!r} of type {type(coro).__name__}; write "
            "RunAsync(NewWithReturn[R, S](body), answer)"
        )
    return run_sync(_run_to_end, coro, fn)


def _run_to_end(coro: Coroutine[R, S, T], fn: Callable[[R], S | Awaitable[S]]) -> T:
    """The bridge's body: `Run` with `fn`'s awaitable answers awaited."""

    def answer(value: R) -> S:
        sent = fn(value)
        if type(sent) is CoroutineType or inspect.isawaitable(sent):
            return await_(cast("Awaitable[S]", sent))
        return sent

    return Run(coro, answer)  # a stopped body: Run raises StoppedError
