"""Instructions per operation, counted by callgrind, for both implementations side by side.

    python -m benchmarks.instructions                 # the table (pure and accelerated)
    python -m benchmarks.instructions SCENARIO N      # one run (what callgrind counts)

Each scenario runs N and 2N times under ``valgrind --tool=callgrind`` with PYTHONHASHSEED=0;
(I(2N) - I(N)) / N is the cost of one operation, start-up cancelled out. The coroutine rows
run once with ``COROUTINE_PURE=1`` and once accelerated; the raw greenlet rows are the floors
the budgets of issue 11 are stated against (type checks on, ``Yield[int, int]`` subscripted at
every yield, as users write it). Instruction counts are exact and repeatable on a shared,
noisy machine, where times are not; `bench_*.py` give the times.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from . import count

N = 20_000


def _identity(v: int) -> int:
    return v


def _counter(n: int) -> None:
    from coroutine import Yield

    x = 0
    for _ in range(n):
        x = Yield[int, int](x + 1)


def raw_pair(n: int) -> None:
    import greenlet

    def body(x: int) -> None:
        driver = greenlet.getcurrent().parent
        while True:
            x = driver.switch(x + 1)  # type: ignore[union-attr]

    g = greenlet.greenlet(body)
    x = 0
    for _ in range(n):
        x = g.switch(x)
    g.throw(greenlet.GreenletExit)


def _switch_in(g: Any, x: int) -> int:
    return g.switch(x)  # type: ignore[no-any-return]


def _driver_call(g: Any, x: int) -> int:
    return _switch_in(g, x)


def _switch_out(driver: Any, x: int) -> int:
    return driver.switch(x)  # type: ignore[no-any-return]


def _yield_call(driver: Any, x: int) -> int:
    return _switch_out(driver, x)


def raw_pair_two_calls_deep(n: int) -> None:
    """`raw_pair` with both switches made from inside two Python calls, as the pure path
    makes them (`Next` -> `resume`, `yield_` -> `switch_out`): on CPython 3.12+ greenlet gives
    every Python frame on the stack of the greenlet it switches away from a frame object, so
    each call live across a switch costs a frame object per switch
    (docs/explanation/performance.md)."""
    import greenlet

    def body(x: int) -> None:
        driver = greenlet.getcurrent().parent
        while True:
            x = _yield_call(driver, x + 1)

    g = greenlet.greenlet(body)
    x = 0
    for _ in range(n):
        x = _driver_call(g, x)
    g.throw(greenlet.GreenletExit)


def raw_pooled_cycle(n: int) -> None:
    """A parked worker greenlet runs one function to completion per switch pair."""
    import greenlet

    def worker(fn: Callable[[], None]) -> None:
        driver = greenlet.getcurrent().parent
        while True:
            fn()
            fn = driver.switch(None)  # type: ignore[union-attr]

    g = greenlet.greenlet(worker)
    for _ in range(n):
        g.switch(_noop)
    g.throw(greenlet.GreenletExit)


def _noop() -> None:
    pass


def run(n: int) -> None:
    from coroutine import New, Run

    Run(New[int, int](lambda: _counter(n)), _identity)


def _next_send_recv(n: int) -> None:
    from coroutine import New

    c = New[int, int](lambda: _counter(n))
    while c.Next():
        c.Send(c.Recv())


def next_send_recv(n: int) -> None:
    """`while c.Next(): c.Send(c.Recv())`, in a function called often enough to be
    specialized. On 3.11 a `while` loop's backward jump is conditional and counts nothing
    towards specializing the code (`for` loops' do), so a function called once, as here,
    never specializes its loop: its method loads and calls stay generic, about 730
    instructions a round trip on 3.11 (6,316 against 5,585). Eight calls specialize it;
    the ten warm-up calls cancel out of (I(2N) - I(N)) / N. 3.12+ specialize either way."""
    for _ in range(10):
        _next_send_recv(1)
    _next_send_recv(n)


def send(n: int) -> None:
    from coroutine import New

    c = New[int, int](lambda: _counter(n))
    x = c.send(None)
    try:
        while True:
            x = c.send(x)
    except StopIteration:
        pass


def create_complete(n: int) -> None:
    from coroutine import New

    make = New[int, int]
    for _ in range(n):
        make(_noop).Next()


def create_as_written(n: int) -> None:
    """Creation as users write it: the subscript and a new lambda at each call (issue 20)."""
    from typing import Any

    from coroutine import New

    for _ in range(n):
        New[int, Any](lambda: None).Next()


def new_subscript(n: int) -> None:
    from typing import Any

    from coroutine import New

    for _ in range(n):
        New[int, Any]


SCENARIOS: dict[str, Callable[[int], None]] = {
    "raw greenlet switch pair": raw_pair,
    "raw greenlet switch pair, two calls deep": raw_pair_two_calls_deep,
    "Run": run,
    "Next/Send/Recv": next_send_recv,
    "send()": send,
    "raw pooled greenlet cycle": raw_pooled_cycle,
    "New + Next to completion": create_complete,
    "New[int, Any](lambda: None).Next()": create_as_written,
    "New[int, Any] alone": new_subscript,
}
BUDGETS = {  # scenario: (floor, budget)
    "Run": ("raw greenlet switch pair", 1.25),
    "Next/Send/Recv": ("raw greenlet switch pair", 1.45),
    "send()": ("raw greenlet switch pair", 1.45),
    "New + Next to completion": ("raw pooled greenlet cycle", 2.0),
    "New[int, Any](lambda: None).Next()": ("raw pooled greenlet cycle", 2.0),
    "New[int, Any] alone": ("raw pooled greenlet cycle", 1.0),
}


def per_op(name: str, pure: bool, n: int = N) -> float:
    return count.per_op(lambda k: ["-m", "benchmarks.instructions", name, str(k)], n, pure)


def main() -> None:
    import coroutine

    v = sys.version_info
    print(f"CPython {v.major}.{v.minor}, N = {N}; accelerated: {coroutine.ACCELERATED}\n")
    # The scenarios import coroutine only when they run: its .pyc files are written here, or
    # the first scenario's N run would compile them and its 2N run not (about 5,000
    # instructions a round trip off, measured on 3.11's pure `Run`).
    count.warm_up(["benchmarks.instructions", "coroutine"])
    print("| scenario | pure Python | ratio | accelerated | ratio | budget |")
    print("|---|---|---|---|---|---|")
    floors: dict[str, float] = {}
    for name in SCENARIOS:
        if name.startswith("raw"):
            floors[name] = per_op(name, True)
            pair = floors["raw greenlet switch pair"]  # the deep row's ratio is to the pair
            ratio = floors[name] / pair if name.endswith("deep") else 1.0
            print(f"| {name} | {floors[name]:,.0f} | {ratio:.2f}x | | | |", flush=True)
            continue
        floor, budget = BUDGETS[name]
        pure = per_op(name, True)
        fast = per_op(name, False) if coroutine.ACCELERATED else float("nan")
        base = floors[floor]
        print(
            f"| {name} | {pure:,.0f} | {pure / base:.2f}x | {fast:,.0f} | {fast / base:.2f}x "
            f"| <= {budget}x {floor} |",
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) == 3:
        SCENARIOS[sys.argv[1]](int(sys.argv[2]))
    else:
        main()
