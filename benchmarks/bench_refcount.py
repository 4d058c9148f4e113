"""Reference counts of yielded, sent and result objects over 10**6 round trips (issue 11).

    python -m benchmarks.bench_refcount [N]        # COROUTINE_PURE=1 for the pure path

Drives one coroutine N times each through Next/Send/Recv, send() and Run (which also creates
N coroutines), then checks that the reference counts of the three objects that crossed every
switch are what they were after a warm-up round. Exits 1 if not. (tests/test_speedups.py runs
the same with a smaller N.)
"""

from __future__ import annotations

import sys
import time

import coroutine
from coroutine import New, NewWithReturn, Run, Yield


def _echo() -> None:
    x: object = None
    while True:
        x = Yield[object, object](x)


def rounds(n: int, sent: object, yielded: object, result: object) -> None:
    c = New[object, object](_echo)
    c.Next()
    for _ in range(n):
        c.Send(sent)
        c.Next()
        c.send(sent)
    c.close()

    def body() -> object:
        Yield[object, object](yielded)
        return result

    for _ in range(n):
        Run(NewWithReturn[object, object](body), lambda v: v)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10**6
    objs = object(), object(), object()
    rounds(10, *objs)
    before = [sys.getrefcount(o) for o in objs]
    t = time.perf_counter()
    rounds(n, *objs)
    after = [sys.getrefcount(o) for o in objs]
    print(
        f"accelerated={coroutine.ACCELERATED} N={n}: refcounts (sent, yielded, result) "
        f"{before} -> {after} in {time.perf_counter() - t:.1f} s"
    )
    return 0 if before == after else 1


if __name__ == "__main__":
    sys.exit(main())
