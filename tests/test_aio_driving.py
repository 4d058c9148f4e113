"""The run_sync coroutine driven by hand: close, throw and send go to the awaitable in flight
first (PEP 380), then to the body; collection unwinds an abandoned body; another thread is
refused; another greenlet's step becomes the body's parent (rule A2); a foreign switch to the
driver is reported (on asyncio and trio). Both implementations."""

from __future__ import annotations

import threading
import types
from collections.abc import Generator
from typing import Any

import greenlet
import pytest
from aio_support import (  # noqa: F401
    Impl,
    Loop,
    Suspend,
    answer,
    impl_fixture,
    loop_fixture,
    no_body_outlives_its_test,
)

from coroutine import New

# -- close, garbage collection, delegation ----------------------------------------------------


def _started(coro: Any) -> Any:
    """Step a run_sync coroutine by hand until its body waits on `Suspend`."""
    assert coro.send(None) == "suspended"


def test_closing_the_coroutine_raises_generator_exit_at_the_await(impl: Impl) -> None:
    log: list[str] = []

    def body() -> None:
        try:
            impl.await_(Suspend())
        except GeneratorExit:
            log.append("GeneratorExit at the await")
            raise
        finally:
            log.append("finally")

    coro = impl.run_sync(body)
    _started(coro)
    coro.close()
    assert log == ["GeneratorExit at the await", "finally"]
    coro.close()  # done: nothing more
    assert log == ["GeneratorExit at the await", "finally"]


def test_a_body_that_awaits_while_closed_is_abandoned_with_an_error(impl: Impl) -> None:
    log: list[str] = []

    def body() -> None:
        try:
            impl.await_(Suspend())
        except GeneratorExit:
            log.append("caught")
            impl.await_(answer("again"))
        log.append("never")

    coro = impl.run_sync(body)
    _started(coro)
    with pytest.raises(RuntimeError, match=r"called await_ while being closed .* abandoned"):
        coro.close()
    assert log == ["caught"]


def test_an_abandoned_task_unwinds_its_body_when_collected(impl: Impl) -> None:
    import gc

    log: list[str] = []

    def body() -> None:
        try:
            impl.await_(Suspend())
        finally:
            log.append("finally")

    def nested_body() -> None:
        inner = New[None, None](body)
        inner.Next()

    for fn in (body, nested_body):
        coro = impl.run_sync(fn)
        _started(coro)
        del coro
        gc.collect()
    assert log == ["finally", "finally"]


class Catching:
    """An awaitable iterator that answers a thrown exception with a value (PEP 380)."""

    def __await__(self) -> Catching:
        return self

    def __next__(self) -> str:
        return "waiting"

    def send(self, value: Any) -> str:
        return "waiting"

    def throw(self, exc: BaseException) -> str:
        raise StopIteration(f"caught {exc!r}")


def test_throw_goes_to_the_awaitable_in_flight_first(impl: Impl) -> None:
    def body() -> str:
        return impl.await_(Catching())  # type: ignore[no-any-return]

    coro = impl.run_sync(body)
    assert coro.send(None) == "waiting"
    with pytest.raises(StopIteration) as info:
        coro.throw(KeyError("k"))
    assert info.value.value == "caught KeyError('k')"


def test_throw_before_the_first_step_never_starts_the_body(impl: Impl) -> None:
    log: list[str] = []
    coro = impl.run_sync(log.append, "ran")
    with pytest.raises(KeyError):
        coro.throw(KeyError("early"))
    assert log == []


def test_a_send_goes_to_the_awaitable_in_flight(impl: Impl) -> None:
    @types.coroutine
    def ask() -> Generator[str, str, str]:
        return (yield "question")

    def body() -> str:
        return impl.await_(ask())  # type: ignore[no-any-return]

    coro = impl.run_sync(body)
    assert coro.send(None) == "question"
    with pytest.raises(StopIteration) as info:
        coro.send("answer")
    assert info.value.value == "answer"


def test_driving_the_body_from_another_thread_is_refused(impl: Impl) -> None:
    coro = impl.run_sync(lambda: impl.await_(Suspend()))
    _started(coro)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            coro.send(None)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and "from the thread that started it" in str(errors[0])
    coro.close()
    # The refused send ended the coroutine in the other thread, which dropped the driver
    # there (its traceback keeps none of the library's frames); greenlet unwinds a body
    # dropped in another thread when its own thread next switches.
    greenlet.greenlet(lambda: None).switch()


def test_a_foreign_switch_to_the_driver_abandons_the_body_with_an_error(
    impl: Impl, loop: Loop
) -> None:
    """Code in the body that switches to a greenlet ending in the task's greenlet lands in
    the driver without await_: the driver says so, and the body unwinds when collected."""
    import gc

    from greenlet import getcurrent, greenlet

    from coroutine import CoroutineError

    log: list[str] = []

    def body(task_greenlet: greenlet) -> None:
        try:
            greenlet(lambda: "stray", parent=task_greenlet).switch()
        finally:
            log.append("finally")

    async def main() -> None:
        await impl.run_sync(body, getcurrent())

    with pytest.raises(CoroutineError, match=r"switched to the run_sync driver without await_"):
        loop.run(main)
    gc.collect()
    assert log == ["finally"]


def test_the_bodys_end_goes_to_whichever_greenlet_stepped_the_task_last(impl: Impl) -> None:
    """Rule A2: a step from another greenlet than the last makes it the body's parent, so the
    body's end lands there, not in the greenlet that started it."""
    from greenlet import getcurrent, greenlet

    coro = impl.run_sync(lambda: impl.await_(Suspend()) + "!")

    def first_step() -> None:
        assert coro.send(None) == "suspended"
        getcurrent().parent.switch("parked")  # stays suspended: a parent the end could reach

    other = greenlet(first_step)
    assert other.switch() == "parked"
    with pytest.raises(StopIteration) as info:
        coro.send(None)  # from the main greenlet now
    assert info.value.value == "resumed!"
    other.throw()  # (let it go)
