"""Round trip through `Run` with the yield deep in the body's call stack, and inside a C
callback (`sorted(key=...)`): the cost should not depend on depth. A raw greenlet switching
at depth 1 and 1000 shows what greenlet itself costs there."""

from __future__ import annotations

import sys
from typing import Any

import greenlet

from coroutine import New, Run, Yield

from ._harness import Bench, timed

DEPTHS = (1, 10, 100, 1000)


def _descend(depth: int, n: int) -> None:
    if depth > 1:
        _descend(depth - 1, n)
        return
    y = Yield[int, Any]
    for i in range(n):
        y(i)


def at_depth(depth: int) -> Bench:
    def bench(n: int) -> float:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, depth + 500))
        try:
            c = New[int, Any](lambda: _descend(depth, n))
            return timed(lambda: Run(c, _answer))
        finally:
            sys.setrecursionlimit(limit)

    return bench


def _answer(v: int) -> None:
    return None


def _raw_descend(depth: int, n: int) -> None:
    if depth > 1:
        _raw_descend(depth - 1, n)
        return
    driver = greenlet.getcurrent().parent
    assert driver is not None
    for i in range(n):
        driver.switch(i)


def raw_at_depth(depth: int) -> Bench:
    """A raw greenlet switching at the same depth: what greenlet itself costs there."""

    def bench(n: int) -> float:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, depth + 500))
        try:
            g = greenlet.greenlet(lambda: _raw_descend(depth, n))

            def drive() -> None:
                g.switch()
                for _ in range(n):
                    _answer(g.switch())

            return timed(drive)
        finally:
            sys.setrecursionlimit(limit)

    return bench


def _echo(v: int) -> int:
    return v


def in_sorted_key(n: int) -> float:
    y = Yield[int, Any]
    c = New[int, Any](lambda: sorted(range(n), key=y))
    return timed(lambda: Run(c, _echo))


CANDIDATES: dict[str, Bench] = {
    **{f"depth {d}": at_depth(d) for d in DEPTHS},
    "inside sorted(key=...)": in_sorted_key,
    "raw greenlet, depth 1": raw_at_depth(1),
    "raw greenlet, depth 1000": raw_at_depth(1000),
}
BASELINE = "depth 1"
