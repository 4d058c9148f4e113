"""SPEC §4.9-4.10: a failure of `Run`'s callback is delivered where it was asked for.

And SPEC §4.8 with C code that swallows the stop: a sqlite3 user function paused at a yield.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import traceback
from typing import Any

import pytest

from coroutine import CoroutineExit, New, NewWithReturn, Run, RunAsync, Yield


def lookup(key: str) -> int:
    return {"a": 1}[key]


def asks_and_handles() -> list[str]:
    got = []
    for key in ("a", "missing", "a"):
        try:
            got.append(f"{key}={Yield[str, int](key)}")
        except KeyError as exc:
            got.append(f"{key}: {exc!r}")
    return got


def test_an_exception_from_the_callback_is_raised_at_the_yield_and_may_be_handled() -> None:
    result = Run(NewWithReturn[str, int](asks_and_handles), lookup)
    assert result == ["a=1", "missing: KeyError('missing')", "a=1"]


def asks_once() -> int:
    return Yield[str, int]("missing")


def test_an_unhandled_callback_exception_leaves_run_with_the_body_frames() -> None:
    c = NewWithReturn[str, int](asks_once)
    with pytest.raises(KeyError) as info:
        Run(c, lookup)
    assert c.Done()
    names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "asks_once" in names and "lookup" in names


def test_a_keyboard_interrupt_from_the_callback_stops_and_unwinds_the_body() -> None:
    log: list[str] = []

    def body() -> None:
        try:
            Yield[str, int]("x")
        except BaseException as exc:
            log.append(type(exc).__name__)
            raise

    def interrupt(_: str) -> int:
        raise KeyboardInterrupt

    c = New[str, int](body)
    with pytest.raises(KeyboardInterrupt):
        Run(c, interrupt)
    assert log == ["CoroutineExit"] and c.Done()


def test_run_async_throws_an_awaited_failure_into_the_body() -> None:
    async def answer(key: str) -> int:
        await asyncio.sleep(0)
        return lookup(key)

    result = asyncio.run(RunAsync(NewWithReturn[str, int](asks_and_handles), answer))
    assert result == ["a=1", "missing: KeyError('missing')", "a=1"]


def test_run_async_cancellation_stops_and_unwinds_the_body() -> None:
    log: list[str] = []

    def body() -> None:
        try:
            Yield[str, int]("x")
        finally:
            log.append("finally")

    async def never(_: str) -> int:
        await asyncio.sleep(3600)
        return 0

    async def main() -> None:
        task = asyncio.ensure_future(RunAsync(New[str, int](body), never))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert log == ["finally"]


# -- C code that swallows the stop ----------------------------------------------------------


def paused_in_sqlite(log: list[str]) -> None:
    con = sqlite3.connect(":memory:")

    def ask(x: int) -> int:
        return Yield[int, int](x)

    con.create_function("ask", 1, ask)
    try:
        con.execute("select ask(1)").fetchall()
    finally:
        log.append("finally")
        con.close()


def test_closing_a_coroutine_paused_in_a_sqlite3_function_is_a_clean_stop() -> None:
    log: list[str] = []
    c = New[int, int](lambda: paused_in_sqlite(log))
    assert c.Next() and c.Recv() == 1
    c.close()  # sqlite3 turns the CoroutineExit into OperationalError: the stop is complete
    assert c.Done() and log == ["finally"]


def test_dropping_a_coroutine_paused_in_a_sqlite3_function_reports_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    log: list[str] = []
    c = New[int, int](lambda: paused_in_sqlite(log))
    c.Next()
    del c
    assert log == ["finally"] and reported == []


def test_an_error_raised_by_a_finally_while_stopping_still_propagates() -> None:
    def body() -> None:
        try:
            Yield[int, int](1)
        finally:
            raise ValueError("from finally")

    c = New[int, int](body)
    c.Next()
    with pytest.raises(ValueError, match="from finally"):
        c.close()


def test_an_error_raised_after_the_body_swallowed_the_stop_in_python_propagates() -> None:
    def body() -> None:
        try:
            Yield[int, int](1)
        except CoroutineExit:
            pass
        raise ValueError("after swallowing the stop")

    c = New[int, int](body)
    c.Next()
    with pytest.raises(ValueError, match="after swallowing"):
        c.close()
