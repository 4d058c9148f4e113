"""Measure the C prototype of the hot paths against the pure-Python runtime, side by side.

    ./benchmarks/prototype/build.sh .venv/bin/python
    python -m benchmarks.prototype.bench_prototype

The prototype replaces `Yield[int, int]` with a C callable (bound once, so compare it with
the pure-Python yield bound once too) and `Run`'s loop with a C loop; both read and write the
same Context slots as the Python runtime, at their offsets, as a C struct would.
"""

from __future__ import annotations

import greenlet

from coroutine import New, Run, Yield, _context
from coroutine._signature import signature

from .._harness import compare, timed
from ..bench_roundtrip import _identity, raw_greenlet
from . import _fastpath  # type: ignore[attr-defined]

_fastpath.setup(
    _context.SUSPENDED, _context.RUNNING, _context.NOTHING, _context.CURRENT, _context.Context
)
C_YIELD = _fastpath.make_yield(signature(int, int), int, Yield[int, int])


def c_run(coro, fn):  # type: ignore[no-untyped-def]
    """`Run` with the C loop for the common case, the Python runtime for the rest."""
    ctx = coro._ctx
    if not coro.Next():
        return ctx._result
    driver = greenlet.getcurrent()
    while True:
        more, out = _fastpath.run_loop(ctx, coro._g, fn, int, driver)
        if not more:
            coro._ended(out)
            return ctx._result
        return Run(coro, fn)  # the fast case stopped holding: let the runtime finish


def _python_body(n: int) -> None:
    x = 0
    for _ in range(n):
        x = Yield[int, int](x + 1)


def _python_body_hoisted(n: int) -> None:
    x = 0
    y = Yield[int, int]
    for _ in range(n):
        x = y(x + 1)


def _c_body(n: int) -> None:
    x = 0
    for _ in range(n):
        x = C_YIELD(x + 1)


def python_run(n: int) -> float:
    c = New[int, int](lambda: _python_body(n))
    return timed(lambda: Run(c, _identity))


def python_run_hoisted(n: int) -> float:
    c = New[int, int](lambda: _python_body_hoisted(n))
    return timed(lambda: Run(c, _identity))


def c_yield_python_run(n: int) -> float:
    c = New[int, int](lambda: _c_body(n))
    return timed(lambda: Run(c, _identity))


def c_yield_c_run(n: int) -> float:
    c = New[int, int](lambda: _c_body(n))
    return timed(lambda: c_run(c, _identity))


if __name__ == "__main__":
    results = compare(
        {
            "raw greenlet switch pair": raw_greenlet,
            "Run, pure Python": python_run,
            "Run, pure Python, Yield bound once": python_run_hoisted,
            "Run, C Yield": c_yield_python_run,
            "Run, C Yield + C loop": c_yield_c_run,
        },
        "raw greenlet switch pair",
        50_000,
    )
    for r in results:
        print(f"{r.name:28s} {r.micros:7.3f} µs  {r.ratio:5.2f}x")
