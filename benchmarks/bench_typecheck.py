"""The run-time type checks' cost per yield, by type form and payload size.

Each candidate is a `Run` round trip yielding the same value through `Yield[T, Any]` in a
coroutine of `[T, Any]`; the baseline yields an int through `Yield[Any, Any]`, which checks
nothing. A check costs constant time whatever the payload's size: compare the two lists.
Instruction counts, exact where these times are noisy, are in `typecheck_instructions.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from coroutine import New, Run, Yield

from ._harness import Bench, timed


@dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int
    tags: list[str]


def _checked(form: Any, value: object) -> Bench:
    def bench(n: int) -> float:
        y = Yield[form, Any]

        def body() -> None:
            for _ in range(n):
                y(value)

        c = New[form, Any](body)
        return timed(lambda: Run(c, _answer))

    return bench


def _answer(v: object) -> None:
    return None


CANDIDATES: dict[str, Bench] = {
    "Any (no check)": _checked(Any, 1),
    "int": _checked(int, 1),
    "int | None": _checked(int | None, None),
    "tuple[str, str]": _checked(tuple[str, str], ("a", "b")),
    "tuple[str, str] | tuple[int, int]": _checked(tuple[str, str] | tuple[int, int], (1, 2)),
    "list[int], 10 items": _checked(list[int], list(range(10))),
    "list[int], 1,000,000 items": _checked(list[int], list(range(1_000_000))),
    "dataclass": _checked(Point, Point(1, 2)),
    "TypedDict": _checked(Movie, {"title": "x", "year": 1, "tags": ["a"] * 1000}),
}
BASELINE = "Any (no check)"
