"""SPEC §8: `await_` anywhere below `run_sync`, on asyncio and trio, in both implementations.

Each behaviour is tested with every implementation (`impl`: pure, and compiled when the
extension is loaded) and, where the loop matters, on both event loops (`loop`).
"""

from __future__ import annotations

import contextvars
import inspect
import itertools
import subprocess
import sys
import threading
import traceback
import types
import warnings
from collections.abc import Generator
from typing import Any

import anyio
import pytest
from aio_support import (  # noqa: F401
    Impl,
    Loop,
    answer,
    impl_fixture,
    loop_fixture,
    no_body_outlives_its_test,
)

from coroutine import Current, New, NewWithReturn, NotInCoroutineError, ResumeError, Yield

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def at_once(value: Any) -> Any:
    """An awaitable that completes without suspending."""
    return value


async def fails(message: str) -> None:
    await anyio.sleep(0)
    raise ValueError(message)


# -- results, errors and tracebacks -----------------------------------------------------------


def test_await_returns_each_awaitables_result_to_the_body(impl: Impl, loop: Loop) -> None:
    def body(n: int, *, scale: int) -> list[Any]:
        got = [impl.await_(answer(i * scale)) for i in range(n)]
        got.append(impl.await_(at_once(None)))
        got.append(impl.await_(at_once((1, 2))))  # a tuple comes back whole
        got.append(impl.await_(at_once(StopIteration("a value, not raised"))))
        return got

    async def main() -> Any:
        return await impl.run_sync(body, 3, scale=10)

    got = loop.run(main)
    assert got[:5] == [0, 10, 20, None, (1, 2)]
    assert type(got[5]) is StopIteration


def test_the_body_may_return_a_tuple_or_none(impl: Impl, loop: Loop) -> None:
    async def main() -> tuple[Any, Any]:
        return await impl.run_sync(lambda: (1, 2)), await impl.run_sync(lambda: None)

    assert loop.run(main) == ((1, 2), None)


def test_an_awaitables_exception_is_raised_at_the_await_chained_to_what_the_body_handles(
    impl: Impl, loop: Loop
) -> None:
    def body() -> None:
        try:
            raise KeyError("being handled")
        except KeyError:
            impl.await_(fails("boom"))  # the line the traceback must show

    async def main() -> None:
        await impl.run_sync(body)

    with pytest.raises(ValueError, match="boom") as info:
        loop.run(main)
    assert isinstance(info.value.__context__, KeyError)
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames.index("body") < frames.index("fails"), frames
    between = frames[frames.index("body") + 1 : frames.index("fails")]
    # No driver frame between the body's await_ and the awaitable's raise: the compiled
    # await_ has no frame at all, the pure one's is taken out as the exception leaves
    # run_sync's coroutine (_errors.trimmed).
    assert between == [], frames


def test_the_body_may_handle_an_awaitables_exception_and_go_on(impl: Impl, loop: Loop) -> None:
    def body() -> str:
        try:
            impl.await_(fails("first"))
        except ValueError as exc:
            return f"handled {exc}, then got " + impl.await_(answer("more"))
        return "not reached"

    async def main() -> str:
        return await impl.run_sync(body)

    assert loop.run(main) == "handled first, then got more"


def test_a_body_exception_propagates_with_the_body_frames(impl: Impl, loop: Loop) -> None:
    def deep() -> None:
        impl.await_(answer(1))
        raise LookupError("from the body")

    async def main() -> None:
        await impl.run_sync(deep)

    with pytest.raises(LookupError) as info:
        loop.run(main)
    assert traceback.extract_tb(info.value.__traceback__)[-1].name == "deep"


@pytest.mark.parametrize("stop", [StopIteration, StopAsyncIteration])
def test_a_stop_iteration_escaping_the_body_becomes_a_runtime_error(
    impl: Impl, loop: Loop, stop: type[Exception]
) -> None:
    def body() -> None:
        impl.await_(answer(1))
        raise stop("escaped")

    async def main() -> None:
        await impl.run_sync(body)

    with pytest.raises(RuntimeError, match=f"run_sync body raised {stop.__name__}") as info:
        loop.run(main)
    assert isinstance(info.value.__cause__, stop)


def test_await_refuses_what_is_not_awaitable_at_the_call(impl: Impl, loop: Loop) -> None:
    seen: list[str] = []

    def body() -> None:
        with pytest.raises(TypeError, match=r"await_ takes an awaitable, got 3 of type int"):
            impl.await_(3)
        with pytest.raises(TypeError, match="await_ takes an awaitable, got <function at_once"):
            impl.await_(at_once)
        seen.append("still running")

    async def main() -> None:
        await impl.run_sync(body)

    loop.run(main)
    assert seen == ["still running"]


class AwaitReturnsNonIterator:
    def __await__(self) -> Any:
        return 42


def test_await_refuses_an_await_method_that_returns_no_iterator(impl: Impl, loop: Loop) -> None:
    def body() -> None:
        impl.await_(AwaitReturnsNonIterator())

    async def main() -> None:
        await impl.run_sync(body)

    with pytest.raises(TypeError, match=r"__await__\(\) of .* returned 42 of type int"):
        loop.run(main)


