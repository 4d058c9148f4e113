"""Async bridge: synchronous library code, deep in a call stack, awaits asyncio work.

`string.Template.substitute` is synchronous standard-library code: it runs a regular
expression whose callback looks each placeholder up with ``mapping[name]``. We want those
lookups answered by an async service (here a stand-in for an async database client), and we
want several documents rendered at once on one event loop. Without coroutines the choices
are to rewrite the template engine as `async`, or to run it in threads.

With `coroutine`, the mapping's ``__getitem__`` (called from C, inside `re.sub`, inside
`substitute`) does ``Yield[str, str](name)``. `RunAsync` drives the synchronous render from
the event loop and awaits the async lookup for each yielded name, so the renders interleave
at their lookups while none of the template code changes.

Run it: ``python examples/async_bridge.py``
"""

from __future__ import annotations

import asyncio
import time
from string import Template

from coroutine import Coroutine, NewWithReturn, RunAsync, Yield

LATENCY = 0.05  # seconds per lookup


class Directory:
    """A stand-in for an async client: each lookup takes `LATENCY` seconds of I/O."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = records
        self.in_flight = 0
        self.most_in_flight = 0  # the most lookups awaited at the same time
        self.lookups = 0

    async def get(self, key: str) -> str:
        self.lookups += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(LATENCY)
            return self.records[key]
        finally:
            self.in_flight -= 1


class YieldingMapping(dict[str, str]):
    """A mapping whose every lookup is a question to the coroutine's driver."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def __getitem__(self, name: str) -> str:
        value: str = Yield[str, str](f"{self.prefix}.{name}")
        return value


LETTER = Template("Dear $name, your order #$order ships to $city.")

RECORDS = {
    "1.name": "Ada Lovelace",
    "1.order": "1001",
    "1.city": "London",
    "2.name": "Grace Hopper",
    "2.order": "1002",
    "2.city": "Arlington",
    "3.name": "Melvin Conway",
    "3.order": "1003",
    "3.city": "Cleveland",
}


def render(customer: str) -> str:
    """Plain synchronous code: it has no idea its lookups are async."""
    return LETTER.substitute(YieldingMapping(customer))


async def render_async(customer: str, directory: Directory) -> str:
    rendering: Coroutine[str, str, str] = NewWithReturn[str, str](lambda: render(customer))
    letter = await RunAsync(rendering, directory.get)  # awaits each lookup, in turn
    assert letter is not None  # Result() is None only if the coroutine was stopped
    return letter


async def main() -> None:
    directory = Directory(RECORDS)
    customers = ["1", "2", "3"]
    start = time.perf_counter()
    letters = await asyncio.gather(*(render_async(c, directory) for c in customers))
    elapsed = time.perf_counter() - start
    for customer, letter in zip(customers, letters, strict=True):
        print(f"letter {customer}: {letter}")
    one_at_a_time = directory.lookups * LATENCY
    print(
        f"{len(customers)} renders, {directory.lookups} lookups of {LATENCY} s each: "
        f"took {elapsed:.2f} s (one at a time: {one_at_a_time:.2f} s)"
    )
    print(f"most lookups in flight at once: {directory.most_in_flight}")


if __name__ == "__main__":
    asyncio.run(main())
