"""Faults: every error leaves the coroutine in a defined state and the thread usable.

Exits (`KeyboardInterrupt`, `SystemExit`) raised in a body, in a `Run` callback and in a
``finally`` during a stop; errors from ``finally`` blocks while stopping; `RecursionError`;
bodies that swallow `CoroutineExit`; callbacks that close the coroutine they drive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from coroutine import (
    NewWithReturn,
    Run,
    RunAsync,
    Yield,
)


def two_yields(log: list[str]) -> Callable[[], int]:
    def body() -> int:
        try:
            Yield[int, Any](1)
            Yield[int, Any](2)
            return 3
        finally:
            log.append("finally")

    return body


def assert_thread_still_works() -> None:
    """A fresh coroutine can be created and run to its end on this thread."""
    c = NewWithReturn[int, int](lambda: Yield[int, int](1) + Yield[int, int](2))
    assert Run(c, lambda v: v * 10) == 30
    assert c.Done() and c.status == "done"


# -- Run's callback ends the coroutine it drives ---------------------------------------


def test_run_returns_when_its_callback_closes_the_coroutine() -> None:
    log: list[str] = []
    c = NewWithReturn[int, Any](two_yields(log))
    assert Run(c, lambda v: c.close()) is None
    assert log == ["finally"]
    assert c.Done() and c.status == "done" and c.Result() is None
    assert_thread_still_works()


def test_run_returns_the_result_when_its_callback_drives_the_coroutine_to_its_end() -> None:
    log: list[str] = []
    c = NewWithReturn[int, Any](two_yields(log))

    def finish(v: int) -> None:
        while c.Next():
            pass

    assert Run(c, finish) == 3
    assert c.status == "done" and log == ["finally"]


def test_run_async_returns_when_its_callback_closes_the_coroutine() -> None:
    log: list[str] = []
    c = NewWithReturn[int, Any](two_yields(log))
    assert asyncio.run(RunAsync(c, lambda v: c.close())) is None
    assert log == ["finally"]
    assert c.status == "done"
