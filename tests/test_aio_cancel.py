"""SPEC §8: cancelling the task that awaits run_sync (a timeout, task.cancel(), a cancel
scope) cancels the awaitable in flight and unwinds the body once, at every point of it, on
asyncio and trio, in both implementations."""

from __future__ import annotations

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

# -- cancellation -----------------------------------------------------------------------------


def test_cancelling_the_task_cancels_the_awaitable_and_unwinds_the_body(
    impl: Impl, loop: Loop
) -> None:
    events: list[str] = []

    async def never() -> None:
        try:
            await anyio.Event().wait()
        except BaseException as exc:
            events.append(f"awaitable got {type(exc).__name__}")
            raise

    def body() -> None:
        try:
            impl.await_(answer(1))
            impl.await_(never())
        except BaseException as exc:
            events.append(f"body got {type(exc).__name__}")
            raise
        finally:
            events.append("body finally")

    async def main() -> None:
        with anyio.move_on_after(0.05) as scope:
            await impl.run_sync(body)
        assert scope.cancelled_caught

    loop.run(main)
    name = loop.cancelled.__name__
    assert events == [f"awaitable got {name}", f"body got {name}", "body finally"]


def test_a_body_may_catch_the_cancellation_and_clean_up_with_awaits_shielded(
    impl: Impl, loop: Loop
) -> None:
    events: list[str] = []

    async def cleanup() -> str:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.001)
            return "cleaned up"

    def body() -> None:
        try:
            impl.await_(anyio.sleep(10))
        finally:
            events.append(impl.await_(cleanup()))

    async def main() -> None:
        with anyio.move_on_after(0.02):
            await impl.run_sync(body)

    loop.run(main)
    assert events == ["cleaned up"]


def _points_body(
    impl: Impl, log: list[str], awaits: int, unwound_by: list[str] | None = None
) -> Any:
    """A body awaiting `awaits` times, logging each step; what unwinds it goes to
    `unwound_by` (so a body unwound by something else than the cancellation is seen)."""

    def body() -> str:
        log.append("started")
        try:
            for i in range(awaits):
                log.append(f"before {i}")
                impl.await_(answer(i))
                log.append(f"after {i}")
            return "returned"
        except BaseException as exc:
            if unwound_by is not None:
                unwound_by.append(type(exc).__name__)
            raise
        finally:
            log.append("finally")

    return body


@pytest.mark.parametrize("steps", range(8))
def test_cancellation_at_every_point_of_a_body_unwinds_it_once(
    impl: Impl, loop: Loop, steps: int
) -> None:
    """A cancel scope cancelled after `steps` trips of another task through the loop: before
    the body starts, at each of its awaits, or after it returned. Whatever the point, the
    body runs its finally exactly once (or never started), and the cancellation ends the
    scope unless the body had returned."""
    log: list[str] = []
    unwound_by: list[str] = []
    body = _points_body(impl, log, awaits=3, unwound_by=unwound_by)
    outcome: list[str] = []

    async def cancel_after(scope: anyio.CancelScope) -> None:
        for _ in range(steps):
            await anyio.lowlevel.checkpoint()
        scope.cancel()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                tg.start_soon(cancel_after, scope)
                outcome.append(await impl.run_sync(body))
            if scope.cancelled_caught:
                outcome.append("cancelled")

    loop.run(main)
    assert log.count("finally") == (1 if log else 0)
    if outcome == ["returned"]:
        assert log[-2:] == ["after 2", "finally"]
    else:
        assert outcome == ["cancelled"]
        assert not log or (log[-1] == "finally" and log[-2].startswith("before"))
    # Unwound by the cancellation itself, raised at its await_ (not later, by GeneratorExit).
    assert unwound_by == ([loop.cancelled.__name__] if outcome == ["cancelled"] and log else [])


@pytest.mark.parametrize("where", ["before", "between", "after"])
def test_a_body_cancelling_its_own_task_is_unwound_at_its_next_await(
    impl: Impl, where: str
) -> None:
    """asyncio: the cancel lands at the body's next await that suspends, or, if it returns
    first, the task still ends cancelled (as for a coroutine that cancels itself)."""
    import asyncio

    log: list[str] = []

    def body() -> None:
        try:
            if where == "before":
                asyncio.current_task().cancel()  # type: ignore[union-attr]
            impl.await_(answer(1))
            log.append("after first")
            if where == "between":
                asyncio.current_task().cancel()  # type: ignore[union-attr]
            impl.await_(answer(2))
            log.append("after second")
            if where == "after":
                asyncio.current_task().cancel()  # type: ignore[union-attr]
        finally:
            log.append("finally")

    async def main() -> bool:
        task = asyncio.ensure_future(impl.run_sync(body))
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(main())
    expected = {
        "before": ["finally"],
        "between": ["after first", "finally"],
        "after": ["after first", "after second", "finally"],
    }
    assert log == expected[where]


