"""Faults: every error leaves the coroutine in a defined state and the thread usable.

Exits (`KeyboardInterrupt`, `SystemExit`) raised in a body, in a `Run` callback and in a
``finally`` during a stop; errors from ``finally`` blocks while stopping; `RecursionError`;
bodies that swallow `CoroutineExit`; callbacks that close the coroutine they drive.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import coroutine
from coroutine import (
    Coroutine,
    CoroutineExit,
    New,
    NewWithReturn,
    ResumeError,
    Run,
    RunAsync,
    StoppedError,
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


def test_run_raises_stopped_error_when_its_callback_closes_the_coroutine() -> None:
    log: list[str] = []
    c = NewWithReturn[int, Any](two_yields(log))
    with pytest.raises(StoppedError):
        Run(c, lambda v: c.close())
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


def test_run_async_raises_stopped_error_when_its_callback_closes_the_coroutine() -> None:
    log: list[str] = []
    c = NewWithReturn[int, Any](two_yields(log))
    with pytest.raises(coroutine.StoppedError):  # SPEC §3: a stopped body has no result
        asyncio.run(RunAsync(c, lambda v: c.close()))
    assert log == ["finally"]
    assert c.status == "done"


# -- exits and errors in a body, a Run callback, a finally during a stop ----------------

EXITS = [KeyboardInterrupt, SystemExit]


def raising_body(exc: type[BaseException], log: list[str]) -> Callable[[], None]:
    def body() -> None:
        try:
            Yield[int, Any](1)
            raise exc("from the body")
        finally:
            log.append("finally")

    return body


DRIVERS: dict[str, Callable[[Coroutine[int, Any]], object]] = {
    "Next": lambda c: c.Next(),
    "send": lambda c: c.send(None),
    "next": lambda c: next(c),
    "Run": lambda c: Run(c, lambda v: None),
    "RunAsync": lambda c: asyncio.run(RunAsync(c, lambda v: None)),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("exc", EXITS)
@pytest.mark.parametrize("driver", list(DRIVERS))
def test_an_exit_raised_in_a_body_reaches_the_driver_and_ends_the_coroutine(
    exc: type[BaseException], driver: str
) -> None:
    log: list[str] = []
    c = New[int, Any](raising_body(exc, log))
    c.Next()
    with pytest.raises(exc, match="from the body"):
        DRIVERS[driver](c)
    assert (c.status, c.Done(), c.Recv(), log) == ("done", True, 1, ["finally"])
    assert c.Next() is False
    assert_thread_still_works()


@pytest.mark.parametrize("exc", [*EXITS, ValueError])
def test_an_exit_raised_in_a_run_callback_unwinds_the_body_then_leaves_run(
    exc: type[BaseException],
) -> None:
    log: list[str] = []
    c = NewWithReturn[int, Any](two_yields(log))

    def fn(v: int) -> None:
        log.append(f"fn {v}")
        raise exc("from fn")

    with pytest.raises(exc, match="from fn"):
        Run(c, fn)
    assert log == ["fn 1", "finally"]
    assert (c.status, c.Done(), c.Result()) == ("done", True, None)
    assert_thread_still_works()


def finally_raising(exc: BaseException, log: list[str]) -> Callable[[], None]:
    def body() -> None:
        try:
            try:
                Yield[int, Any](1)
            finally:
                log.append("inner finally")
                raise exc
        finally:
            log.append("outer finally")

    return body


@pytest.mark.parametrize("exc", [*EXITS, ValueError, RuntimeError])
@pytest.mark.parametrize("how", ["close", "Stop+Next", "Run+Stop"])
def test_an_error_raised_in_a_finally_during_a_stop_propagates_and_ends_the_coroutine(
    exc: type[BaseException], how: str
) -> None:
    log: list[str] = []
    c = New[int, Any](finally_raising(exc("from finally"), log))
    c.Next()
    with pytest.raises(exc, match="from finally"):
        if how == "close":
            c.close()
        elif how == "Stop+Next":
            c.Stop()
            c.Next()
        else:
            Run(c, lambda v: c.Stop())
    assert log == ["inner finally", "outer finally"]
    assert (c.status, c.Done()) == ("done", True)
    c.close()  # nothing left to do
    assert_thread_still_works()


def test_an_error_from_a_finally_while_run_unwinds_wins_with_the_callback_error_as_context() -> (
    None
):
    log: list[str] = []
    c = New[int, Any](finally_raising(KeyboardInterrupt("from finally"), log))

    def fn(v: int) -> None:
        raise ValueError("from fn")

    with pytest.raises(KeyboardInterrupt) as info:
        Run(c, fn)
    assert isinstance(info.value.__context__, ValueError)
    assert c.status == "done"


@pytest.mark.parametrize("exc", [*EXITS, ValueError])
def test_an_error_from_a_finally_while_collected_goes_to_unraisablehook(
    exc: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[BaseException | None] = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: seen.append(u.exc_value))
    log: list[str] = []
    c = New[int, Any](finally_raising(exc("from finally"), log))
    c.Next()
    del c
    assert log == ["inner finally", "outer finally"]
    assert [type(e) for e in seen] == [exc]
    assert_thread_still_works()


# -- bodies that swallow CoroutineExit --------------------------------------------------


def test_a_body_that_swallows_coroutine_exit_and_returns_ends_quietly_without_result() -> None:
    log: list[str] = []

    def body() -> int:
        try:
            Yield[int, Any](1)
        except CoroutineExit:
            log.append("swallowed")
        return 7

    c = NewWithReturn[int, Any](body)
    c.Next()
    c.close()
    assert (log, c.status, c.Result()) == (["swallowed"], "done", None)


@pytest.mark.parametrize("how", ["close", "drop"])
def test_a_body_that_swallows_coroutine_exit_and_keeps_yielding_is_ended_and_unwound_later(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[BaseException | None] = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: seen.append(u.exc_value))
    log: list[str] = []

    def body() -> None:
        while True:
            try:
                Yield[int, Any](1)
            except CoroutineExit:
                log.append("swallowed")
            except ResumeError:  # the yield of a body that nobody will resume again
                log.append("resume error")
                return

    c = New[int, Any](body)
    c.Next()
    if how == "close":
        with pytest.raises(ResumeError, match="stopped"):
            c.close()
        assert (c.status, c.Done(), log) == ("done", True, ["swallowed"])
        assert c.Next() is False  # never resumed again
        assert log == ["swallowed"]
    del c  # README: the abandoned body is unwound when its coroutine goes
    assert log == ["swallowed", "swallowed", "resume error"]
    assert [type(e) for e in seen] == ([] if how == "close" else [ResumeError])
    assert_thread_still_works()


# -- recursion -------------------------------------------------------------------------


def counting_body() -> None:
    i = 0
    while True:
        Yield[int, Any](i)
        i += 1


def at_depth(depth: int, fn: Callable[[], object]) -> object:
    """Call `fn` with about `depth` frames of recursion under it."""
    if depth <= 0:
        return fn()
    return at_depth(depth - 1, fn)


def current_depth() -> int:
    import inspect

    return len(inspect.stack(0))


@pytest.mark.parametrize("where", ["driver", "body"])
def test_a_recursion_error_at_any_point_of_a_resume_leaves_a_defined_state(where: str) -> None:
    # Drive (or yield) at every depth close to the limit: wherever the RecursionError
    # strikes in the switch path, the coroutine is suspended or done, never stuck running,
    # and no value is lost or repeated.
    limit = sys.getrecursionlimit()
    errors = 0
    for slack in range(0, 60):
        seen: list[int] = []

        def deep_body(slack: int = slack) -> None:
            i = 0
            while True:
                at_depth(limit - current_depth() - slack, lambda i=i: Yield[int, Any](i))
                i += 1

        c = New[int, Any](deep_body if where == "body" else counting_body)
        for _ in range(3):
            try:
                if where == "driver":
                    advanced = at_depth(limit - current_depth() - slack, c.Next)
                else:
                    advanced = c.Next()
            except RecursionError:
                errors += 1
                assert c.status in ("created", "suspended", "done")
                if c.Done():
                    break
                continue
            assert advanced and c.status == "suspended"
            seen.append(c.Recv())
        assert seen == list(range(len(seen)))
        c.close()
        assert c.status == "done"
    # The sweep did reach the limit; but the compiled driver (coroutine._speedups) runs no
    # Python frame between Next and the switch, and from CPython 3.12 C calls do not count
    # towards the Python recursion limit: there, nothing can strike on the driver's side.
    compiled_driver = coroutine.ACCELERATED and sys.version_info >= (3, 12)
    assert errors > 0 or (where == "driver" and compiled_driver)
    assert_thread_still_works()


# -- interpreter exit ------------------------------------------------------------------

SCRIPTS = Path(__file__).parent / "subprocess_scripts"
EXIT_CODES = {"return": 0, "sys.exit": 3, "raise": 1, "in-body": 4}


@pytest.mark.parametrize("how", list(EXIT_CODES))
def test_interpreter_exit_with_suspended_coroutines_alive_unwinds_those_of_the_main_thread(
    how: str,
) -> None:
    # docs/explanation/reliability.md, "Interpreter exit": suspended coroutines of the main
    # thread are unwound once (their finally blocks run, errors reported on stderr); those of a
    # thread still running at exit and bodies that already ended by yielding while stopped are
    # not.
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "shutdown_with_suspended.py"), how],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_CODES[how], proc.stderr
    assert "Fatal Python error" not in proc.stderr
    lines = proc.stdout.splitlines()
    for where in ["global", "cycle", "nested outer", "nested inner", "raising"]:
        assert lines.count(f"finally {where}") == 1, (where, proc.stdout)
    assert lines.index("finally nested outer") < lines.index("finally nested inner")
    assert "finally thread" not in lines  # its thread is still running: never unwound
    assert "finally zombie" not in lines  # already ended by ResumeError: left suspended
    assert lines.count("finally exiting") == (how == "in-body")
    assert "ValueError: raised by a finally at shutdown" in proc.stderr
