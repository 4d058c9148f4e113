"""Create + run to completion a coroutine that yields once, against a fresh raw greenlet and
a generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import greenlet

from coroutine import New, Yield

from ._harness import Bench, timed


def _raw_body() -> None:
    driver = greenlet.getcurrent().parent
    assert driver is not None
    driver.switch(1)


def fresh_raw_greenlet(n: int) -> float:
    def run() -> None:
        for _ in range(n):
            g = greenlet.greenlet(_raw_body)
            g.switch()
            g.switch()

    return timed(run)


def _gen() -> Iterator[int]:
    yield 1


def generator(n: int) -> float:
    def run() -> None:
        for _ in range(n):
            for _ in _gen():
                pass

    return timed(run)


def _body() -> None:
    Yield[int, Any](1)


def coroutine_new(n: int) -> float:
    def run() -> None:
        for _ in range(n):
            c = New[int, Any](_body)
            c.Next()
            c.Next()

    return timed(run)


def coroutine_for(n: int) -> float:
    def run() -> None:
        for _ in range(n):
            for _ in New[int, Any](_body):
                pass

    return timed(run)


CANDIDATES: dict[str, Bench] = {
    "fresh raw greenlet": fresh_raw_greenlet,
    "New + Next + Next": coroutine_new,
    "New + for loop": coroutine_for,
    "generator": generator,
}
BASELINE = "fresh raw greenlet"
