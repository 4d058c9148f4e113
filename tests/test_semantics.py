"""SPEC §4, line by line: each numbered rule is at least one test named after it."""

from __future__ import annotations

import gc
import sys
import traceback
from typing import Any, Optional

import pytest

from coroutine import (
    Current,
    LoadContext,
    New,
    NewWithReturn,
    NotInCoroutineError,
    ResumeError,
    Run,
    StoppedError,
    Yield,
    YieldTypeError,
    _worker,
)


def count_to(n: int) -> None:
    for i in range(n):
        Yield[int, Any](i)


# 1. Next


def test_next_runs_to_the_next_yield_and_recv_gives_its_value() -> None:
    c = New[int, Any](lambda: count_to(2))
    assert c.Next() is True
    assert c.Recv() == 0
    assert c.Next() is True
    assert c.Recv() == 1


def test_next_returns_false_when_the_body_returns_and_done_becomes_true() -> None:
    c = New[int, Any](lambda: count_to(1))
    assert c.Next()
    assert not c.Done()
    assert c.Next() is False
    assert c.Done()


def test_next_after_completion_returns_false_and_runs_nothing() -> None:
    runs: list[int] = []
    c = New[int, Any](lambda: runs.append(1))
    assert c.Next() is False
    assert c.Next() is False
    assert runs == [1]


def test_nothing_runs_before_the_first_next() -> None:
    runs: list[int] = []
    c = New[int, Any](lambda: runs.append(1))
    assert runs == []
    assert c.status == "created"
    c.Next()
    assert runs == [1]


# 2. Send


def doubler() -> None:
    x = Yield[int, int](1)
    while True:
        x = Yield[int, int](x * 2)


def test_send_sets_what_the_pending_yield_returns() -> None:
    c = New[int, int](doubler)
    c.Next()
    c.Send(5)
    c.Next()
    assert c.Recv() == 10
    c.Stop()
    c.Next()


def test_the_last_send_before_next_wins() -> None:
    c = New[int, int](doubler)
    c.Next()
    c.Send(1)
    c.Send(2)
    c.Send(3)
    c.Next()
    assert c.Recv() == 6
    c.close()


def test_a_send_before_the_first_next_is_lost() -> None:
    got: list[object] = []

    def body() -> None:
        got.append(Yield[int, Optional[int]](0))

    c = New[int, Optional[int]](body)
    c.Send(99)
    c.Next()
    c.Next()
    assert got == [None]


def test_each_yield_clears_the_send_slot() -> None:
    got: list[object] = []

    def body() -> None:
        got.append(Yield[int, Optional[int]](0))
        got.append(Yield[int, Optional[int]](1))

    c = New[int, Optional[int]](body)
    c.Next()
    c.Send(7)
    c.Next()
    c.Next()  # nothing sent this time: the 7 must not be delivered again
    assert got == [7, None]


def test_resume_without_send_returns_none_when_the_send_type_admits_none() -> None:
    results: list[object] = []

    def body() -> None:
        results.append(Yield[int, Any](0))
        results.append(Yield[int, object](1))
        results.append(Yield[int, None](2))
        results.append(Yield[int, Optional[str]](3))

    c = New[int, Any](body)
    while c.Next():
        pass
    assert results == [None, None, None, None]


def test_resume_without_send_raises_at_the_yield_when_the_send_type_excludes_none() -> None:
    seen: list[BaseException] = []

    def body() -> None:
        try:
            Yield[int, int](0)
        except YieldTypeError as e:
            seen.append(e)
            raise

    c = New[int, int](body)
    c.Next()
    with pytest.raises(YieldTypeError, match="call Send before Next"):
        c.Next()
    assert len(seen) == 1  # raised in the body, at the yield point
    assert c.Done()


# 3. Recv


def test_recv_before_the_first_next_is_none() -> None:
    c = New[int, Any](lambda: count_to(1))
    assert c.Recv() is None
    c.close()


