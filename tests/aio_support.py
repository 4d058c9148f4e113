"""Shared by the tests of `coroutine.aio`: each implementation, each event loop, and the check
that no body outlives its test.

`Impl` is one implementation's pair (run_sync, await_): "pure" (`_bridge`, always) and
"compiled" (`_speedups`, when the extension is loaded). `Loop` runs an async function on
asyncio or trio through anyio, whose primitives (sleep, events, cancel scopes, task groups)
are the loop's own.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from greenlet import greenlet

from coroutine import _bridge
from coroutine.aio import _IMPLEMENTATIONS


async def answer(value: Any) -> Any:
    """An awaitable that really suspends (one trip through the event loop)."""
    await anyio.sleep(0)
    return value


class Suspend:
    """An awaitable that suspends once, on no event loop (for coroutines driven by hand)."""

    def __await__(self) -> Generator[str, Any, str]:
        yield "suspended"
        return "resumed"


@dataclass(frozen=True)
class Impl:
    name: str
    run_sync: Callable[..., Any]
    await_: Callable[[Any], Any]


IMPLS = [Impl(name, *pair) for name, pair in _IMPLEMENTATIONS.items()]


@dataclass(frozen=True)
class Loop:
    name: str  # "asyncio" or "trio"

    def run(self, main: Callable[[], Awaitable[Any]]) -> Any:
        return anyio.run(main, backend=self.name)

    @property
    def cancelled(self) -> type[BaseException]:
        """The exception a cancellation raises on this loop (asyncio.CancelledError,
        trio.Cancelled)."""
        if self.name == "asyncio":
            import asyncio

            return asyncio.CancelledError
        import trio

        return trio.Cancelled


LOOPS = [Loop("asyncio"), Loop("trio")]


# Fixtures under their own names (`impl`, `loop`): a test module imports the functions,
# whose names then do not clash with the parameters.


@pytest.fixture(name="impl", params=IMPLS, ids=lambda i: i.name)
def impl_fixture(request: pytest.FixtureRequest) -> Impl:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(name="loop", params=LOOPS, ids=lambda loop: loop.name)
def loop_fixture(request: pytest.FixtureRequest) -> Loop:
    return request.param  # type: ignore[no-any-return]


def live_bodies() -> list[greenlet]:
    """Body greenlets of either implementation that are started and not finished."""
    marks = (_bridge.MARK, _bridge.MARK + "_compiled")
    return [
        g
        for g in gc.get_objects()
        if isinstance(g, greenlet) and g and any(hasattr(g, m) for m in marks)
    ]


@pytest.fixture(autouse=True)
def no_body_outlives_its_test() -> Iterator[None]:
    yield
    gc.collect()
    left = live_bodies()
    assert not left, f"run_sync bodies still suspended after the test: {left}"