class Custom:
    """An awaitable with its own __await__, answering through a generator that yields once."""

    def __await__(self) -> Generator[Any, None, str]:
        yield from anyio.sleep(0).__await__()
        return "custom"


@types.coroutine
def legacy() -> Generator[Any, None, str]:
    """A generator-based coroutine (`types.coroutine`)."""
    yield from anyio.sleep(0).__await__()
    return "legacy"


def asyncio_awaitables() -> dict[str, Any]:
    """asyncio's own: a future and a task."""
    import asyncio

    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_soon(future.set_result, "future")
    return {"future": future, "task": loop.create_task(answer("task"))}


def trio_awaitables(nursery: Any) -> dict[str, Any]:
    """trio's own: its trap (`wait_task_rescheduled`, what every trio wait comes down to),
    rescheduled by another task, and an event that another task sets."""
    import outcome  # trio's own dependency
    import trio

    waiting: list[Any] = []
    event = trio.Event()

    async def trap() -> Any:
        waiting.append(trio.lowlevel.current_task())
        return await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)

    async def wake() -> None:
        while not waiting:
            await trio.lowlevel.checkpoint()
        trio.lowlevel.reschedule(waiting[0], outcome.Value("trap"))
        await trio.lowlevel.checkpoint()
        event.set()

    async def event_set() -> str:
        await event.wait()
        return "event"

    nursery.start_soon(wake)
    return {"trap": trap(), "event": event_set()}


def test_await_takes_every_kind_of_awaitable(impl: Impl, loop: Loop) -> None:
    def body(native: dict[str, Any]) -> list[Any]:
        nested = impl.run_sync(lambda: impl.await_(answer("nested run_sync")))
        return [impl.await_(aw) for aw in (*native.values(), Custom(), legacy(), nested)]

    async def main() -> tuple[list[str], list[Any]]:
        if loop.name == "asyncio":
            native = asyncio_awaitables()
            return list(native), await impl.run_sync(body, native)
        async with anyio.create_task_group() as tg:
            native = trio_awaitables(tg)
            got = await impl.run_sync(body, native)
        return list(native), got

    kinds, got = loop.run(main)
    assert got == [*kinds, "custom", "legacy", "nested run_sync"]


# -- outside a body ---------------------------------------------------------------------------


def test_await_outside_run_sync_raises_and_closes_the_coroutine(impl: Impl) -> None:
    coro = answer(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited" later
        with pytest.raises(NotInCoroutineError, match=r"await_ called outside a run_sync body"):
            impl.await_(coro)
        assert coro.cr_frame is None  # closed
        del coro


def test_await_from_async_code_is_outside_run_sync(impl: Impl, loop: Loop) -> None:
    async def main() -> None:
        with pytest.raises(NotInCoroutineError, match=r"in async code, write `await aw`"):
            impl.await_(answer(1))

    loop.run(main)


def test_await_in_a_thread_started_by_the_body_is_outside_run_sync(impl: Impl, loop: Loop) -> None:
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            impl.await_(at_once(1))
        except BaseException as exc:
            errors.append(exc)

    def body() -> str:
        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
        return impl.await_(answer("the body itself still can"))  # type: ignore[no-any-return]

    async def main() -> str:
        return await impl.run_sync(body)

    assert loop.run(main) == "the body itself still can"
    assert len(errors) == 1 and isinstance(errors[0], NotInCoroutineError)


def test_run_sync_refuses_what_is_not_a_synchronous_function_at_the_call() -> None:
    from coroutine.aio import run_sync

    with pytest.raises(TypeError, match=r"run_sync takes the function to run, got 3 of type int"):
        run_sync(3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"run_sync runs a synchronous function, got the async"):
        run_sync(answer, 1)  # type: ignore[arg-type]


# -- nested coroutines ------------------------------------------------------------------------


def test_await_three_coroutines_deep_suspends_the_whole_chain(impl: Impl, loop: Loop) -> None:
    """body -> a -> b -> c; c awaits. The drivers of a, b and c never see the await; each
    coroutine's own yields still go to its own driver."""
    log: list[str] = []
    chain: list[Any] = []
    gate: list[anyio.Event] = []

    async def gated() -> str:
        await gate[0].wait()
        return "awaited in c"

    def level(name: str, below: Any) -> Any:
        def run() -> Any:
            log.append(f"{name} starts")
            Yield[str, None](f"{name} yields before")
            if below is None:
                got = impl.await_(gated())
                assert Current() is chain[-1]  # still the innermost, still running
                log.append(got)
            else:
                inner = NewWithReturn[str, None](below)
                chain.append(inner)
                log.extend(inner)  # drives it: its yields come here, not its awaits
                got = inner.Result()
            Yield[str, None](f"{name} yields after")
            return got

        return run

    def body() -> Any:
        a = NewWithReturn[str, None](level("a", level("b", level("c", None))))
        chain.append(a)
        yielded = list(a)
        return yielded, a.Result()

    async def watcher() -> None:
        while "c yields before" not in log:
            await anyio.sleep(0)
        # The task runs others only while the body waits: c is in await_.
        assert "awaited in c" not in log
        assert [c.status for c in chain] == ["normal", "normal", "normal"]
        with pytest.raises(ResumeError):
            chain[-1].Next()  # refused: nothing changes
        gate[0].set()

    async def main() -> Any:
        gate.append(anyio.Event())
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher)
            return await impl.run_sync(body)

    yielded, result = loop.run(main)
    assert result == "awaited in c"
    assert yielded == ["a yields before", "a yields after"]  # a's driver: the body
    assert log == [
        "a starts",
        "b starts",
        "b yields before",  # b's driver: a, which logs what b yields
        "c starts",
        "c yields before",
        "awaited in c",
        "c yields after",
        "b yields after",
    ]
    assert [c.status for c in chain] == ["done", "done", "done"]