def test_recv_after_completion_keeps_the_last_yielded_value() -> None:
    c = New[int, Any](lambda: count_to(3))
    while c.Next():
        pass
    assert c.Recv() == 2


# 4. NewWithReturn / Result


def test_result_is_none_until_done_then_the_return_value() -> None:
    def body() -> str:
        Yield[int, Any](1)
        return "finished"

    c = NewWithReturn[int, Any](body)
    assert c.Result() is None
    c.Next()
    assert c.Result() is None
    c.Next()
    assert c.Result() == "finished"


def test_new_ignores_the_return_value() -> None:
    c = New[int, Any](lambda: 42)
    c.Next()
    assert c.Result() is None


def test_a_stopped_coroutine_result_stays_none() -> None:
    def body() -> str:
        try:
            Yield[int, Any](1)
        finally:
            return "swallowed"  # noqa: B012 - the point of the test

    c = NewWithReturn[int, Any](body)
    c.Next()
    c.Stop()
    assert c.Next() is False
    assert c.Result() is None


# 5. Exceptions from the body


class Boom(Exception):
    pass


def raiser() -> None:
    try:
        Yield[int, Any](1)
    except KeyError:
        pass
    raise Boom("from the body")


def test_body_exception_propagates_out_of_the_next_that_resumed_it() -> None:
    c = New[int, Any](raiser)
    c.Next()
    with pytest.raises(Boom, match="from the body"):
        c.Next()
    assert c.Done()
    assert c.Next() is False


def test_body_exception_traceback_ends_in_the_body() -> None:
    c = New[int, Any](raiser)
    c.Next()
    with pytest.raises(Boom) as info:
        c.Next()
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].name == "raiser"
    assert not any(f.filename.endswith("_worker.py") for f in frames)


@pytest.mark.parametrize("driver", ["Next", "send", "throw", "Run"])
def test_body_exception_propagates_out_of_every_driving_operation(driver: str) -> None:
    c = New[int, Any](raiser)
    c.Next()
    with pytest.raises(Boom):
        if driver == "Next":
            c.Next()
        elif driver == "send":
            c.send(None)
        elif driver == "throw":
            c.throw(KeyError("caught by the body, which then raises"))
        else:
            Run(c, lambda v: None)
    assert c.Done()


def test_body_exception_from_throw_is_the_thrown_one_when_uncaught() -> None:
    c = New[int, Any](lambda: count_to(3))
    c.Next()
    with pytest.raises(KeyError):
        c.throw(KeyError("k"))
    assert c.Done()


# 6. Stop


def test_stop_only_marks_and_done_stays_false_until_next() -> None:
    c = New[int, Any](lambda: count_to(3))
    c.Next()
    c.Stop()
    assert not c.Done()
    assert c.status == "suspended"
    assert c.Next() is False
    assert c.Done()


def test_stop_unwinds_finally_blocks_and_with_exits_innermost_first() -> None:
    order: list[str] = []

    class Guard:
        def __enter__(self) -> None:
            order.append("enter")

        def __exit__(self, *exc: object) -> None:
            order.append("with-exit")

    def inner() -> None:
        try:
            with Guard():
                Yield[int, Any](1)
        finally:
            order.append("inner-finally")

    def outer() -> None:
        try:
            inner()
        finally:
            order.append("outer-finally")

    c = New[int, Any](outer)
    c.Next()
    c.Stop()
    c.Next()
    assert order == ["enter", "with-exit", "inner-finally", "outer-finally"]


def test_stop_is_idempotent() -> None:
    unwound: list[int] = []

    def body() -> None:
        try:
            Yield[int, Any](1)
        finally:
            unwound.append(1)

    c = New[int, Any](body)
    c.Next()
    c.Stop()
    c.Stop()
    assert c.Next() is False
    c.Stop()
    assert c.Next() is False
    assert unwound == [1]


def test_stop_after_completion_does_nothing() -> None:
    c = New[int, Any](lambda: None)
    c.Next()
    c.Stop()
    assert c.Done()
    assert c.Next() is False


