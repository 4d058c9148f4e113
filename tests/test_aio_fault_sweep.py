"""SPEC §4.18 for the async bridge: an exception at any line of the library, while run_sync
bodies run, leaves no body stuck, and the task always finishes.

One asyncio program uses the bridge's every path (awaits that suspend and that do not, an
awaitable's error handled by the body, an await three coroutines deep, a cancellation, a
close, a body's own error, RunAsync with a failing callback). A trace hook raises an
exception at the k-th call or line event in the library's own files (the core's included,
which the nested coroutines run), for every k until the program runs through. After each,
the program has ended (returned or raised), and once every bridge made is unwound (as
dropping it would), every body that started ran its ``finally`` exactly once and no body's
greenlet is left suspended. In pure Python every line of the driver (`_bridge`) is swept; with
the extension, the lines around the compiled one.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest
from aio_support import IMPLS, Impl, live_bodies

import coroutine
from coroutine import New, NewWithReturn, RunAsync, Yield, _bridge, aio

LIBRARY = os.path.dirname(os.path.abspath(coroutine.__file__)) + os.sep
PURE = os.environ.get("COROUTINE_PURE", "") not in ("", "0")

started: Counter[str] = Counter()
finished: Counter[str] = Counter()


class Suspend:
    def __await__(self) -> Iterator[None]:
        yield None  # one trip through the event loop (asyncio's bare yield)


async def value(v: Any) -> Any:
    await Suspend()
    return v


async def at_once(v: Any) -> Any:
    return v


async def failing() -> None:
    await Suspend()
    raise ValueError("the awaitable fails; the body handles it")


def tracked(name: str, fn: Callable[[], Any]) -> Any:
    started[name] += 1
    try:
        return fn()
    finally:
        finished[name] += 1


def program_for(impl: Impl) -> Callable[[], Any]:
    run_sync, await_ = impl.run_sync, impl.await_

    def plain(name: str) -> Any:
        def body() -> int:
            total = await_(value(1)) + await_(at_once(2))
            try:
                await_(failing())
            except ValueError:
                total += 10
            return total

        return tracked(name, body)

    def deep(name: str) -> Any:
        def level(n: int) -> Any:
            def run() -> Any:
                if n == 0:
                    return tracked(f"{name}.0", lambda: Yield[int, None](await_(value(7))))
                inner = New[int, None](level(n - 1))
                return tracked(f"{name}.{n}", lambda: list(inner))

            return run

        return tracked(name, level(3))

    def waits_long(name: str) -> Any:
        return tracked(name, lambda: [await_(value(i)) for i in range(100)])

    def fails(name: str) -> Any:
        def body() -> None:
            await_(value(1))
            raise KeyError("the body fails")

        return tracked(name, body)

    def yielding() -> int:
        return tracked("r", lambda: Yield[int, int](1) + Yield[int, int](3))

    async def answer(v: int) -> int:
        if v == 2:
            raise ValueError("RunAsync's callback fails")
        return await value(v)

    def answer_or_fail(v: int) -> Any:
        return answer(v)

    def handled(v: int) -> Any:
        try:
            return Yield[int, int](v)
        except ValueError:
            return -1

    async def program() -> None:
        await run_sync(plain, "a")
        await run_sync(deep, "b")
        task = asyncio.ensure_future(run_sync(waits_long, "c"))
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        closed = run_sync(waits_long, "d")
        closed.send(None)
        closed.close()
        with pytest.raises(KeyError):
            await run_sync(fails, "e")
        if impl.name == ("pure" if PURE else "compiled"):  # RunAsync runs the loaded one
            await RunAsync(
                NewWithReturn[int, int](lambda: tracked("r", lambda: handled(2))), answer_or_fail
            )
            await RunAsync(NewWithReturn[int, int](yielding), answer_or_fail)

    return program


class Fault:
    """A trace hook that raises `exc` at the k-th library event (call or line)."""

    def __init__(self, k: int, exc: type[BaseException]) -> None:
        self.k, self.exc, self.seen = k, exc, 0
        self.where = ""

    def __call__(self, frame: FrameType, event: str, arg: object) -> Any:
        if not frame.f_code.co_filename.startswith(LIBRARY):
            return None
        if event in ("call", "line"):
            self.seen += 1
            if self.seen == self.k:
                code = frame.f_code
                self.where = f"{code.co_filename[len(LIBRARY) :]}:{frame.f_lineno} ({code.co_name})"
                raise self.exc()
        return self


def recording(impl: Impl, made: list[Any], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """`impl`'s run_sync (and RunAsync's, if it is the loaded one), keeping every bridge it
    makes alive in `made` until the check: none is finalized while faults are injected."""
    if impl.name == "pure":

        class Recorded(_bridge.Bridge):
            __slots__ = ()

            def __init__(self) -> None:
                super().__init__()
                made.append(self)

        monkeypatch.setattr(_bridge, "Bridge", Recorded)
        return aio._with(_bridge.drive)
    from coroutine import _speedups  # type: ignore[attr-defined]

    def driver(fn: Any, args: Any, kwargs: Any) -> Any:
        bridge = _speedups.Bridge(fn, args, kwargs)
        made.append(bridge)
        return bridge

    monkeypatch.setattr(aio, "_Driver", driver)  # RunAsync's run_sync
    return aio._with(driver)


def run_with_fault(impl: Impl, k: int, exc: type[BaseException]) -> str | None:
    """Run the program with a fault at event k, then unwind what it left; where the fault
    fired, or None if the program ran through first."""
    started.clear()
    finished.clear()
    made: list[Any] = []
    fault = Fault(k, exc)
    with pytest.MonkeyPatch.context() as monkeypatch:
        program = program_for(Impl(impl.name, recording(impl, made, monkeypatch), impl.await_))
        sys.settrace(fault)
        try:
            asyncio.run(program())
        except (exc, AssertionError) as raised:
            if isinstance(raised, AssertionError) and fault.seen < k:
                raise  # the program's own expectation failed without any fault: a real bug
        finally:
            sys.settrace(None)
    for bridge in made:  # what dropping them would do (A6), with no fault now
        if isinstance(bridge, _bridge.Bridge):
            bridge.unwind()
        else:
            bridge.close()
    del made
    gc.collect()  # the frames a fault left in reference cycles, with their coroutines
    return fault.where if fault.seen >= k else None


@pytest.fixture(params=IMPLS, ids=lambda i: i.name)
def impl(request: pytest.FixtureRequest) -> Impl:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Faults land in finalizers (reported as unraisable): by design here. The collector
    skips what exists before the sweep."""
    seen: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    gc.collect()
    gc.freeze()  # what exists now is not garbage: each sweep's collection skips it
    try:
        yield seen
    finally:
        gc.unfreeze()


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryError])
def test_an_exception_at_every_library_event_leaves_no_body_stuck(
    impl: Impl, exc: type[BaseException], quiet: list[object]
) -> None:
    k = 0
    while True:
        k += 1
        faulthandler.dump_traceback_later(120, exit=True)  # a hang would be a stuck task
        try:
            fired = run_with_fault(impl, k, exc)
        finally:
            faulthandler.cancel_dump_traceback_later()
        where = f"{exc.__name__} at library event {k}, {fired}"
        # Every body is `tracked`: one that is still suspended has not run its finally.
        for name, n in started.items():
            assert finished[name] == n, (
                f"{where}: {name} started {n}x, finally ran {finished[name]}x"
            )
        assert set(finished) <= set(started), where
        if fired is None:
            break
    gc.collect()
    assert not live_bodies(), "a body is left suspended"
    # The compiled driver has no lines to sweep: only those around it (aio.py, _async.py,
    # the core's) are.
    assert k > (300 if impl.name == "pure" else 150), "too few library events to mean anything"
    print(f"aio fault sweep ({impl.name}): {k - 1} injection points with {exc.__name__}")


def test_the_program_without_a_fault_runs_every_body_to_its_end(
    impl: Impl, quiet: list[object]
) -> None:
    assert run_with_fault(impl, 10**9, KeyboardInterrupt) is None
    expected = {"a", "b", "b.0", "b.1", "b.2", "b.3", "c", "d", "e"}
    if impl.name == ("pure" if PURE else "compiled"):
        expected.add("r")
    assert set(started) == expected
    assert started == finished
