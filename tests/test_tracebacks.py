"""Tracebacks like a generator's: an exception leaving the library shows the line that drove
the coroutine, then the body's frames, and none of the library's machinery.

Each test lists every frame of the traceback, as (file, function), from the driving line on,
on both implementations. The compiled one adds no frame of its own (its entry points are C);
the pure one takes its own out (`_errors.trim_handled`, then a bare ``raise``, which adds no
entry; on Python 3.10 that takes setting the handled exception's traceback too). The event
loop's frames are left out of the comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import pytest

from coroutine import Coroutine, New, NewWithReturn, Run, RunAsync, Yield

Frames = list[tuple[str, str]]


def frames_of(drive: Callable[[], object], exc: type[BaseException] = KeyError) -> Frames:
    """The traceback of what `drive` raised, from `drive`'s frame on, as (file, function);
    asyncio's own frames left out."""
    with pytest.raises(exc) as info:
        drive()
    return [
        (os.path.basename(f.filename), f.name)
        for f in traceback.extract_tb(info.value.__traceback__)[1:]  # from drive's frame
        if os.sep + "asyncio" + os.sep not in f.filename
    ]


HERE = os.path.basename(__file__)


def fails_deep() -> None:
    Yield[int, Any](1)
    fail()


def fail() -> None:
    raise KeyError("from the body")


def yields_deep() -> None:
    waits()


def waits() -> None:
    Yield[int, Any](1)


def started(body: Callable[[], None]) -> Coroutine[int, Any, None]:
    c = New[int, Any](body)
    assert c.Next()
    return c


BODY = [(HERE, "fails_deep"), (HERE, "fail")]
YIELDS = [(HERE, "yields_deep"), (HERE, "waits")]


def test_a_body_error_through_next() -> None:
    c = started(fails_deep)

    def drive() -> None:
        c.Next()

    assert frames_of(drive) == [(HERE, "drive"), *BODY]


def test_a_body_error_through_the_first_next() -> None:
    def drive() -> None:
        New[int, Any](fail).Next()

    assert frames_of(drive) == [(HERE, "drive"), (HERE, "fail")]


def test_a_body_error_through_iteration() -> None:
    c = started(fails_deep)

    def drive() -> None:
        next(c)

    assert frames_of(drive) == [(HERE, "drive"), *BODY]


def test_a_body_error_through_send() -> None:
    c = started(fails_deep)

    def drive() -> None:
        c.send(2)

    assert frames_of(drive) == [(HERE, "drive"), *BODY]


def test_a_thrown_in_exception_shows_three_levels_as_a_generator_does() -> None:
    # CPython's test_generators: an exception thrown in through ``yield from`` shows the
    # throwing line, the generator, and the generator it delegates to; here, the body and
    # the function of the body that yielded. The yield's machinery is not shown.
    def gen_waits() -> Iterator[int]:
        yield 1

    def gen_body() -> Iterator[int]:
        yield from gen_waits()

    g = gen_body()
    next(g)
    c = started(yields_deep)

    def drive() -> None:
        g.throw(KeyError("in"))

    def drive_coroutine() -> None:
        c.throw(KeyError("in"))

    assert frames_of(drive) == [(HERE, "drive"), (HERE, "gen_body"), (HERE, "gen_waits")]
    assert frames_of(drive_coroutine) == [(HERE, "drive_coroutine"), *YIELDS]


def test_an_exception_thrown_into_a_created_coroutine_shows_only_the_throw() -> None:
    c = New[int, Any](yields_deep)

    def drive() -> None:
        c.throw(KeyError("in"))

    assert frames_of(drive) == [(HERE, "drive")]
    assert c.Done()


def test_an_error_from_a_finally_through_close_and_with() -> None:
    def body() -> None:
        try:
            waits()
        finally:
            fail()

    c = started(body)

    def drive() -> None:
        c.close()

    def drive_with() -> None:
        with started(body):
            pass

    assert frames_of(drive) == [(HERE, "drive"), (HERE, "body"), (HERE, "fail")]
    expected = [(HERE, "drive_with"), (HERE, "body"), (HERE, "fail")]
    assert frames_of(drive_with) == expected


def test_a_body_error_through_run() -> None:
    def drive() -> None:
        Run(New[int, Any](fails_deep), lambda v: v)

    assert frames_of(drive) == [(HERE, "drive"), *BODY]


def test_a_callback_error_unhandled_by_the_body_through_run() -> None:
    # Run raises the callback's exception at the yield: the body's frames, then the
    # callback's (where it was first raised), as for a generator given it with throw.
    def answer(v: int) -> int:
        raise KeyError(v)

    def drive() -> None:
        Run(New[int, Any](yields_deep), answer)

    expected = [(HERE, "drive"), *YIELDS, (HERE, "answer")]
    assert frames_of(drive) == expected


def test_a_body_error_through_run_async() -> None:
    def drive() -> None:
        asyncio.run(RunAsync(NewWithReturn[int, Any](fails_deep), lambda v: v))

    assert frames_of(drive) == [(HERE, "drive"), *BODY]


def test_a_nested_coroutine_s_error_shows_both_bodies_and_nothing_between() -> None:
    def outer() -> None:
        inner = New[int, Any](fails_deep)
        while inner.Next():
            Yield[int, Any](inner.Recv())

    c = started(outer)

    def drive() -> None:
        while c.Next():
            pass

    assert frames_of(drive) == [(HERE, "drive"), (HERE, "outer"), *BODY]


class Again(Exception):
    pass


def test_the_handled_exception_s_traceback_is_set_without_a_leak() -> None:
    # On 3.10 a Python entry point sets the stored traceback of the exception it handles to
    # the trimmed one, through the C API, which takes a reference to each part
    # (_errors.trim_handled): 1,000 failures through each entry point leave every count as
    # it was, on both implementations (the compiled throw and RunAsync go through Python).
    error = Again("again")

    def body() -> None:
        Yield[int, Any](1)
        raise error

    loop = asyncio.new_event_loop()
    entries: list[Callable[[], object]] = [
        lambda: started(body).Next(),
        lambda: started(yields_deep).throw(error),
        lambda: Run(New[int, Any](body), lambda v: v),
        lambda: loop.run_until_complete(RunAsync(New[int, Any](body), lambda v: v)),
    ]

    def counts() -> tuple[int, int, int]:
        error.__traceback__ = None
        gc.collect()
        tracebacks = sum(type(o) is TracebackType for o in gc.get_objects())
        return sys.getrefcount(error), sys.getrefcount(Again), tracebacks

    try:
        for drive in entries:
            with contextlib.suppress(Again):
                drive()  # the first failure imports ctypes
            before = counts()
            for _ in range(1000):
                error.__traceback__ = None  # else each raise adds to it
                with contextlib.suppress(Again):
                    drive()
            assert counts() == before
    finally:
        loop.close()