def test_stop_before_the_first_next_means_the_body_never_runs() -> None:
    runs: list[int] = []
    c = New[int, Any](lambda: runs.append(1))
    c.Stop()
    assert c.Next() is False
    assert c.Done()
    assert runs == []


# 7. Yielding while stopping


def test_yield_in_finally_while_stopping_raises_resume_error_in_the_driver() -> None:
    after: list[str] = []

    def body() -> None:
        try:
            Yield[int, Any](1)
        finally:
            Yield[int, Any](2)
            after.append("resumed")

    c = New[int, Any](body)
    c.Next()
    c.Stop()
    with pytest.raises(ResumeError, match="cannot yield from a coroutine that has been stopped"):
        c.Next()
    assert c.Done()
    assert c.Next() is False
    assert after == []


def test_catching_coroutine_exit_and_yielding_ends_the_coroutine_in_the_driver() -> None:
    caught: list[BaseException] = []

    def body() -> None:
        from coroutine import CoroutineExit

        try:
            Yield[int, Any](1)
        except CoroutineExit:
            try:
                Yield[int, Any](2)
            except BaseException as e:  # the error must not be raised here
                caught.append(e)
                raise

    # A parked worker keeps its last driver greenlet referenced; start from an empty pool so
    # that no earlier test's worker holds this body's greenlet (see _worker.py).
    _worker._local.__dict__.pop("pool", None)
    c = New[int, Any](body)
    c.Next()
    c.Stop()
    with pytest.raises(ResumeError) as info:
        c.Next()
    del info  # its traceback holds the coroutine
    assert caught == []
    assert c.Done()
    assert c.Next() is False
    del c  # like a generator that ignored GeneratorExit, collection unwinds it once more
    gc.collect()
    from coroutine import CoroutineExit

    assert [type(e) for e in caught] == [CoroutineExit]


def test_a_body_may_stop_itself_and_its_next_yield_ends_it() -> None:
    reached: list[str] = []

    def body() -> None:
        me = Current()
        assert me is not None
        me.Stop()
        del me
        try:
            Yield[int, Any](1)
        finally:
            reached.append("unreachable")

    c = New[int, Any](body)
    with pytest.raises(ResumeError, match="stopped"):
        c.Next()
    assert c.Done()
    assert reached == []


# 8. close and throw


def test_close_stops_and_drives_to_completion() -> None:
    unwound: list[int] = []

    def body() -> None:
        try:
            count_to(10)
        finally:
            unwound.append(1)

    c = New[int, Any](body)
    c.Next()
    c.close()
    assert c.Done()
    assert unwound == [1]


def test_close_propagates_exceptions_from_finally_blocks() -> None:
    def body() -> None:
        try:
            Yield[int, Any](1)
        finally:
            raise Boom("in finally")

    c = New[int, Any](body)
    c.Next()
    with pytest.raises(Boom, match="in finally"):
        c.close()
    assert c.Done()


def test_close_on_a_created_coroutine_never_runs_it() -> None:
    runs: list[int] = []
    c = New[int, Any](lambda: runs.append(1))
    c.close()
    assert c.Done()
    assert runs == []


def test_throw_raises_at_the_yield_point_and_runs_to_the_next_yield() -> None:
    def body() -> None:
        try:
            Yield[str, Any]("first")
        except KeyError as e:
            Yield[str, Any](f"caught {e.args[0]}")

    c = New[str, Any](body)
    c.Next()
    assert c.throw(KeyError("k")) == "caught k"
    assert c.Recv() == "caught k"
    with pytest.raises(StopIteration):
        c.send(None)


def test_throw_into_a_created_coroutine_marks_it_done_without_running_it() -> None:
    runs: list[int] = []
    c = New[int, Any](lambda: runs.append(1))
    with pytest.raises(KeyError):
        c.throw(KeyError("k"))
    assert c.Done()
    assert runs == []


def test_throw_accepts_an_exception_class() -> None:
    c = New[int, Any](lambda: count_to(2))
    c.Next()
    with pytest.raises(KeyError):
        c.throw(KeyError)


