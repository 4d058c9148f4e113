"""A Yield works from anywhere down the stack: through C code and Python machinery."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

from coroutine import New, NewWithReturn, Run, Yield


def ask(v: object) -> Any:
    """Yield v and return the driver's answer."""
    return Yield[object, Any](v)


def echo(v: object) -> object:
    return v


def drive(body: Any, answer: Any = echo) -> tuple[list[object], object]:
    seen: list[object] = []

    def fn(v: object) -> object:
        seen.append(v)
        return answer(v)

    return seen, Run(NewWithReturn[object, Any](body), fn)


def test_yield_from_a_sorted_key_function() -> None:
    seen, result = drive(lambda: sorted([3, 1, 2], key=lambda x: ask(-x)))
    assert seen == [-3, -1, -2]
    assert result == [3, 2, 1]


def test_yield_from_map_and_filter() -> None:
    seen, result = drive(
        lambda: list(filter(lambda x: ask(x) % 2, map(lambda x: ask(x * 10) // 10 + 1, [1, 2, 3])))
    )
    assert seen == [10, 2, 20, 3, 30, 4]
    assert result == [3]


def test_yield_from_functools_reduce() -> None:
    seen, result = drive(lambda: functools.reduce(lambda a, b: ask(a + b), [1, 2, 3, 4]))
    assert seen == [3, 6, 10]
    assert result == 10


def test_yield_from_a_re_sub_callback() -> None:
    seen, result = drive(
        lambda: re.sub(r"\d+", lambda m: str(ask(m.group())), "a1b22c333"),
        answer=lambda v: len(v),
    )
    assert seen == ["1", "22", "333"]
    assert result == "a1b2c3"


def test_yield_from_json_hooks() -> None:
    def body() -> object:
        return json.loads('{"a": {"b": 1}}', object_hook=lambda d: ask(d))

    seen, result = drive(body, answer=lambda d: {k.upper(): v for k, v in d.items()})
    assert seen == [{"b": 1}, {"a": {"B": 1}}]
    assert result == {"A": {"B": 1}}


def test_yield_from_json_default_hook_when_encoding() -> None:
    seen, result = drive(lambda: json.dumps({"x": {1, 2}}, default=lambda o: ask(sorted(o))))
    assert seen == [[1, 2]]
    assert result == '{"x": [1, 2]}'


class Noisy:
    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return bool(ask(("eq", self.n)))

    def __lt__(self, other: Noisy) -> bool:
        return bool(ask(("lt", self.n, other.n)))

    def __getitem__(self, i: int) -> int:
        return int(ask(("getitem", i)))

    @property
    def doubled(self) -> int:
        return int(ask(("property", self.n)))

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        v = ask(("next", self.n))
        if v is None:
            raise StopIteration
        return int(v)


def test_yield_from_dunder_methods_and_properties() -> None:
    answers = {("eq", 1): True, ("lt", 2, 1): False, ("getitem", 5): 50, ("property", 1): 2}
    seen, result = drive(
        lambda: (Noisy(1) == Noisy(9), Noisy(2) < Noisy(1), Noisy(0)[5], Noisy(1).doubled),
        answer=answers.__getitem__,
    )
    assert result == (True, False, 50, 2)
    assert seen == list(answers)


def test_yield_from_iter_and_next_driven_by_a_for_loop_and_sum() -> None:
    remaining = [3, 2, 1, None]
    _, result = drive(lambda: sum(Noisy(0)), answer=lambda v: remaining.pop(0))
    assert result == 6


def test_yield_from_a_generator_frame_driven_by_for_and_sum() -> None:
    def gen() -> Iterator[int]:
        for i in range(3):
            yield ask(i)

    def body() -> tuple[list[int], int]:
        return [x for x in gen()], sum(gen())

    seen, result = drive(body, answer=lambda v: v + 100)
    assert seen == [0, 1, 2, 0, 1, 2]
    assert result == ([100, 101, 102], 303)


def test_yield_inside_with_blocks_and_try_finally() -> None:
    events: list[str] = []

    class Ctx:
        def __enter__(self) -> Ctx:
            events.append("enter")
            ask("in enter")
            return self

        def __exit__(self, *exc: object) -> None:
            ask("in exit")
            events.append("exit")

    def body() -> None:
        with Ctx():
            try:
                ask("in try")
            finally:
                ask("in finally")

    seen, _ = drive(body)
    assert seen == ["in enter", "in try", "in finally", "in exit"]
    assert events == ["enter", "exit"]


def test_yield_through_a_c_callback_many_times_keeps_order() -> None:
    seen, result = drive(lambda: sorted(range(50), key=lambda x: ask(x)), answer=lambda v: -v)
    assert seen == list(range(50))
    assert result == list(range(49, -1, -1))


def test_yield_from_a_c_callback_inside_a_nested_coroutine() -> None:
    def inner() -> None:
        sorted([2, 1], key=lambda x: Yield[int, Any](x) or x)

    def outer() -> None:
        for v in New[int, Any](inner):
            Yield[str, Any](str(v))

    assert list(New[str, Any](outer)) == ["2", "1"]
