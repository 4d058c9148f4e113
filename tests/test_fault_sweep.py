"""SPEC §4.18: an exception at any line of the library leaves every coroutine defined.

One program uses every operation (Next/Send/Recv, send/next, throw, close, Run with a
callback that fails, nested coroutines, Context.Yield, a durable coroutine marshalled and
restored). A trace hook raises an exception at the k-th call or line event in the library's
own files, for every k until the program runs through; after each, every coroutine the
program made is created, suspended or done, `close()` ends it, and every body that started
ran its ``finally`` exactly once. Real signals (an interval timer) do the same at random
instants.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from collections import Counter
from types import FrameType
from typing import Any

import pytest

import coroutine
from coroutine import Coroutine, New, NewWithReturn, Run, Yield, _worker
from coroutine.durable import _attach  # noqa: F401

# The durable layer is loaded by the first durable coroutine; imported here, before every
# sweep. Else the first sweep's runs would import it, each up to its fault, and the runs after
# the import succeeded would skip as many of the program's events as the import has.

LIBRARY = os.path.dirname(os.path.abspath(coroutine.__file__)) + os.sep
PURE = os.environ.get("COROUTINE_PURE", "") not in ("", "0")
DEFINED = ("created", "suspended", "done")

Log = tuple[Counter[str], Counter[str]]  # (started, finally) per body name
_log: Log = (Counter(), Counter())  # read by the durable body, which must be module-level


def body(name: str, n: int) -> int:
    started, finished = _log
    started[name] += 1
    try:
        total = 0
        for i in range(n):
            try:
                got = Yield[int, Any](i)
                total += got if isinstance(got, int) else 0
            except ValueError:
                total -= 1
        return total
    finally:
        finished[name] += 1


def nesting(name: str, made: list[Coroutine[Any, Any, Any]]) -> None:
    started, finished = _log
    started[name] += 1
    try:
        inner = New[int, Any](functools.partial(body, name + ".inner", 3))
        made.append(inner)
        inner.Next()
        Yield[int, Any](inner.Recv())
        inner.Next()
        coroutine.LoadContext[int, Any]().Yield(7)
    finally:
        finished[name] += 1


def durable_body(name: str) -> None:
    body(name, 3)


def answer(v: int) -> int:
    if v == 1:
        raise ValueError("the callback fails; the body handles it")
    return v


def program(made: list[Coroutine[Any, Any, Any]]) -> None:
    """Every operation once; each coroutine goes into `made` as soon as it exists."""
    a = NewWithReturn[int, Any](functools.partial(body, "a", 6))
    made.append(a)
    a.Next()
    a.Send(1)
    a.Next()
    a.Recv()
    next(a)
    a.send(2)
    a.throw(ValueError("thrown"))
    b = New[int, Any](functools.partial(nesting, "b", made))
    made.append(b)
    for _ in b:
        pass
    c = NewWithReturn[int, Any](functools.partial(body, "c", 3))
    made.append(c)
    Run(c, answer)
    d = New[int, Any](functools.partial(body, "d", 3))
    made.append(d)
    d.Next()
    d.close()
    e = New[int, Any](functools.partial(durable_body, "e"), durable=True)
    made.append(e)
    e.Next()
    state = e.Context().Marshal()
    f = New[int, Any](functools.partial(durable_body, "e"), durable=True)
    made.append(f)
    f.Context().Unmarshal(state)
    f.Next()
    f.Stop()
    f.Next()
    g = New[int, Any](functools.partial(body, "g", 2))
    made.append(g)  # left created


class Fault:
    """A trace hook that raises `exc` at the k-th library event (call or line)."""

    def __init__(self, k: int, exc: type[BaseException]) -> None:
        self.k, self.exc, self.seen = k, exc, 0

    def __call__(self, frame: FrameType, event: str, arg: object) -> Any:
        if not frame.f_code.co_filename.startswith(LIBRARY):
            return None
        if event in ("call", "line"):
            self.seen += 1
            if self.seen == self.k:
                raise self.exc()
        return self


def run_with_fault(k: int, exc: type[BaseException]) -> tuple[bool, list[Any]]:
    """Run the program with a fault at event k; whether it fired, and what it made."""
    _log[0].clear()
    _log[1].clear()
    _worker._local.__dict__.pop("pool", None)  # fresh workers: their frames are traced too
    made: list[Coroutine[Any, Any, Any]] = []
    fault = Fault(k, exc)
    previous = sys.gettrace()
    sys.settrace(fault)
    try:
        program(made)
    except exc:
        pass
    finally:
        sys.settrace(previous)
    return fault.seen >= k, made


def assert_defined_then_closed(made: list[Coroutine[Any, Any, Any]], where: str) -> None:
    for c in made:
        assert c.status in DEFINED, f"{where}: {c!r} left {c.status}"
    for c in made:
        c.close()
        assert c.status == "done", f"{where}: {c!r} not done after close()"
    started, finished = _log
    for name, n in started.items():
        assert finished[name] == n, f"{where}: {name} started {n}x, finally ran {finished[name]}x"
    assert set(finished) <= set(started), where


@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryError])
def test_an_exception_at_every_library_event_leaves_every_coroutine_defined(
    exc: type[BaseException], unraisables: list[object]
) -> None:
    k = 0
    while True:
        k += 1
        fired, made = run_with_fault(k, exc)
        assert_defined_then_closed(made, f"{exc.__name__} at library event {k}")
        del made
        if not fired:
            break
    assert k > 500, "the sweep reached too few library events to mean anything"
    implementation = "pure Python" if PURE else "compiled"
    print(f"fault sweep ({implementation}): {k - 1} injection points with {exc.__name__}")


@pytest.fixture
def unraisables(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    # A fault in a __del__ is reported there, by design; keep the report off stderr.
    seen: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    return seen


# -- real signals ---------------------------------------------------------------------------


def counter() -> None:
    _log[0]["counter"] += 1
    try:
        i = 0
        while True:
            Yield[int, Any](i)
            i += 1
    finally:
        _log[1]["counter"] += 1


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer (POSIX)")
def test_keyboard_interrupts_from_a_timer_at_random_instants_leave_no_coroutine_stuck(
    unraisables: list[object],
) -> None:
    import random

    rng = random.Random(1234)
    _log[0].clear()
    _log[1].clear()
    interrupts = 0
    made: list[Coroutine[Any, Any, Any]] = []

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    deadline = time.monotonic() + 4.0
    try:
        while time.monotonic() < deadline and interrupts < 3000:
            c = New[int, Any](counter)
            made.append(c)
            try:
                try:
                    signal.setitimer(signal.ITIMER_REAL, rng.uniform(1e-6, 2e-4))
                    for _ in range(200):
                        c.Next()
                        c.Send(1)
                        _ = next(c)
                    c.close()
                finally:
                    # The one-shot timer may fire after the loop, up to this very call (the
                    # compiled path often finishes first): that interrupt counts as well.
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except KeyboardInterrupt:
                interrupts += 1
            assert c.status in DEFINED, f"after interrupt {interrupts}: {c.status}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert_defined_then_closed(made, "timer")
    assert interrupts > 50, interrupts
    print(f"timer: {interrupts} interrupts over {len(made)} coroutines, none stuck")


def test_the_sweep_program_without_a_fault_leaves_each_coroutine_where_expected() -> None:
    fired, made = run_with_fault(10**9, KeyboardInterrupt)
    assert not fired
    statuses = [c.status for c in made]  # a, b, b.inner (held by `made`), c, d, e, f, g
    expected = ["suspended", "done", "suspended", "done", "done", "suspended", "done", "created"]
    assert statuses == expected
    assert made[3].Result() == 0 + 2 - 1  # Run: 0, then the failing callback handled, then 2
    assert_defined_then_closed(made, "no fault")
