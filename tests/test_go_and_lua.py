"""The Go library's and Lua's documented behaviours, in Python form."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from coroutine import (
    Coroutine,
    New,
    NewWithReturn,
    ResumeError,
    Run,
    StoppedError,
    Yield,
)


def generator_0_to_2() -> None:
    for i in range(3):
        Yield[int, Any](i)


def test_go_generator_of_zero_to_two() -> None:
    c = New[int, Any](generator_0_to_2)
    got = []
    while c.Next():
        got.append(c.Recv())
    assert got == [0, 1, 2]


def test_go_doubling_sends() -> None:
    def body() -> None:
        v = 1
        for _ in range(4):
            v = Yield[int, int](v) * 2

    c = New[int, int](body)
    seen = []
    while c.Next():
        seen.append(c.Recv())
        c.Send(c.Recv() + 1)
    assert seen == [1, 4, 10, 22]


def test_go_last_send_wins_and_unsent_yields_get_none() -> None:
    got: list[int | None] = []

    def body() -> None:
        for i in range(3):
            got.append(Yield[int, Optional[int]](i))

    c = New[int, Optional[int]](body)
    c.Next()
    c.Send(1)
    c.Send(2)
    c.Next()  # delivers 2
    c.Next()  # nothing sent
    c.Next()
    assert got == [2, None, None]


def test_go_result_of_new_with_return() -> None:
    c = NewWithReturn[int, Any](lambda: (Yield[int, Any](1), 42)[1])
    assert c.Next() and c.Recv() == 1
    assert c.Result() is None
    assert not c.Next()
    assert c.Result() == 42


def test_go_run_returns_the_result_and_starts_from_the_current_position() -> None:
    def body() -> str:
        for i in range(4):
            Yield[int, Any](i)
        return "end"

    c = NewWithReturn[int, Any](body)
    c.Next()
    c.Next()
    seen: list[int] = []
    assert Run(c, seen.append) == "end"
    assert seen == [2, 3]


def test_go_stop_before_start_never_runs_the_body() -> None:
    ran: list[int] = []
    c = New[int, Any](lambda: ran.append(1))
    c.Stop()
    assert not c.Next()
    assert ran == []


def test_go_stop_at_a_yield_unwinds_finally_blocks_innermost_first() -> None:
    order: list[int] = []

    def level(n: int) -> None:
        try:
            if n == 0:
                Yield[int, Any](0)
            else:
                level(n - 1)
        finally:
            order.append(n)

    c = New[int, Any](lambda: level(3))
    c.Next()
    c.Stop()
    assert not c.Next()
    assert order == [0, 1, 2, 3]


def test_go_raising_run_callback_unwinds_the_body() -> None:
    unwound: list[bool] = []

    def body() -> None:
        try:
            generator_0_to_2()
        finally:
            unwound.append(True)

    def fn(v: int) -> None:
        raise ValueError(v)

    with pytest.raises(ValueError):
        Run(New[int, Any](body), fn)
    assert unwound == [True]


def test_go_stop_from_inside_the_run_callback() -> None:
    c = New[int, Any](lambda: [Yield[int, Any](i) for i in range(10)])
    seen: list[int] = []

    def fn(v: int) -> None:
        seen.append(v)
        if v == 1:
            c.Stop()

    with pytest.raises(StoppedError):  # Go's Run returns; ours has no result to return
        Run(c, fn)
    assert seen == [0, 1]
    assert c.Done()


def test_go_nested_coroutines_of_equal_types() -> None:
    def outer() -> None:
        inner = New[int, Any](generator_0_to_2)
        while inner.Next():
            Yield[int, Any](inner.Recv() * 10)

    assert list(New[int, Any](outer)) == [0, 10, 20]


def test_go_nested_coroutines_of_different_types() -> None:
    def inner() -> None:
        for word in ["a", "bb", "ccc"]:
            Yield[str, Any](word)

    def outer() -> None:
        for word in New[str, Any](inner):
            Yield[int, Any](len(word))

    assert list(New[int, Any](outer)) == [1, 2, 3]


@dataclass
class Tree:
    left: Tree | None
    value: int
    right: Tree | None


def build(values: list[int]) -> Tree | None:
    if not values:
        return None
    mid = len(values) // 2
    return Tree(build(values[:mid]), values[mid], build(values[mid + 1 :]))


def walk(t: Tree | None) -> None:
    if t is not None:
        walk(t.left)
        Yield[int, Any](t.value)
        walk(t.right)


def same_fringe(a: Tree | None, b: Tree | None) -> bool:
    ca, cb = New[int, Any](lambda: walk(a)), New[int, Any](lambda: walk(b))
    with ca, cb:
        while True:
            more_a, more_b = ca.Next(), cb.Next()
            if more_a != more_b or (more_a and ca.Recv() != cb.Recv()):
                return False
            if not more_a:
                return True


def test_go_same_fringe_of_differently_shaped_trees() -> None:
    left_leaning = Tree(Tree(Tree(None, 1, None), 2, None), 3, Tree(None, 4, None))
    assert same_fringe(build([1, 2, 3, 4]), left_leaning)
    assert not same_fringe(build([1, 2, 3, 4]), build([1, 2, 3, 5]))
    assert not same_fringe(build([1, 2, 3]), build([1, 2, 3, 4]))


# -- Lua ------------------------------------------------------------------------------


def gen_numbers(n: int) -> Coroutine[int, Any]:
    def body() -> None:
        for i in range(2, n + 1):
            Yield[int, Any](i)

    return New[int, Any](body)


def filter_multiples(p: int, source: Coroutine[int, Any]) -> Coroutine[int, Any]:
    def body() -> None:
        for x in source:
            if x % p:
                Yield[int, Any](x)

    return New[int, Any](body)


def test_lua_sieve_of_eratosthenes_from_nested_filtering_coroutines() -> None:
    primes: list[int] = []
    source = gen_numbers(80)
    while source.Next():
        p = source.Recv()
        primes.append(p)
        source = filter_multiples(p, source)
    assert len(primes) == 22
    assert primes[:5] == [2, 3, 5, 7, 11] and primes[-1] == 79


def test_lua_resuming_a_dead_coroutine_is_harmless() -> None:
    c = New[int, Any](lambda: None)
    assert not c.Next()
    assert not c.Next()
    assert c.status == "done"


def test_lua_resuming_a_running_coroutine_is_an_error() -> None:
    holder: list[Coroutine[int, Any]] = []

    def body() -> None:
        holder[0].Next()

    c = New[int, Any](body)
    holder.append(c)
    with pytest.raises(ResumeError, match="running"):
        c.Next()
    holder.clear()


def test_lua_wrap_style_iteration() -> None:
    def words() -> Iterator[str]:
        return iter(New[str, Any](lambda: [Yield[str, Any](w) for w in "to be or not".split()]))

    assert list(words()) == ["to", "be", "or", "not"]
