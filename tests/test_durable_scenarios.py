"""Every scenario runs twice: plainly, and hopping to a brand-new coroutine through
Marshal/Unmarshal after every single yield. Both runs must see the same yields and results.

The bodies are module-level functions, as durable entries must be.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from coroutine import Coroutine, New, NewWithReturn, SideEffect, Yield
from coroutine.durable import _codec, _decode
from coroutine.types import Register

# -- bodies ----------------------------------------------------------------------------------


def squares() -> None:
    for i in range(1, 5):
        Yield[int, Any](i * i)


def fizzbuzz() -> None:
    for i in range(1, 21):
        if i % 15 == 0:
            Yield[object, Any]("FizzBuzz")
        elif i % 3 == 0:
            Yield[object, Any]("Fizz")
        elif i % 5 == 0:
            Yield[object, Any]("Buzz")
        else:
            Yield[object, Any](i)


def nested_loops() -> int:
    count = 0
    for i in range(1, 4):
        for j in range(1, 4):
            for k in range(1, 3):
                Yield[int, Any](i * j * k)
                count += 1
    return count


def summing() -> int:
    total = 0
    for i in range(6):
        total += Yield[int, int](i)
    return total


def closure_state() -> list[int]:
    seen: list[int] = []
    count = 0

    def bump(by: int) -> None:
        nonlocal count
        count += by
        seen.append(Yield[int, int](count))

    for i in range(4):
        bump(i + 1)
    return [count, *seen]


def inner_body() -> None:
    x = 1
    while x < 50:
        x = Yield[int, int](x) * 3


def nested_coroutine() -> int:
    inner = NewWithReturn[int, int](inner_body)
    steps = 0
    while inner.Next():
        got = Yield[int, int](inner.Recv() * 10)
        inner.Send(got // 10 + 1)
        steps += 1
    return steps


def _deep(n: int, tag: int) -> int:
    if n == 0:
        return Yield[int, int](tag)
    return _deep(n - 1, tag) + 1


def deep_yields() -> int:
    return sum(_deep(200, t) for t in range(3))


def sorted_by_yield() -> list[str]:
    words = ["pear", "fig", "banana", "kiwi"]
    return sorted(words, key=lambda w: Yield[str, int](w))


class _Resource:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def __enter__(self) -> _Resource:
        self.log.append(f"enter {self.name}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.append(f"exit {self.name}")


def finally_and_with() -> list[str]:
    log: list[str] = []
    for i in range(3):
        try:
            with _Resource(log, f"r{i}"):
                log.append(f"got {Yield[int, str](i)}")
        finally:
            log.append(f"finally {i}")
    try:
        Yield[int, str](99)
        raise KeyError("boom")
    except KeyError as exc:
        log.append(f"caught {exc}")
    return log


@dataclass(frozen=True)
class Money:
    amount: int
    currency: str


Register(Money, lambda m: (m.amount, m.currency), lambda t: Money(*t))


def rich_values() -> list[object]:
    got: list[object] = []
    for v in [
        {"a": 1, "b": [1, 2]},
        (1, "two", 3.0),
        {"x", "y", "z"},
        b"\x00\xffbytes",
        frozenset({1, 2}),
        Money(5, "EUR"),
        {Money(1, "USD"): (None, True)},
    ]:
        got.append(Yield[object, object](v))
    return got


def answer_echo(v: Any) -> Any:
    return v


def answer_rich(v: Any) -> Any:
    if isinstance(v, Money):
        return Money(v.amount * 2, v.currency)
    if isinstance(v, dict):
        return {**v, "sent": {1, 2, 3}}
    return [v, b"ok"]


def with_effects() -> list[int]:
    out = []
    for i in range(3):
        out.append(SideEffect(functools.partial(_effect, i)))
        Yield[int, Any](out[-1])
    return out


EFFECT_CALLS: list[int] = []


def _effect(i: int) -> int:
    EFFECT_CALLS.append(i)
    return i * 100


@dataclass
class Scenario:
    name: str
    make: Callable[[bool], Coroutine[Any, Any]]
    answer: Callable[[Any], Any] = answer_echo


def _mk(
    types: Any, fn: Callable[[], Any], ret: bool = True
) -> Callable[[bool], Coroutine[Any, Any]]:
    factory = NewWithReturn[types] if ret else New[types]
    return lambda durable: factory(fn, durable=durable)


SCENARIOS = [
    Scenario("squares", _mk((int, Any), squares, ret=False)),
    Scenario("fizzbuzz", _mk((object, Any), fizzbuzz, ret=False)),
    Scenario("nested loops", _mk((int, Any), nested_loops)),
    Scenario("summing sent values", _mk((int, int), summing), lambda v: v * 7),
    Scenario("closure state", _mk((int, int), closure_state), lambda v: v + 1000),
    Scenario("nested coroutine", _mk((int, int), nested_coroutine), lambda v: v + 5),
    Scenario("200 calls deep", _mk((int, int), deep_yields), lambda v: v * 2),
    Scenario("sorted key", _mk((str, int), sorted_by_yield), lambda w: -len(w)),
    Scenario("finally and with", _mk((int, str), finally_and_with), lambda v: f"s{v}"),
    Scenario("rich values", _mk((object, object), rich_values), answer_rich),
    Scenario("side effects", _mk((int, Any), with_effects)),
    Scenario(
        "partial entry",
        lambda durable: NewWithReturn[int, int](functools.partial(_deep, 3, 7), durable=durable),
        lambda v: v,
    ),
]


def _hop(c: Coroutine[Any, Any], s: Scenario) -> Coroutine[Any, Any]:
    state = c.Context().Marshal()
    fresh = s.make(True)
    fresh.Context().Unmarshal(state)
    assert fresh.status == c.status
    assert fresh.Recv() is None
    return fresh


def run(s: Scenario, hop: bool) -> tuple[list[Any], Any]:
    c = s.make(hop)
    out: list[Any] = []
    n = 0
    while c.Next():
        v = c.Recv()
        out.append(v)
        if hop and n % 2:  # Send after Unmarshal ...
            c = _hop(c, s)
            c.Send(s.answer(v))
        else:  # ... or Send before Marshal: the pending Send travels in the bytes
            c.Send(s.answer(v))
            if hop:
                c = _hop(c, s)
        n += 1
    result = c.Result()
    if hop:  # a finished coroutine restores as finished
        assert _hop(c, s).Done()
    return out, result


@pytest.fixture(params=SCENARIOS, ids=[s.name for s in SCENARIOS])
def s(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    yield request.param


def test_hopping_through_bytes_at_every_yield_sees_what_a_plain_run_sees(s: Scenario) -> None:
    plain = run(s, hop=False)
    assert plain[0], "the scenario yields"
    assert run(s, hop=True) == plain


def test_scenario_answers_are_what_the_bodies_expect() -> None:
    assert run(SCENARIOS[0], False) == ([1, 4, 9, 16], None)
    fizz = run(SCENARIOS[1], False)[0]
    assert fizz[:5] == [1, 2, "Fizz", 4, "Buzz"] and fizz[14] == "FizzBuzz"
    assert run(SCENARIOS[2], False)[1] == 18
    assert run(SCENARIOS[3], False)[1] == 7 * sum(range(6))
    assert run(SCENARIOS[7], False)[1] == ["banana", "pear", "kiwi", "fig"]
    log = run(SCENARIOS[8], False)[1]
    assert log[:4] == ["enter r0", "got s0", "exit r0", "finally 0"] and log[-1] == "caught 'boom'"


def test_side_effects_run_once_however_often_the_body_is_replayed() -> None:
    EFFECT_CALLS.clear()
    out = run(SCENARIOS[10], hop=True)
    assert out == ([0, 100, 200], [0, 100, 200])
    assert EFFECT_CALLS == [0, 1, 2]


def test_yielded_and_sent_values_keep_their_types_through_the_bytes() -> None:
    out, result = run(SCENARIOS[9], hop=True)
    assert out[2] == {"x", "y", "z"} and type(out[2]) is set
    assert result[5] == Money(10, "EUR")
    assert result[0]["sent"] == {1, 2, 3}
    assert _decode.decode(_codec.encode(result)) == result
