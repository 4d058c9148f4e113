"""Leaks: abandoned coroutines are unwound once and freed; memory and refcounts stay flat.

Everything here relies on reference counting alone where the README promises it (no
`gc.collect()` needed), and checks `gc.garbage` stays empty.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from coroutine import Coroutine, CoroutineExit, New, ResumeError, Yield


@contextmanager
def no_gc() -> Iterator[None]:
    """Reference counting only: a cycle would keep what it holds alive in here."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def body_raising_at_first_yield() -> None:
    Yield[int, Any](1)


def drop_after(make: Callable[[], Coroutine[int, Any]], op: Callable[[Any], object]) -> bool:
    """Apply `op` to a fresh coroutine, swallow what it raises, drop it: was it freed?"""
    c = make()
    try:
        op(c)
    except BaseException:
        pass
    ref = weakref.ref(c)
    del c
    return ref() is None


def started() -> Coroutine[int, Any]:
    c = New[int, Any](body_raising_at_first_yield)
    c.Next()
    return c


def finished() -> Coroutine[int, Any]:
    c = New[int, Any](body_raising_at_first_yield)
    list(c)
    return c


@pytest.mark.parametrize(
    ("make", "state"),
    [
        (lambda: New[int, Any](body_raising_at_first_yield), "created"),
        (started, "suspended"),
        (finished, "done"),
    ],
)
def test_a_coroutine_that_threw_is_freed_by_reference_counting(
    make: Callable[[], Coroutine[int, Any]], state: str
) -> None:
    with no_gc():
        assert drop_after(make, lambda c: c.throw(KeyError("thrown")))


def test_a_body_that_yielded_while_stopping_is_unwound_when_its_coroutine_goes() -> None:
    # README: its frames stay suspended until the coroutine is collected, then unwound.
    # Here the body's worker is also the last driver of a finished inner coroutine, whose
    # parked worker must not keep it suspended past its coroutine's collection.
    log: list[str] = []

    def outer() -> None:
        list(New[int, Any](lambda: Yield[int, Any](0)))
        try:
            Yield[int, Any](1)
        except CoroutineExit:
            try:
                Yield[int, Any](2)  # yields while stopping
            finally:
                log.append("finally")

    c = New[int, Any](outer)
    c.Next()
    with pytest.raises(ResumeError, match="stopped"):
        c.close()
    assert log == [] and c.Done()
    with no_gc():
        del c
        assert log == ["finally"]
