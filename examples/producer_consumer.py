"""Producers and consumers sharing a bounded queue, scheduled cooperatively in one thread.

`BoundedQueue.put` and `BoundedQueue.get` look like the blocking calls of `queue.Queue`,
and the producers and consumers are plain loops that call them. When a call must wait
(queue full, queue empty), it `Yield`s a `Wait` saying what it waits for; a twenty-line
round-robin scheduler parks the task and resumes it once the condition holds. No threads,
no locks, no `async`: a task can only be interrupted where it waits, so `len(items)` can
never go stale between the check and the append.

Run it: ``python examples/producer_consumer.py`` (``--trace`` shows every step)
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from coroutine import Coroutine, New, Yield

T = TypeVar("T")


@dataclass(frozen=True)
class Wait:
    """What a task yields to its scheduler: resume me once `ready()` is true."""

    reason: str
    ready: Callable[[], bool]


def wait_until(reason: str, ready: Callable[[], bool]) -> None:
    while not ready():
        Yield[Wait, None](Wait(reason, ready))


def pause() -> None:
    """Let the other tasks have a turn (a consumer does this after each item)."""
    Yield[Wait, None](Wait("its turn", lambda: True))


class Closed(Exception):
    """`get` on a closed queue with nothing left in it."""


class BoundedQueue(Generic[T]):
    """A FIFO of at most `capacity` items; `put` and `get` wait cooperatively."""

    def __init__(self, capacity: int) -> None:
        self.items: deque[T] = deque()
        self.capacity = capacity
        self.closed = False
        self.high_water = 0  # the most items ever held at once

    def put(self, item: T) -> None:
        wait_until("queue not full", lambda: len(self.items) < self.capacity)
        self.items.append(item)
        self.high_water = max(self.high_water, len(self.items))

    def get(self) -> T:
        wait_until("queue not empty", lambda: bool(self.items) or self.closed)
        if not self.items:
            raise Closed
        return self.items.popleft()

    def close(self) -> None:
        """No more puts; consumers drain what is left, then `get` raises `Closed`."""
        self.closed = True

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                yield self.get()  # a generator on top is fine: the Yield is below it
            except Closed:
                return


# -- the scheduler --------------------------------------------------------------------

log: Callable[[str], None] = print


def run(tasks: dict[str, Callable[[], None]]) -> None:
    """Run every task to its end, round robin, parking each one while it waits."""
    ready = deque((name, New[Wait, None](fn)) for name, fn in tasks.items())
    parked: list[tuple[str, Coroutine[Wait, None]]] = []
    while ready:
        name, task = ready.popleft()
        if task.Next():  # run `name` until it must wait, or to its end
            log(f"{name:>10} waits: {task.Recv().reason}")
            parked.append((name, task))
        else:
            log(f"{name:>10} finished")
        still_parked: list[tuple[str, Coroutine[Wait, None]]] = []
        for entry in parked:
            (ready if entry[1].Recv().ready() else still_parked).append(entry)
        parked = still_parked
        if not ready and parked:
            waits = ", ".join(f"{n} ({t.Recv().reason})" for n, t in parked)
            for _, task in parked:
                task.close()
            raise RuntimeError(f"deadlock: every task waits: {waits}")


# -- the program ----------------------------------------------------------------------


def producer(name: str, queue: BoundedQueue[int], items: range) -> None:
    for item in items:
        queue.put(item * item)
        log(f"{name:>10} put {item * item}")


def consumer(name: str, queue: BoundedQueue[int], out: dict[str, list[int]]) -> None:
    got = out.setdefault(name, [])
    for item in queue:
        got.append(item)
        log(f"{name:>10} got {item}")
        pause()  # processing the item takes a turn


def closer(queue: BoundedQueue[int], producers: list[str], finished: set[str]) -> None:
    wait_until("producers to finish", lambda: finished >= set(producers))
    queue.close()


def main(argv: list[str]) -> dict[str, list[int]]:
    global log
    if "--trace" not in argv:
        log = _silent
    queue: BoundedQueue[int] = BoundedQueue(capacity=3)
    consumed: dict[str, list[int]] = {}
    finished: set[str] = set()

    def producing(name: str, items: range) -> Callable[[], None]:
        def task() -> None:
            producer(name, queue, items)
            finished.add(name)

        return task

    run(
        {
            "producer A": producing("producer A", range(0, 10)),
            "producer B": producing("producer B", range(10, 20)),
            "consumer 1": lambda: consumer("consumer 1", queue, consumed),
            "consumer 2": lambda: consumer("consumer 2", queue, consumed),
            "consumer 3": lambda: consumer("consumer 3", queue, consumed),
            "closer": lambda: closer(queue, ["producer A", "producer B"], finished),
        }
    )
    every = sorted(x for got in consumed.values() for x in got)
    print(f"produced 20 items, consumed {len(every)}, sum {sum(every)}")
    print("per consumer:", ", ".join(f"{k} took {len(v)}" for k, v in sorted(consumed.items())))
    print(f"the queue never held more than {queue.high_water} of its capacity 3")
    return consumed


def _silent(_: str) -> None:
    pass


if __name__ == "__main__":
    main(sys.argv[1:])
