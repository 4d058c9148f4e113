"""Call async code from synchronous code: `run_sync` and `await_` (SPEC §8).

``await run_sync(fn, *args)`` runs the synchronous ``fn(*args)`` from async code, and anywhere
below `fn` on the call stack, ``await_(aw)`` waits for an awaitable as ``await aw`` would in
async code: the body is suspended while the task awaits `aw`, and the event loop runs other
tasks meanwhile. Inside `New` coroutines nested in the body too: the whole chain waits. So a
synchronous library (a repository class over a database connection, a template engine, a
parser with callbacks) can be served from an event loop with only its bottom-most blocking
calls replaced, as SQLAlchemy's asyncio layer and greenback do, but typed for the checkers.

>>> import asyncio
>>> from coroutine.aio import await_, run_sync
>>> def fetch_all(keys: list[str]) -> dict[str, int]:  # synchronous code...
...     return {key: await_(lookup(key)) for key in keys}  # ...awaiting at the bottom
>>> async def lookup(key: str) -> int:
...     await asyncio.sleep(0)
...     return len(key)
>>> asyncio.run(run_sync(fetch_all, ["a", "bcd"]))
{'a': 1, 'bcd': 3}

The bridge works with any event loop whose tasks await ordinary awaitables (asyncio, trio,
anyio) and imports none of them. See docs/how-to/async.md for when to use it, and how it differs
from threads. The driver is compiled in the accelerator (`_speedups_c/aio.c`); `_bridge` is
its pure-Python reference.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from types import FunctionType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import _bridge
from ._accel import speedups
from ._errors import trim_handled

__all__ = ["await_", "run_sync"]

P = ParamSpec("P")
T = TypeVar("T")

_CO_COROUTINE = 0x80


def run_sync(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
    """Run the synchronous ``fn(*args, **kwargs)`` when awaited; its body may call `await_`.

    Returns a coroutine, to await (or to make a task of) once: its result is `fn`'s return
    value. The body starts at the first step of the awaiting task, in that task's
    `contextvars` context (as an awaited coroutine would: a variable it sets is seen by the
    task afterwards), and runs synchronously up to each `await_`.

    Cancelling the task (a timeout, ``task.cancel()``, a trio cancel scope) cancels the
    awaitable in flight and raises the cancellation at the body's `await_`, so its
    ``finally`` blocks run; then it propagates. Closing the coroutine while the body waits
    raises GeneratorExit there.

    >>> import asyncio
    >>> from coroutine.aio import await_, run_sync
    >>> def greet(name: str, *, punct: str) -> str:
    ...     return await_(asyncio.sleep(0, result="hello ")) + name + punct
    >>> asyncio.run(run_sync(greet, "you", punct="!"))
    'hello you!'

    Raises:
        TypeError: at the call, `fn` is not callable, or is an ``async def`` function (await
            it directly instead).
        BaseException: when awaited, what the body raised (a StopIteration escaping it
            becomes a RuntimeError, PEP 479); a RuntimeError if the body called `await_`
            again while being closed.
    """
    if not callable(fn) or (type(fn) is FunctionType and fn.__code__.co_flags & _CO_COROUTINE):
        raise _not_a_sync_function(fn)
    return _awaiting(_Driver(fn, args, kwargs))


async def _awaiting(driver: Any) -> Any:
    try:
        return await driver
    except BaseException as exc:
        trim_handled(exc)  # see _errors.trim_handled: a bare raise adds no frame
        raise


_awaiting.__name__ = _awaiting.__qualname__ = "run_sync"  # how tasks and warnings name it


def _not_a_sync_function(fn: object) -> TypeError:
    if callable(fn):
        return TypeError(
            f"run_sync runs a synchronous function, got the async function {fn!r}; await it "
            "directly (await fn(...)), or from synchronous code with await_(fn(...))"
        )
    return TypeError(
        f"run_sync takes the function to run, got {fn!r} of type {type(fn).__name__}, which "
        "is not callable; write run_sync(fn, *args, **kwargs)"
    )


if TYPE_CHECKING:  # the compiled await_ and the reference, as checkers should read them

    def await_(aw: Awaitable[T], /) -> T: ...

    _Driver: Callable[..., Any]
elif speedups is None:
    _Driver = _bridge.drive
    await_ = _bridge.await_
else:
    _HELPERS = ("outside", "not_running", "awaitable_iter", "stop_error", "wrong_thread")
    speedups.aio_setup(
        {name: getattr(_bridge, name) for name in (*_HELPERS, "foreign", "abandoned", "Thrown")}
        | {"MARK": _bridge.MARK + "_compiled"}  # its own: each driver finds only its bodies
    )
    _Driver = speedups.Bridge
    await_ = speedups.await_


def _with(driver: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """`run_sync` over another driver: the tests run both implementations in one process."""

    def run_sync_with(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not callable(fn):
            raise _not_a_sync_function(fn)
        return _awaiting(driver(fn, args, kwargs))

    return run_sync_with


_IMPLEMENTATIONS: dict[str, tuple[Callable[..., Any], Callable[[Any], Any]]] = {
    "pure": (_with(_bridge.drive), _bridge.await_)
}
"""(run_sync, await_) of each implementation loaded: "pure", and "compiled" if accelerated."""
if speedups is not None:
    _IMPLEMENTATIONS["compiled"] = (_with(speedups.Bridge), speedups.await_)
