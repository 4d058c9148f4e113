"""SPEC §5 at run time: value checks per type form, the pair rule, and the off switch."""

from __future__ import annotations

import collections.abc as cabc
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    Literal,
    NamedTuple,
    NewType,
    Optional,
    Protocol,
    TypedDict,
    TypeVar,
    Union,
    runtime_checkable,
)

import pytest

from coroutine import LoadContext, New, Yield, YieldTypeError
from coroutine._typecheck import checker, is_subtype


def yields(r: Any, value: object, coro_r: Any = None) -> None:
    """Yield `value` through Yield[r, Any] inside a coroutine of [coro_r or r, Any]."""
    c = New[coro_r if coro_r is not None else r, Any](lambda: Yield[r, Any](value))
    try:
        c.Next()
    finally:
        c.close()


@dataclass
class Point:
    x: int


class Movie(TypedDict):
    title: str
    year: int


class Pair(NamedTuple):
    a: int
    b: str


UserId = NewType("UserId", int)
T_bound = TypeVar("T_bound", bound=int)
T_constrained = TypeVar("T_constrained", int, str)


@runtime_checkable
class Closable(Protocol):
    def close(self) -> None: ...


class HasClose:
    def close(self) -> None:
        pass


GOOD_AND_BAD: list[tuple[Any, object, object]] = [
    (int, 1, "1"),
    (int, True, 1.5),  # bool is an int
    (float, 1.5, "x"),
    (str, "s", b"s"),
    (type(None), None, 0),
    (None, None, 0),
    (Optional[int], None, "x"),
    (Union[int, str], "s", 1.5),
    (int | str, 1, None),
    (Literal["a", 1], "a", "b"),
    (Literal[1], 1, True),
    (list[int], [1, 2], ["x"]),
    (list[int], [], (1,)),
    (dict[str, int], {"a": 1}, {1: 1}),
    (dict[str, int], {"a": 1}, {"a": "1"}),
    (set[int], {1}, {"x"}),
    (frozenset[str], frozenset({"x"}), {"x"}),
    (tuple[int, str], (1, "a"), (1, 2)),
    (tuple[int, str], (1, "a"), (1, "a", 3)),
    (tuple[int, ...], (1, 2, 3), ("a",)),
    (cabc.Sequence[int], (1, 2), ["x"]),
    (cabc.Mapping[str, int], {"a": 1}, [("a", 1)]),
    (cabc.Iterable[int], iter([1]), 5),
    (cabc.Iterable[int], [1], ["x"]),
    (type[int], bool, str),
    (type[Any], int, 1),
    (Callable[[int], int], abs, 1),
    (Annotated[int, "meta"], 1, "x"),
    (UserId, UserId(5), "5"),
    (T_bound, 5, "5"),
    (T_constrained, "s", 1.5),
    (Movie, {"title": "x", "year": 1}, {"title": "x"}),
    (Movie, {"title": "x", "year": 1}, {"title": "x", "year": "1999"}),
    (Pair, Pair(1, "b"), (1, "b")),
    (Closable, HasClose(), 1),
    (Point, Point(1), 1),
    ("Point", Point(1), 1),
]


@pytest.mark.parametrize(("form", "good", "bad"), GOOD_AND_BAD)
def test_value_check_accepts_members_and_rejects_others(
    form: Any, good: object, bad: object
) -> None:
    check = checker(form)
    assert check(good)
    assert not check(bad)


@pytest.mark.parametrize(("form", "good", "bad"), GOOD_AND_BAD)
def test_yield_of_a_value_outside_r_raises_at_the_yield(
    form: Any, good: object, bad: object
) -> None:
    yields(form, good)
    with pytest.raises(YieldTypeError) as info:
        yields(form, bad)
    assert info.value.got is bad
    assert __file__ in (info.value.site or "")


def test_any_and_object_accept_everything() -> None:
    for form in (Any, object):
        for value in (None, 1, "x", object()):
            assert checker(form)(value)


def test_container_check_looks_at_one_element_only() -> None:
    # Constant time: a bad element after the first is not seen.
    assert checker(list[int])([1, "not checked"])
    assert not checker(list[int])(["first is checked", 1])


def test_container_check_does_not_consume_a_one_shot_iterator() -> None:
    it = iter([1, 2, 3])
    assert checker(cabc.Iterable[str])(it)
    assert list(it) == [1, 2, 3]


def test_non_runtime_checkable_protocol_accepts_everything() -> None:
    class P(Protocol):
        def f(self) -> None: ...

    assert checker(P)(1)


def test_yield_typed_any_is_checked_against_the_coroutine_r() -> None:
    yields(Any, 1, coro_r=int)
    with pytest.raises(YieldTypeError, match="does not match int"):
        yields(Any, "x", coro_r=int)
    with pytest.raises(YieldTypeError):
        yields(object, "x", coro_r=int)