def test_a_nested_coroutine_created_outside_the_body_awaits_through_it(
    impl: Impl, loop: Loop
) -> None:
    """The bridge is found by the greenlets that are running, not by where a coroutine was
    made: one created before run_sync and driven by the body reaches it too."""

    def inner() -> None:
        Yield[str, None](impl.await_(answer("from outside")))

    made = New[str, None](inner)

    async def main() -> list[str]:
        return await impl.run_sync(list, made)  # type: ignore[no-any-return]

    assert loop.run(main) == ["from outside"]


# -- context variables ------------------------------------------------------------------------


def test_the_body_runs_in_the_awaiting_tasks_context(impl: Impl, loop: Loop) -> None:
    def body() -> tuple[str, str]:
        before = VAR.get()
        impl.await_(answer(None))
        VAR.set("set by the body")
        inner = NewWithReturn[None, None](VAR.get)  # a copy, as New always takes
        list(inner)
        return before, inner.Result()  # type: ignore[return-value]

    async def main() -> tuple[tuple[str, str], str]:
        VAR.set("set by the task")
        seen = await impl.run_sync(body)
        return seen, VAR.get()

    assert loop.run(main) == (("set by the task", "set by the body"), "set by the body")


def test_concurrent_bodies_keep_their_own_tasks_context(impl: Impl, loop: Loop) -> None:
    results: dict[str, list[str]] = {}

    def body(name: str) -> None:
        results[name] = []
        for _ in range(5):
            impl.await_(answer(None))
            results[name].append(VAR.get())

    async def task(name: str) -> None:
        VAR.set(name)
        await impl.run_sync(body, name)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for name in ("x", "y", "z"):
                tg.start_soon(task, name)

    loop.run(main)
    assert results == {name: [name] * 5 for name in "xyz"}


# -- many bodies on one loop ------------------------------------------------------------------


def test_many_concurrent_bodies_interleave_on_one_loop(impl: Impl, loop: Loop) -> None:
    log: list[tuple[int, int]] = []
    results: dict[int, int] = {}

    def body(n: int) -> int:
        total = 0
        for i in range(20):
            total += impl.await_(answer(i)) * n
            log.append((n, i))
        return total

    async def task(n: int) -> None:
        results[n] = await impl.run_sync(body, n)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(task, n)

    loop.run(main)
    assert results == {n: n * sum(range(20)) for n in range(50)}
    assert sorted(log) == [(n, i) for n in range(50) for i in range(20)]
    for n in range(50):  # each body in its own order...
        assert [i for m, i in log if m == n] == list(range(20))
    switches = sum(1 for a, b in itertools.pairwise(log) if a[0] != b[0])
    assert switches > 50 * 10  # ...and the bodies took turns at their awaits


# -- the module -------------------------------------------------------------------------------


def test_importing_coroutine_and_its_bridge_imports_no_event_loop() -> None:
    code = "import coroutine, coroutine.aio, sys; print({'asyncio', 'trio'} & set(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set()"


def test_the_compiled_await_has_the_references_docstring() -> None:
    from coroutine import _bridge
    from coroutine.aio import _IMPLEMENTATIONS

    if "compiled" not in _IMPLEMENTATIONS:
        pytest.skip("the extension is not loaded (COROUTINE_PURE=1)")
    compiled = _IMPLEMENTATIONS["compiled"][1]
    assert compiled.__doc__ == inspect.cleandoc(_bridge.await_.__doc__ or "")
    assert compiled.__text_signature__ == "($module, aw, /)"  # type: ignore[attr-defined]


@pytest.mark.parametrize("raised", [LookupError("at once"), StopIteration("at once")])
def test_a_body_that_raises_before_any_await_raises_out_of_run_sync(
    impl: Impl, loop: Loop, raised: Exception
) -> None:
    def body() -> None:
        raise raised

    expected = RuntimeError if isinstance(raised, StopIteration) else LookupError
    with pytest.raises(expected):
        loop.run(lambda: impl.run_sync(body))