def test_throw_ending_the_body_raises_stop_iteration_with_the_result() -> None:
    def body() -> int:
        try:
            Yield[int, Any](1)
        except KeyError:
            return 7
        return 0

    c = NewWithReturn[int, Any](body)
    c.Next()
    with pytest.raises(StopIteration) as info:
        c.throw(KeyError())
    assert info.value.value == 7


# 9. Run


def test_run_calls_fn_on_each_value_sends_back_its_result_and_returns_result() -> None:
    def body() -> int:
        total = 0
        for i in range(4):
            total += Yield[int, int](i)
        return total

    seen: list[int] = []

    def fn(v: int) -> int:
        seen.append(v)
        return v * 10

    assert Run(NewWithReturn[int, int](body), fn) == 60
    assert seen == [0, 1, 2, 3]


def test_run_starts_from_the_current_position_and_delivers_a_pending_send() -> None:
    got: list[int] = []

    def body() -> None:
        for i in range(3):
            got.append(Yield[int, int](i))

    c = New[int, int](body)
    c.Next()  # 0 was received here, before Run
    c.Send(100)
    seen: list[int] = []
    Run(c, lambda v: seen.append(v) or v)
    assert seen == [1, 2]
    assert got == [100, 1, 2]


def test_run_checks_fn_none_result_against_s() -> None:
    unwound: list[int] = []

    def body() -> None:
        try:
            Yield[int, int](0)
        finally:
            unwound.append(1)

    c = New[int, int](body)
    with pytest.raises(YieldTypeError, match="cannot send None"):
        Run(c, lambda v: None)  # type: ignore[arg-type, return-value]
    assert c.Done()
    assert unwound == [1]


def test_run_stops_and_unwinds_the_body_when_fn_raises() -> None:
    unwound: list[int] = []

    def body() -> None:
        try:
            count_to(10)
        finally:
            unwound.append(1)

    def fn(v: int) -> None:
        if v == 2:
            raise Boom("fn failed")

    c = New[int, Any](body)
    with pytest.raises(Boom, match="fn failed"):
        Run(c, fn)
    assert unwound == [1]
    assert c.Done()


def test_run_error_while_unwinding_wins_with_fn_error_as_context() -> None:
    def body() -> None:
        try:
            Yield[int, Any](1)
        finally:
            raise KeyError("while unwinding")

    def fn(v: int) -> None:
        raise Boom("fn failed")

    with pytest.raises(KeyError) as info:
        Run(New[int, Any](body), fn)
    assert isinstance(info.value.__context__, Boom)


def test_run_fn_may_stop_the_coroutine() -> None:
    seen: list[int] = []
    c = New[int, Any](lambda: count_to(100))

    def fn(v: int) -> None:
        seen.append(v)
        if v == 3:
            c.Stop()

    with pytest.raises(StoppedError, match="stopped before it returned"):
        Run(c, fn)
    assert seen == [0, 1, 2, 3]
    assert c.Done()


def test_run_on_a_finished_coroutine_returns_its_result_without_calling_fn() -> None:
    c = NewWithReturn[int, Any](lambda: 5)
    c.Next()
    assert Run(c, lambda v: pytest.fail("fn must not be called")) == 5


# 11. Nesting


def test_yield_goes_to_the_innermost_active_coroutine_whatever_the_types() -> None:
    def inner() -> None:
        Yield[str, Any]("inner")

    def outer() -> None:
        c = New[str, Any](inner)
        c.Next()
        Yield[int, Any](len(c.Recv()))
        c.Next()

    assert list(New[int, Any](outer)) == [5]


def test_resuming_a_running_coroutine_raises_resume_error() -> None:
    def body() -> None:
        me = Current()
        assert me is not None
        try:
            me.Next()
        finally:
            del me

    c = New[int, Any](body)
    with pytest.raises(ResumeError, match="it is running"):
        c.Next()