def test_send_of_a_value_outside_s_raises_in_the_driver() -> None:
    c = New[int, str](lambda: Yield[int, str](1))
    c.Next()
    with pytest.raises(YieldTypeError, match="cannot send 1 of type int") as info:
        c.Send(1)  # type: ignore[arg-type]
    assert info.value.expected is str
    c.Send("ok")
    assert c.Next() is False


# -- the pair rule -------------------------------------------------------------------


COMPATIBLE = [
    # (site R2, S2) inside coroutine (R, S)
    ((int, Any), (int, Any)),
    ((bool, Any), (int, Any)),  # R2 a subtype of R
    ((int, object), (int, str)),  # S a subtype of S2
    ((int, Optional[str]), (int, str)),
    ((Any, Any), (int, str)),
    ((int, str), (Any, Any)),
    ((Literal[1], Any), (int, Any)),
    ((list[int], Any), (cabc.Sequence[int], Any)),
    ((tuple[int, int], Any), (tuple[int, ...], Any)),
    ((Optional[int], Any), (Union[int, str, None], Any)),
    ((UserId, Any), (int, Any)),
    ((Annotated[int, "x"], Any), (int, Any)),
    ((type[bool], Any), (type[int], Any)),
    ((Pair, Any), (tuple[Any, ...], Any)),
]

INCOMPATIBLE = [
    ((str, Any), (int, Any)),
    ((int, Any), (bool, Any)),
    ((int, str), (int, object)),  # S = object is not a subtype of S2 = str
    ((Optional[int], Any), (int, Any)),
    ((list[bool], Any), (list[int], Any)),  # list is invariant
    ((Literal["a"], Any), (int, Any)),
    ((tuple[int, ...], Any), (tuple[int, int], Any)),
]


@pytest.mark.parametrize(("site", "coro"), COMPATIBLE)
def test_compatible_yield_pairs_are_accepted(site: tuple[Any, Any], coro: tuple[Any, Any]) -> None:
    assert is_subtype(site[0], coro[0]) and is_subtype(coro[1], site[1])


@pytest.mark.parametrize(("site", "coro"), INCOMPATIBLE)
def test_incompatible_yield_pair_raises_naming_both_pairs_and_the_site(
    site: tuple[Any, Any], coro: tuple[Any, Any]
) -> None:
    def body() -> None:
        Yield[site[0], site[1]](None)

    c = New[coro[0], coro[1]](body)
    with pytest.raises(YieldTypeError, match="does not fit the active coroutine") as info:
        c.Next()
    assert info.value.expected == coro
    assert info.value.got == site
    assert "test_typecheck.py" in (info.value.site or "")
    assert "Declare the yield as" in str(info.value)


def test_load_context_with_incompatible_types_raises() -> None:
    c = New[int, Any](lambda: LoadContext[str, Any]())
    with pytest.raises(YieldTypeError, match="does not fit"):
        c.Next()


def test_undecidable_forms_fall_back_to_equality_and_say_so() -> None:
    class A(TypedDict):
        x: int

    class B(TypedDict):
        x: int

    c = New[A, Any](lambda: Yield[B, Any]({"x": 1}))
    with pytest.raises(YieldTypeError, match="cannot compare these type forms"):
        c.Next()
    assert New[A, Any](lambda: Yield[A, Any]({"x": 1})).Next()  # equal: fine


def test_the_pair_check_is_cached_per_pair() -> None:
    from coroutine._signature import signature

    site = signature(bool, Any)
    New[int, Any](lambda: Yield[bool, Any](True)).Next()
    assert signature(int, Any) in site.rules


def test_unhashable_type_forms_work_in_new_and_load_context() -> None:
    form = Annotated[int, ["unhashable metadata"]]
    c = New[form, Any](lambda: LoadContext[form, Any]().Yield(1))
    assert list(c) == [1]


def test_yield_type_arguments_must_be_hashable() -> None:
    form = Annotated[int, ["unhashable metadata"]]
    with pytest.raises(TypeError, match="unhashable"):
        Yield[form, Any]


def test_yield_and_new_need_two_type_arguments() -> None:
    with pytest.raises(TypeError, match=r"Yield\[R, S\]"):
        Yield[int]  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"New\[R, S\]"):
        New[int]  # type: ignore[misc]


def test_typecheck_off_disables_value_checks_but_not_the_pair_check() -> None:
    script = """
from typing import Any
from coroutine import New, Yield, YieldTypeError
c = New[int, int](lambda: Yield[int, int]("not an int"))
assert c.Next() and c.Recv() == "not an int"
c.Send("also not an int")
c.close()
c = New[int, Any](lambda: Yield[str, Any]("x"))
try:
    c.Next()
except YieldTypeError:
    print("pair checked")
"""
    env = dict(os.environ, COROUTINE_TYPECHECK="0")
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "pair checked"
