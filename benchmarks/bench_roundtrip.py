"""Round trip (resume + yield, an int each way) through each driving API, against raw
greenlet, a generator's send, and a thread handoff through queues."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import greenlet

from coroutine import New, Run, Yield

from ._harness import Bench, timed


def _raw_counter() -> greenlet.greenlet:
    """A raw greenlet that answers each int with the next one."""

    def body(x: int) -> None:
        driver = greenlet.getcurrent().parent
        assert driver is not None
        while True:
            x = driver.switch(x + 1)

    return greenlet.greenlet(body)


def raw_greenlet(n: int) -> float:
    """A raw greenlet switch pair: the floor every stackful library is measured against."""
    g = _raw_counter()

    def drive() -> None:
        x = 0
        for _ in range(n):
            x = g.switch(x)

    t = timed(drive)
    g.throw(greenlet.GreenletExit)
    return t


def generator_send(n: int) -> float:
    def gen() -> Iterator[int]:
        x = yield 0
        while True:
            x = yield x + 1

    g = gen()
    next(g)

    def drive() -> None:
        x = 0
        for _ in range(n):
            x = g.send(x)

    return timed(drive)


def thread_queues(n: int) -> float:
    """The Go talk's channel design: a thread per coroutine, handoffs through two queues."""
    to_body: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    to_driver: queue.SimpleQueue[int] = queue.SimpleQueue()

    def body() -> None:
        while (x := to_body.get()) is not None:
            to_driver.put(x + 1)

    t = threading.Thread(target=body)
    t.start()

    def drive() -> None:
        x = 0
        for _ in range(n):
            to_body.put(x)
            x = to_driver.get()

    elapsed = timed(drive)
    to_body.put(None)
    t.join()
    return elapsed


def _counter(n: int) -> None:
    x = 0
    for _ in range(n):
        x = Yield[int, int](x + 1)


def via_run(n: int) -> float:
    c = New[int, int](lambda: _counter(n))
    return timed(lambda: Run(c, _identity))


def _identity(v: int) -> int:
    return v


def via_next_send_recv(n: int) -> float:
    c = New[int, int](lambda: _counter(n))

    def drive() -> None:
        while c.Next():
            c.Send(c.Recv())

    return timed(drive)


def via_send(n: int) -> float:
    c = New[int, int](lambda: _counter(n))
    c.Next()

    def drive() -> None:
        x = 0
        try:
            while True:
                x = c.send(x)
        except StopIteration:
            pass

    return timed(drive)


def _counter_any(n: int) -> None:
    for i in range(n):
        Yield[int, Any](i)


def via_for_loop(n: int) -> float:
    c = New[int, Any](lambda: _counter_any(n))

    def drive() -> None:
        for _ in c:
            pass

    return timed(drive)


def raw_greenlet_with_callback(n: int) -> float:
    """Raw greenlet with the same per-value callback `Run` makes: Run's fair floor."""
    g = _raw_counter()

    def drive() -> None:
        x = 0
        for _ in range(n):
            x = _identity(g.switch(x))

    t = timed(drive)
    g.throw(greenlet.GreenletExit)
    return t


CANDIDATES: dict[str, Bench] = {
    "raw greenlet switch pair": raw_greenlet,
    "raw greenlet + callback": raw_greenlet_with_callback,
    "Run": via_run,
    "Next/Send/Recv": via_next_send_recv,
    "send()": via_send,
    "for v in coro": via_for_loop,
    "generator send": generator_send,
    "thread + queues": thread_queues,
}
BASELINE = "raw greenlet switch pair"
