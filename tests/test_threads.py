"""SPEC §4 lines 12-13: a coroutine belongs to its thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from coroutine import New, NewWithReturn, NotInCoroutineError, ResumeError, Run, Yield


def count_to(n: int) -> None:
    for i in range(n):
        Yield[int, Any](i)


def in_thread(fn: Any) -> BaseException | None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=target, name="other-thread")
    t.start()
    t.join()
    return errors[0] if errors else None


@pytest.mark.parametrize("op", ["Next", "send", "throw", "close", "Run"])
def test_driving_from_another_thread_raises_resume_error_naming_both_threads(op: str) -> None:
    c = New[int, Any](lambda: count_to(3))
    c.Next()
    actions = {
        "Next": c.Next,
        "send": lambda: c.send(None),
        "throw": lambda: c.throw(KeyError()),
        "close": c.close,
        "Run": lambda: Run(c, lambda v: None),
    }
    err = in_thread(actions[op])
    assert isinstance(err, ResumeError)
    assert "other-thread" in str(err) and threading.current_thread().name in str(err)
    assert c.status == "suspended"  # nothing happened to it
    assert c.Next() and c.Recv() == 1
    c.close()


def test_starting_from_another_thread_raises_resume_error() -> None:
    c = New[int, Any](lambda: count_to(1))
    err = in_thread(c.Next)
    assert isinstance(err, ResumeError)
    assert c.status == "created"
    c.close()


def test_yield_in_a_thread_started_inside_a_body_raises_not_in_coroutine() -> None:
    errors: list[BaseException | None] = []

    def body() -> None:
        errors.append(in_thread(lambda: Yield[int, Any](1)))

    New[int, Any](body).Next()
    assert isinstance(errors[0], NotInCoroutineError)


def test_yield_in_a_thread_running_a_copy_of_the_body_context_raises() -> None:
    import contextvars

    errors: list[BaseException | None] = []

    def body() -> None:
        ctx = contextvars.copy_context()
        errors.append(in_thread(lambda: ctx.run(Yield[int, Any], 1)))

    New[int, Any](body).Next()
    assert isinstance(errors[0], NotInCoroutineError)


def test_sixteen_threads_drive_their_own_coroutines_at_once() -> None:
    results: dict[int, list[int]] = {}
    barrier = threading.Barrier(16)

    def body() -> int:
        return sum(Yield[int, int](i) for i in range(20))

    def work(k: int) -> None:
        barrier.wait()
        out: list[object] = []
        for _ in range(50):
            c = NewWithReturn[int, int](body)
            out.append(Run(c, lambda v: v * k))
            out.append(c.Recv())
        results[k] = out

    threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: [190 * k, 19] * 50 for k in range(16)}


def test_yield_from_a_greenlet_sharing_the_body_context_raises_not_in_coroutine() -> None:
    # greenback and SQLAlchemy's asyncio layer give their greenlets the caller's context.
    import greenlet

    errors: list[BaseException] = []

    def body() -> None:
        helper = greenlet.greenlet(lambda: Yield[int, Any](1))
        helper.gr_context = greenlet.getcurrent().gr_context
        try:
            helper.switch()
        except NotInCoroutineError as e:
            errors.append(e)
        Yield[int, Any](2)

    c = New[int, Any](body)
    assert c.Next() and c.Recv() == 2
    assert len(errors) == 1
    c.close()


def test_the_wrong_thread_error_names_a_creator_thread_that_has_exited() -> None:
    made: list[Any] = []
    t = threading.Thread(target=lambda: made.append(New[int, Any](lambda: count_to(1))))
    t.start()
    t.join()
    with pytest.raises(ResumeError, match="exited thread"):
        made[0].Next()
