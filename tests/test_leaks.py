"""Leaks: abandoned coroutines are unwound once and freed; memory and refcounts stay flat.

Everything here relies on reference counting alone where the README promises it (no
`gc.collect()` needed), and checks `gc.garbage` stays empty.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tracemalloc
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from coverage_state import measured

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


# -- rounds of create / abandon / collect ----------------------------------------------


def rss_bytes() -> int | None:
    """Resident set size of this process (Linux), or None where unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def abandon_one_of_each(finallies: Counter[int], base: int, zombies: bool) -> None:
    """Coroutines abandoned in every state a driver can leave them in."""

    def down(k: int, depth: int) -> None:
        if depth:
            down(k, depth - 1)
        else:
            Yield[int, Any](k)
            Yield[int, Any](k)

    def body(k: int, depth: int) -> None:
        try:
            down(k, depth)
        finally:
            finallies[k] += 1

    def zombie(k: int) -> None:
        try:
            Yield[int, Any](k)
        except CoroutineExit:
            try:
                Yield[int, Any](k)
            finally:
                finallies[k] += 1

    def nested(k: int) -> None:
        inner = New[int, Any](lambda: body(k + 1, 3))
        inner.Next()
        body(k, 0)

    New[int, Any](lambda: body(base, 0))  # created: never runs
    c = New[int, Any](lambda: body(base + 1, 0))
    c.Next()  # suspended
    c = New[int, Any](lambda: body(base + 2, 20))
    c.Next()  # suspended, deep
    if zombies:
        c = New[int, Any](lambda: zombie(base + 3))
        c.Next()
        try:
            c.close()  # done by yielding while stopped: its body stays suspended until dropped
        except ResumeError:
            pass
    else:  # see test_pooled_workers_do_not_accumulate_recursion_depth
        c = New[int, Any](lambda: nested(base + 4))
    c.Next()  # suspended, holding a suspended inner coroutine
    c = New[int, Any](lambda: body(base + 6, 2))
    list(c)  # done
    del c


# finally blocks per abandon_one_of_each: all but the created one
ABANDONED_PER_CALL = {True: 4, False: 5}


@pytest.mark.parametrize("zombies", [True, False], ids=["with zombies", "with nested"])
def test_rounds_of_create_abandon_collect_keep_memory_flat_and_run_each_finally_once(
    zombies: bool,
) -> None:
    rounds, per_round = 8, 300
    finallies: Counter[int] = Counter()
    traced: list[int] = []
    rss: list[int | None] = []
    tracemalloc.start()
    try:
        for _ in range(rounds):
            for i in range(per_round):
                abandon_one_of_each(finallies, i * 10, zombies)
            gc.collect()
            assert gc.garbage == []
            assert len(finallies) == per_round * ABANDONED_PER_CALL[zombies]
            assert set(finallies.values()) == {1}  # each ran exactly once; never the created
            finallies.clear()
            traced.append(tracemalloc.get_traced_memory()[0])
            rss.append(rss_bytes())
    finally:
        tracemalloc.stop()
    # Flat: after a warm-up round, no growth proportional to what was abandoned
    # (8 x 300 x 6 coroutines would be megabytes).
    if measured():
        return  # under coverage, the tracer's own per-greenlet records grow; not ours
    growth = traced[-1] - traced[1]
    assert growth < 64 * 1024, traced
    if rss[1] is not None and rss[-1] is not None:
        assert rss[-1] - rss[1] < 4 * 1024 * 1024, rss


def headroom() -> int:
    """How many more frames fit under the recursion limit, here."""
    n = 0

    def down() -> None:
        nonlocal n
        n += 1
        down()

    try:
        down()
    except RecursionError:
        pass
    return n


def headroom_in_a_body() -> int:
    out: list[int] = []
    New[int, Any](lambda: out.append(headroom())).Next()
    return out[0]


def test_pooled_workers_do_not_accumulate_recursion_depth() -> None:
    def zombie() -> None:
        try:
            Yield[int, Any](0)
        except CoroutineExit:
            Yield[int, Any](0)

    def nested() -> None:
        New[int, Any](lambda: Yield[int, Any](0)).Next()
        Yield[int, Any](0)

    before = headroom_in_a_body()
    for _ in range(20):
        c = New[int, Any](zombie)
        c.Next()
        with contextlib.suppress(ResumeError):
            c.close()
        c = New[int, Any](nested)
        c.Next()
        del c
    assert headroom_in_a_body() >= before - 2  # SPEC §17: as in the thread that drives it
