"""Worker greenlets are pooled per thread, so creating a coroutine rarely makes a greenlet."""

from __future__ import annotations

import functools
import gc
import threading
import weakref
from typing import Any

from coroutine import New, Yield, _worker


class Marker:
    pass


def one_yield() -> None:
    Yield[int, Any](1)


def test_a_finished_coroutine_worker_runs_the_next_body() -> None:
    list(New[int, Any](one_yield))
    pool = _worker._local.pool
    idle = list(pool)
    c = New[int, Any](one_yield)
    c.Next()
    assert c._g is idle[-1]
    c.close()


def test_the_pool_is_capped() -> None:
    cs = [New[int, Any](one_yield) for _ in range(_worker.POOL_CAP + 10)]
    for c in cs:
        c.Next()
    for c in cs:
        c.close()
    assert len(_worker._local.pool) == _worker.POOL_CAP


def test_each_thread_has_its_own_pool() -> None:
    list(New[int, Any](one_yield))
    seen: list[object] = []

    def other() -> None:
        list(New[int, Any](one_yield))
        seen.append(_worker._local.pool)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen[0] is not _worker._local.pool


def test_a_worker_abandoned_by_a_yield_after_stop_is_not_reused() -> None:
    def body() -> None:
        try:
            Yield[int, Any](1)
        finally:
            Yield[int, Any](2)

    c = New[int, Any](body)
    c.Next()
    stuck = c._g
    c.Stop()
    try:
        c.Next()
    except Exception:
        pass
    assert stuck not in _worker._local.pool


def test_a_worker_first_started_inside_a_body_is_not_pooled() -> None:
    # greenlet fixes a greenlet's recursion depth at its first switch: such a worker would
    # carry the outer body's depth into every later body.
    _worker._local.__dict__.pop("pool", None)
    inner_workers: list[object] = []

    def outer() -> None:
        inner = New[int, Any](one_yield)
        inner.Next()
        inner_workers.append(inner._g)
        inner.close()

    New[int, Any](outer).Next()
    pool = _worker._local.pool
    assert inner_workers and inner_workers[0] not in pool
    assert len(pool) == 1  # the outer's worker, first started by this test's frame
    assert inner_workers[0].dead  # type: ignore[attr-defined]  # it ran its one body and died


def test_a_worker_inside_a_body_ends_quietly_with_its_body() -> None:
    # `_worker_once` returns to its driver rather than parking: a body that ends, raises or
    # is stopped gives the driver what a pooled worker's body would.
    results: list[object] = []

    def outer() -> None:
        done = New[int, Any](lambda: None)
        results.append(done.Next())
        failing = New[int, Any](lambda: 1 / 0)
        try:
            failing.Next()
        except ZeroDivisionError as exc:
            results.append(type(exc))
        stopped = New[int, Any](one_yield)
        stopped.Next()
        stopped.Stop()
        results.append(stopped.Next())
        for c in (done, failing, stopped):
            results.append(c._g)

    New[int, Any](outer).Next()
    assert results == [False, ZeroDivisionError, False, None, None, None]


def test_workers_carry_no_instance_dictionary() -> None:
    # Which function a worker runs is its only mark: a dict per worker would cost every
    # suspended coroutine about 200 bytes (benchmarks/bench_memory.py).
    _worker._local.__dict__.pop("pool", None)
    seen: list[Any] = []

    def outer() -> None:
        inner = New[int, Any](one_yield)
        inner.Next()
        seen.append(inner._g)
        Yield[int, Any](1)

    c = New[int, Any](outer)
    c.Next()
    seen.append(c._g)
    for worker in seen:
        assert not vars(worker)
    c.close()


def test_a_new_worker_keeps_nothing_of_its_first_body() -> None:
    # greenlet keeps the arguments of a greenlet's first switch while it lives: a new worker
    # is started by `acquire` and parked, so that its first task comes as later ones do.
    _worker._local.__dict__.pop("pool", None)
    held = Marker()
    held_ref = weakref.ref(held)
    New[int, Any](functools.partial(lambda m: None, held)).Next()
    del held
    assert len(_worker._local.pool) == 1
    gc.collect()
    assert held_ref() is None
