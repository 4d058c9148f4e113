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


def _points_body(impl: Impl, log: list[str], awaits: int) -> Any:
    def body() -> str:
        log.append("started")
        try:
            for i in range(awaits):
                log.append(f"before {i}")
                impl.await_(answer(i))
                log.append(f"after {i}")
            return "returned"
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
    body = _points_body(impl, log, awaits=3)
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
    body = _points_body(impl, log, awaits=3)

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
