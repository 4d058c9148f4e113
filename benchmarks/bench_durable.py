"""Durable coroutines: state size per yield, and replay speed against live execution.

    python benchmarks/bench_durable.py [--yields N] [--repeat R]

Replay speed is reported as replay throughput / live throughput for the same body (1.0 means
replay runs as fast as live; the target is at least 0.5). "Live" is the body driven yield by
yield by a driver loop, both volatile and durable (recording); "replay" is the first `Next`
after `Unmarshal` of a state suspended at the body's last yield, which re-executes the whole
body from its record.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from coroutine import New, Yield

N = 10_000


def ints() -> None:
    total = 0
    for i in range(N):
        total += Yield[int, int](i)


def strings() -> None:
    for i in range(N):
        Yield[str, str](f"item-{i}")


def records() -> None:
    for i in range(N):
        Yield[dict[str, Any], Any]({"id": i, "tags": ("a", "b"), "score": i / 3})


BODIES: dict[str, tuple[Callable[[], None], Any, Callable[[Any], Any]]] = {
    "int -> int": (ints, (int, int), lambda v: v + 1),
    "str -> str": (strings, (str, str), lambda v: v.upper()),
    "dict -> None": (records, (dict[str, Any], Any), lambda v: None),
}


def drive(c: Any, answer: Callable[[Any], Any], stop_before_last: bool = False) -> None:
    n = 0
    while c.Next():
        n += 1
        c.Send(answer(c.Recv()))
        if stop_before_last and n == N:
            return  # suspended at the last yield, with its answer pending


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def bench(name: str, repeat: int) -> None:
    body, types, answer = BODIES[name]
    make: Any = New.__class_getitem__(types)  # New[R, S] with the pair in a variable

    def live(durable: bool) -> float:
        c = make(body, durable=durable)
        t = time.perf_counter()
        drive(c, answer)
        return time.perf_counter() - t

    c = make(body, durable=True)
    empty = len(c.Context().Marshal())
    drive(c, answer, stop_before_last=True)
    state = c.Context().Marshal()
    c.close()

    def replay() -> float:
        r = make(body, durable=True)
        r.Context().Unmarshal(state)
        t = time.perf_counter()
        r.Next()  # replays N-1 yields, delivers the Send to the last, runs to the end
        return time.perf_counter() - t

    def unmarshal() -> float:
        r = make(body, durable=True)
        t = time.perf_counter()
        r.Context().Unmarshal(state)
        return time.perf_counter() - t

    volatile = best(lambda: live(False), repeat)
    durable = best(lambda: live(True), repeat)
    rep = best(replay, repeat)
    unm = best(unmarshal, repeat)
    per_yield = (len(state) - empty) / (N - 1)
    us = 1e6 / N
    print(
        f"{name:14} state {per_yield:5.1f} B/yield (+{empty} B fixed) | per yield: "
        f"live volatile {volatile * us:5.2f} us, live durable {durable * us:5.2f} us, "
        f"replay {rep * us:5.2f} us, unmarshal {unm * us:5.2f} us | replay/live speed: "
        f"{volatile / rep:4.2f} vs volatile, {durable / rep:4.2f} vs durable"
    )


def main() -> None:
    global N
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yields", type=int, default=N)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    N = args.yields
    for name in BODIES:
        bench(name, args.repeat)


if __name__ == "__main__":
    main()
