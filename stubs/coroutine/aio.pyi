"""Type stubs for `coroutine.aio`: what mypy and pyright read for the async bridge.

``await_(aw)`` is the awaitable's result type, as ``await aw`` would be; ``run_sync(fn, ...)``
checks the arguments against `fn`'s parameters (`ParamSpec`) and is a coroutine of `fn`'s
return type, so it can be awaited or made a task of (``asyncio.create_task``, a trio nursery).
"""

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

def run_sync(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]: ...
def await_(aw: Awaitable[T], /) -> T: ...

__all__ = ["await_", "run_sync"]
