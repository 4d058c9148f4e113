"""`Run` (SPEC §3, §4.9): what it accepts, and what it returns.

Every test runs in both suites: against the compiled loop (`_speedups.run`) and, with
``COROUTINE_PURE=1``, against the Python one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coroutine import Coroutine, CoroutineError, New, NewWithReturn, Run, StoppedError, Yield


def _one() -> int:
    return Yield[int, int](1) + 1


def _gen() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("got", "shown"),
    [
        (lambda: 1, r"<function .*<lambda>.* of type function; .*pass New\[R, S\]\(fn\) rather"),
        (_one, r"<function _one .* of type function; .*pass New\[R, S\]\(fn\) rather than fn"),
        (3, r"3 of type int; pass the object New\[R, S\]\(fn\)"),
        (None, r"None of type NoneType; pass the object"),
        (_gen(), r"<generator object _gen .* of type generator; pass the object"),
    ],
    ids=["lambda", "function", "int", "None", "generator"],
)
def test_run_given_something_that_is_not_a_coroutine_raises_type_error_naming_it(
    got: Any, shown: str
) -> None:
    with pytest.raises(TypeError, match=rf"^Run takes a coroutine, got {shown}"):
        Run(got, lambda v: v)


def test_run_given_a_callback_that_is_not_callable_refuses_before_the_body_starts() -> None:
    c = NewWithReturn[int, int](_one)
    with pytest.raises(TypeError, match=r"^Run takes a callback .*got 5 of type int, which is"):
        Run(c, 5)  # type: ignore[arg-type]
    assert c.status == "created"
    assert Run(c, lambda v: v) == 2


def test_run_checks_the_coroutine_before_the_callback() -> None:
    with pytest.raises(TypeError, match=r"^Run takes a coroutine, got 3"):
        Run(3, 4)  # type: ignore[arg-type]


def test_run_returns_the_body_result() -> None:
    assert Run(NewWithReturn[int, int](_one), lambda v: v * 10) == 11
    assert Run(New[int, int](_one), lambda v: v) is None


def _counts(log: list[str]) -> int:
    try:
        total = 0
        while total < 100:
            total += Yield[int, int](total)
        return total
    finally:
        log.append("finally")


def test_run_raises_stopped_error_when_the_callback_stops_the_body() -> None:
    log: list[str] = []
    c = NewWithReturn[int, int](lambda: _counts(log))

    def answer(v: int) -> int:
        if v >= 3:
            c.Stop()
        return 1

    with pytest.raises(StoppedError, match=r"^Run: the body of <Coroutine.* was stopped before"):
        Run(c, answer)
    assert log == ["finally"] and c.Done() and c.Result() is None
    assert issubclass(StoppedError, CoroutineError)


@pytest.mark.parametrize("stop", [Coroutine.Stop, Coroutine.close], ids=["Stop", "close"])
@pytest.mark.parametrize("started", [False, True], ids=["created", "suspended"])
def test_run_on_a_coroutine_stopped_before_it_raises_stopped_error(
    stop: Any, started: bool
) -> None:
    log: list[str] = []
    c = NewWithReturn[int, int](lambda: _counts(log))
    if started:
        assert c.Next()
    stop(c)
    with pytest.raises(StoppedError):
        Run(c, lambda v: 1)
    assert c.Done() and c.Result() is None
    assert log == (["finally"] if started else [])


def test_run_on_a_coroutine_thrown_into_before_it_started_raises_stopped_error() -> None:
    c = NewWithReturn[int, int](_one)
    with pytest.raises(KeyError):
        c.throw(KeyError("never started"))
    with pytest.raises(StoppedError):
        Run(c, lambda v: v)


def test_a_body_that_swallows_the_stop_and_returns_still_has_no_result_for_run() -> None:
    def stubborn() -> int:
        try:
            Yield[int, int](1)
        except BaseException:
            pass
        return 7

    c = NewWithReturn[int, int](stubborn)

    def answer(v: int) -> int:
        c.Stop()
        return 0

    with pytest.raises(StoppedError):
        Run(c, answer)
    assert c.Result() is None


def test_run_on_a_coroutine_that_returned_before_returns_its_result_again() -> None:
    c = NewWithReturn[int, int](_one)
    assert Run(c, lambda v: v) == 2
    assert Run(c, lambda v: v) == 2