@pytest.mark.parametrize("steps", range(6))
def test_task_cancel_at_every_step_leaves_the_task_cancelled(impl: Impl, steps: int) -> None:
    """task.cancel() after `steps` trips through the loop: before the body's first step
    (it never runs), at each await, or once it returned (the task is done: nothing)."""
    import asyncio

    log: list[str] = []
    unwound_by: list[str] = []
    body = _points_body(impl, log, awaits=3, unwound_by=unwound_by)

    async def main() -> bool:
        task = asyncio.ensure_future(impl.run_sync(body))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            assert task.cancelled()
            return True
        return False

    cancelled = asyncio.run(main())
    assert log.count("finally") == (1 if log else 0)
    if steps == 0:
        assert cancelled and log == []  # cancelled before its first step: never ran
    elif cancelled:
        assert log[-2:] == [f"before {steps - 1}", "finally"]  # at its await number `steps`
    else:
        assert steps > 3 and log[-2:] == ["after 2", "finally"]
    assert unwound_by == (["CancelledError"] if cancelled and log else [])


def test_a_timeout_cancels_the_body_with_asyncio_wait_for(impl: Impl) -> None:
    import asyncio

    log: list[str] = []

    def body() -> None:
        try:
            impl.await_(asyncio.sleep(10))
        finally:
            log.append("finally")

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(impl.run_sync(body), 0.01)

    asyncio.run(main())
    assert log == ["finally"]


def test_a_trio_cancel_scope_cancels_the_body(impl: Impl) -> None:
    import trio

    log: list[str] = []

    def body() -> None:
        try:
            impl.await_(trio.sleep(10))
        except trio.Cancelled:
            log.append("cancelled at the await")
            raise
        finally:
            log.append("finally")

    async def main() -> None:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(impl.run_sync, body)
                await trio.sleep(0.01)
                scope.cancel()
        assert scope.cancelled_caught

    trio.run(main)
    assert log == ["cancelled at the await", "finally"]


@pytest.mark.parametrize("where", ["before", "between", "after"])
def test_a_body_cancelling_its_own_trio_scope_is_unwound_at_its_next_await(
    impl: Impl, where: str
) -> None:
    """trio: the cancel lands at the body's next await (every trio wait is a checkpoint), or,
    if it returns first, at the task's next checkpoint inside the scope, after run_sync."""
    import trio

    log: list[str] = []
    scopes: list[trio.CancelScope] = []

    def body() -> None:
        try:
            if where == "before":
                scopes[0].cancel()
            impl.await_(answer(1))
            log.append("after first")
            if where == "between":
                scopes[0].cancel()
            impl.await_(answer(2))
            log.append("after second")
            if where == "after":
                scopes[0].cancel()
        except BaseException as exc:
            log.append(type(exc).__name__)
            raise
        finally:
            log.append("finally")

    async def main() -> bool:
        with trio.CancelScope() as scope:
            scopes.append(scope)
            await impl.run_sync(body)
            log.append("run_sync returned")
            await trio.lowlevel.checkpoint()
            log.append("not reached")
        return scope.cancelled_caught

    assert trio.run(main)
    expected = {
        "before": ["Cancelled", "finally"],
        "between": ["after first", "Cancelled", "finally"],
        "after": ["after first", "after second", "finally", "run_sync returned"],
    }
    assert log == expected[where]


@pytest.mark.parametrize("steps", range(6))
def test_a_trio_nursery_cancelled_at_every_step_unwinds_the_body_once(
    impl: Impl, steps: int
) -> None:
    """trio: the nursery running run_sync in a task of its own is cancelled after `steps`
    checkpoints of its parent. Cancelled before the task's first step, the body still starts
    (trio cancels only at checkpoints) and is unwound at its first await; later, at an
    await; once it returned, there is nothing to cancel. (Which await, for a given `steps`,
    is trio's choice: it runs ready tasks in a random order.)"""
    import trio

    log: list[str] = []
    unwound_by: list[str] = []
    body = _points_body(impl, log, awaits=3, unwound_by=unwound_by)
    returned: list[str] = []

    async def task() -> None:
        returned.append(await impl.run_sync(body))

    async def main() -> bool:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(task)
            for _ in range(steps):
                await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()
        return nursery.cancel_scope.cancelled_caught

    cancelled = trio.run(main)
    assert log.count("finally") == 1
    if steps == 0:
        assert cancelled and log == ["started", "before 0", "finally"]
    elif returned:
        assert returned == ["returned"] and log[-2:] == ["after 2", "finally"]
    else:
        assert cancelled and log[-2].startswith("before") and log[-1] == "finally"
    assert unwound_by == ([] if returned else ["Cancelled"])


def test_a_timeout_cancels_the_body_with_trio_fail_after(impl: Impl) -> None:
    import trio

    log: list[str] = []

    def body() -> None:
        try:
            impl.await_(trio.sleep(10))
        except BaseException as exc:
            log.append(type(exc).__name__)
            raise
        finally:
            log.append("finally")

    async def main() -> None:
        with pytest.raises(trio.TooSlowError), trio.fail_after(0.01):
            await impl.run_sync(body)

    trio.run(main)
    assert log == ["Cancelled", "finally"]
