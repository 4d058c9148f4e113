"""SPEC §3 and §4.10: `RunAsync` is `Run` inside a `run_sync` body (it shares the bridge's
driver), returns the body's result, and refuses what is not a coroutine at the call; on
asyncio and trio."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from aio_support import Loop, loop_fixture, no_body_outlives_its_test  # noqa: F401

from coroutine import (
    Current,
    New,
    NewWithReturn,
    RunAsync,
    StoppedError,
    Yield,
    YieldTypeError,
)
from coroutine.aio import await_


async def later(value: Any) -> Any:
    await anyio.sleep(0)
    return value


def test_run_async_refuses_what_is_not_a_coroutine_at_the_call() -> None:
    def body() -> None:
        pass

    for wrong in (body, body(), "coro", asyncio.sleep(0)):
        with pytest.raises(TypeError, match=r"RunAsync takes a coroutine made by New") as info:
            RunAsync(wrong, later)  # type: ignore[arg-type]
        assert repr(wrong) in str(info.value)
        if asyncio.iscoroutine(wrong):
            wrong.close()


def test_run_async_returns_the_body_result_on_both_loops(loop: Loop) -> None:
    def body() -> int:
        return Yield[int, int](1) + Yield[int, int](2)

    async def main() -> int:
        return await RunAsync(NewWithReturn[int, int](body), later)

    assert loop.run(main) == 3


def test_run_async_of_a_body_stopped_by_the_callback_raises_stopped_error(loop: Loop) -> None:
    log: list[str] = []

    def body() -> int:
        try:
            while True:
                Yield[int, int](0)
        finally:
            log.append("unwound")

    coro = NewWithReturn[int, int](body)

    def stop(_: int) -> int:
        coro.Stop()
        return 0

    with pytest.raises(StoppedError, match=r"was stopped before it returned"):
        loop.run(lambda: RunAsync(coro, stop))  # type: ignore[arg-type]
    assert log == ["unwound"] and coro.Done()


def test_a_run_async_body_may_also_await_directly_and_from_nested_coroutines(loop: Loop) -> None:
    def inner() -> None:
        Yield[int, None](await_(later(20)))

    def body() -> int:
        direct: int = await_(later(1))
        nested = sum(New[int, None](inner))
        return direct + nested + Yield[int, int](300)

    async def main() -> int:
        return await RunAsync(NewWithReturn[int, int](body), later)

    assert loop.run(main) == 321


def test_run_async_drives_the_coroutine_inside_a_bridge_body(loop: Loop) -> None:
    """The coroutine's driver is the bridge's body: not the event loop's greenlet."""
    seen: list[Any] = []

    def body() -> None:
        seen.append(Current())
        Yield[int, int](1)

    coro = New[int, int](body)
    loop.run(lambda: RunAsync(coro, later))  # type: ignore[arg-type]
    assert seen == [coro]


def test_run_async_cancellation_stops_and_unwinds_the_body(loop: Loop) -> None:
    log: list[str] = []

    def body() -> None:
        try:
            Yield[str, str]("forever")
        except BaseException as exc:
            log.append(type(exc).__name__)
            raise
        finally:
            log.append("finally")

    async def never(_: str) -> str:
        await anyio.sleep(10)
        return ""

    coro = NewWithReturn[str, str](body)

    async def main() -> None:
        with anyio.move_on_after(0.02):
            await RunAsync(coro, never)

    loop.run(main)
    assert log == ["CoroutineExit", "finally"]  # stopped by Run, as for a KeyboardInterrupt
    assert coro.Done()


def test_run_async_checks_an_awaited_answer_against_s(loop: Loop) -> None:
    def body() -> None:
        Yield[str, str]("x")

    async def wrong(_: str) -> Any:
        return 42

    with pytest.raises(YieldTypeError, match=r"cannot send 42"):
        loop.run(lambda: RunAsync(NewWithReturn[str, str](body), wrong))