def test_resuming_a_normal_coroutine_raises_resume_error() -> None:
    outer_ref: list[Any] = []

    def inner() -> None:
        outer_ref[0].Next()

    def outer() -> None:
        New[int, Any](inner).Next()

    c = New[int, Any](outer)
    outer_ref.append(c)
    with pytest.raises(ResumeError, match="resuming another coroutine"):
        c.Next()
    outer_ref.clear()


# 12. Yield outside


def test_yield_outside_any_coroutine_raises_not_in_coroutine() -> None:
    with pytest.raises(NotInCoroutineError, match="no active coroutine"):
        Yield[int, Any](1)


def test_load_context_outside_any_coroutine_raises_not_in_coroutine() -> None:
    with pytest.raises(NotInCoroutineError):
        LoadContext[int, Any]()


# 14. contextvars: see test_contextvars.py. 13: see test_threads.py. 15: see test_gc.py.


# 16. Current, status, LoadContext


def test_current_inside_a_body_returns_that_coroutine_and_none_outside() -> None:
    seen: list[object] = []
    c = New[int, Any](lambda: seen.append(Current()))
    c.Next()
    assert seen == [c]
    assert Current() is None


def test_status_moves_created_running_suspended_done() -> None:
    seen: list[str] = []

    def body() -> None:
        me = Current()
        assert me is not None
        seen.append(me.status)
        del me
        Yield[int, Any](1)

    c = New[int, Any](body)
    assert c.status == "created"
    c.Next()
    assert c.status == "suspended"
    c.Next()
    assert c.status == "done"
    assert seen == ["running"]


def test_status_is_normal_while_driving_an_inner_coroutine() -> None:
    seen: list[str] = []
    holder: list[Any] = []

    def inner() -> None:
        seen.append(holder[0].status)

    def outer() -> None:
        New[int, Any](inner).Next()

    c = New[int, Any](outer)
    holder.append(c)
    c.Next()
    holder.clear()
    assert seen == ["normal"]


def test_load_context_returns_the_same_object_as_context() -> None:
    seen: list[object] = []
    c = New[int, str](lambda: seen.append(LoadContext[int, str]()))
    c.Next()
    assert seen == [c.Context()]


def test_context_yield_yields_with_the_coroutine_types() -> None:
    def body() -> None:
        ctx = LoadContext[int, str]()
        assert ctx.Yield(1) == "one"

    c = New[int, str](body)
    assert c.Next()
    assert c.Recv() == 1
    c.Send("one")
    assert c.Next() is False


def test_context_yield_from_outside_its_body_raises() -> None:
    c = New[int, Any](lambda: count_to(1))
    with pytest.raises(NotInCoroutineError):
        c.Context().Yield(1)


# 17. Recursion


def recurse(depth: int) -> int:
    if depth == 0:
        return Yield[int, int](depth)
    return recurse(depth - 1) + 1


def test_recursion_to_half_the_limit_inside_a_body_can_yield() -> None:
    depth = sys.getrecursionlimit() // 2
    c = NewWithReturn[int, int](lambda: recurse(depth))
    assert c.Next()
    c.Send(0)
    assert c.Next() is False
    assert c.Result() == depth


def test_recursion_error_in_a_body_reaches_the_driver_and_the_thread_stays_usable() -> None:
    def forever(n: int) -> int:
        return forever(n + 1) + 1

    c = New[int, Any](lambda: forever(0))
    with pytest.raises(RecursionError):
        c.Next()
    assert c.Done()
    assert list(New[int, Any](lambda: count_to(3))) == [0, 1, 2]
    assert recurse_plain(sys.getrecursionlimit() // 2) > 0


def recurse_plain(depth: int) -> int:
    return 1 if depth == 0 else recurse_plain(depth - 1) + 1


def test_context_yield_checks_the_value_against_r() -> None:
    c = New[int, Any](lambda: LoadContext[int, Any]().Yield("not an int"))
    with pytest.raises(YieldTypeError, match="does not match int"):
        c.Next()
    assert c.Done()
