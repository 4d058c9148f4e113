"""SPEC §4 line 10: RunAsync lets synchronous bodies wait on asyncio work."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coroutine import NewWithReturn, RunAsync, Yield, YieldTypeError


def fetch(url: str) -> str:
    """Synchronous code, deep in a call stack, that needs an async answer."""
    return Yield[str, str](url)


def crawl() -> list[str]:
    return [fetch(u) for u in ["a", "b", "c"]]


async def fake_http_get(url: str) -> str:
    await asyncio.sleep(0)
    return url.upper()


def test_run_async_awaits_an_async_callback_between_resumes() -> None:
    result = asyncio.run(RunAsync(NewWithReturn[str, str](crawl), fake_http_get))
    assert result == ["A", "B", "C"]


def test_run_async_accepts_a_plain_callback() -> None:
    result = asyncio.run(RunAsync(NewWithReturn[str, str](crawl), str.upper))
    assert result == ["A", "B", "C"]


def test_run_async_lets_other_tasks_run_while_awaiting() -> None:
    order: list[str] = []

    async def slow(url: str) -> str:
        order.append(f"start {url}")
        await asyncio.sleep(0.01)
        return url

    async def ticker() -> None:
        for _ in range(3):
            order.append("tick")
            await asyncio.sleep(0.005)

    async def main() -> None:
        await asyncio.gather(RunAsync(NewWithReturn[str, str](crawl), slow), ticker())

    asyncio.run(main())
    assert order.index("tick") < order.index("start b")
    assert order.count("tick") == 3


def test_run_async_cancellation_unwinds_the_body() -> None:
    unwound: list[str] = []

    def body() -> None:
        try:
            fetch("x")
        finally:
            unwound.append("finally")

    async def never(url: str) -> str:
        await asyncio.sleep(10)
        return url

    async def main() -> None:
        task = asyncio.ensure_future(RunAsync(NewWithReturn[str, str](body), never))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert unwound == ["finally"]


def test_run_async_checks_the_awaited_value_against_s() -> None:
    async def wrong(url: str) -> Any:
        return 42

    with pytest.raises(YieldTypeError, match="cannot send 42"):
        asyncio.run(RunAsync(NewWithReturn[str, str](crawl), wrong))


def test_run_async_body_exception_propagates() -> None:
    def body() -> None:
        raise KeyError("body")

    with pytest.raises(KeyError):
        asyncio.run(RunAsync(NewWithReturn[str, str](body), fake_http_get))
