"""The type-form machinery of `_typecheck`, form by form: the subtype rule and the checks of
the rarer forms (SPEC §5 lists them all)."""

from __future__ import annotations

import collections.abc as cabc
from collections.abc import Callable
from typing import (
    Any,
    ForwardRef,
    Literal,
    NamedTuple,
    NoReturn,
    Optional,
    Protocol,
    TypedDict,
    TypeVar,
    Union,
)

import pytest

from coroutine._typecheck import admits_none, checker, describe, is_any_form, is_subtype


class Base:
    pass


class Derived(Base):
    pass


class TD(TypedDict):
    x: int


class TD2(TypedDict):
    x: int


class NotRuntime(Protocol):
    def f(self) -> None: ...


T = TypeVar("T")
T_bound = TypeVar("T_bound", bound=Base)

SUBTYPE_TABLE: list[tuple[Any, Any, bool | None]] = [
    (int, int, True),
    (Derived, Base, True),
    (Base, Derived, False),
    (Any, int, True),
    (int, Any, True),
    (T, int, True),  # a free TypeVar is Any
    (T_bound, Base, True),  # a bound TypeVar is its bound
    (int, object, True),
    (object, int, False),
    (NoReturn, int, True),
    (Union[int, str], Union[int, str, bytes], True),
    (Union[int, str], int, False),
    (int, Optional[int], True),
    (None, Optional[int], True),
    (Literal[1, 2], int, True),
    (Literal["a"], int, False),
    (int, Literal[1], False),
    (TD, dict, True),
    (TD, TD2, None),  # two TypedDicts: undecidable, equality decides
    ("Base", Base, None),
    (ForwardRef("Base"), Base, None),
    (type[Derived], type[Base], True),
    (type[Base], type[Derived], False),
    (type, type[int], True),
    (Callable[[int], int], Callable[..., Any], True),
    (Callable[[int], int], Callable[[int], int], True),
    (Callable[[int], int], Callable[[str], int], False),
    (Callable[[int], bool], Callable[[bool], int], True),  # contravariant parameters
    (Callable[..., int], Callable[[int], int], True),
    (Callable[[int], int], Callable[[int, int], int], None),
    (Callable[[int], str], Callable[..., int], False),
    (Derived, Callable[..., Any], False),
    (Callable[[int], int], int, False),
    (int, Callable[[int], int], False),
    (list, list[int], True),  # a bare generic is read as parametrised by Any
    (list[int], list, True),
    (list[int], list[int], True),
    (list[bool], list[int], False),  # invariant
    (list[Any], list[int], True),
    (list[int], cabc.Sequence[int], True),
    (list[bool], cabc.Sequence[int], True),  # Sequence is covariant
    (dict[str, int], cabc.Mapping[str, int], True),
    (dict[str, int], dict[str, bool], False),
    (tuple[int, int], tuple[int, ...], True),
    (tuple[int, ...], tuple[int, ...], True),
    (tuple[bool, ...], tuple[int, ...], True),
    (tuple[int, ...], tuple[int, int], False),
    (tuple[int, str], tuple[int, str], True),
    (tuple[int, str], tuple[int, int], False),
    (tuple[int], tuple[int, int], None),
    (tuple, tuple[int, ...], True),
    (dict[str, int], cabc.Iterable[str], None),  # different arity: undecidable
    (NotRuntime, NotRuntime, True),
    (Base, NotRuntime, None),
]


@pytest.mark.parametrize(("sub", "sup", "expected"), SUBTYPE_TABLE)
def test_subtype_rule_answers_as_the_table_says(sub: Any, sup: Any, expected: bool | None) -> None:
    assert is_subtype(sub, sup) is expected


CHECKS: list[tuple[Any, object, bool]] = [
    (NoReturn, 1, False),
    (ForwardRef("Base"), Derived(), True),
    (ForwardRef("Base"), 1, False),
    ("module.Base", Base(), True),
    (type, int, True),
    (type[Any], 1, False),
    (type[Union[int, str]], str, True),
    (type[Union[int, str]], bytes, False),
    (type[list[int]], list, True),
    (type[T], int, True),
    (tuple, (), True),
    (tuple, [], False),
    (tuple[()], (), True),
    (tuple[()], (1,), False),
    (tuple, (1, "a"), True),
    (tuple, [1], False),
    (tuple[int, ...], (), True),
    (list[Any], [object()], True),
    (set[int], set(), True),
    (set[int], {1}, True),
    (set[int], {"a"}, False),
    (cabc.Set[int], frozenset({1}), True),
    (cabc.MutableSequence[int], [1], True),
    (cabc.Sequence[int], "not ints", False),
    (cabc.Sequence[int], range(3), True),
    (cabc.Collection[int], {1: "a"}, True),
    (cabc.Collection[int], {"a": 1}, False),
    (cabc.Iterable[int], [], True),
    (cabc.Mapping[str, int], {}, True),
    (cabc.Mapping[str, int], {"a": "b"}, False),
    (Optional[list[int]], None, True),
    (Optional[list[int]], [1], True),
    (Optional[list[int]], ["a"], False),
    (Literal[1, 2], 1, True),
    (Literal[1, 2], 3, False),
    (Callable[..., Any], len, True),
    (Callable[..., Any], 1, False),
    (TypeVar("C", int, str), b"x", False),
    (42, "anything", True),  # not a type form: nothing to check
]


@pytest.mark.parametrize(("form", "value", "expected"), CHECKS)
def test_checker_decides_the_rarer_forms(form: Any, value: object, expected: bool) -> None:
    assert checker(form)(value) is expected


class Pair(NamedTuple):
    a: str
    b: str


FIXED_TUPLES: list[tuple[Any, object, bool]] = [
    (tuple[str, str], ("a", "b"), True),
    (tuple[str, str], Pair("a", "b"), True),  # a tuple subclass is a tuple
    (tuple[str, str], ("a", 1), False),
    (tuple[str, str], ("a",), False),
    (tuple[str, str], ("a", "b", "c"), False),
    (tuple[str, str], ["a", "b"], False),
    (tuple[str, str], None, False),
    (tuple[int, Literal["x"]], (1, "x"), True),
    (tuple[int, Literal["x"]], (1, "y"), False),
    (tuple[tuple[int, int], str], ((1, 2), "a"), True),
    (tuple[tuple[int, int], str], ((1, "2"), "a"), False),
    (tuple[Any, int], (object(), 1), True),
    (tuple[Any, Any], (1,), False),
    (tuple[list[int], int], (["a"], 1), False),
    (tuple[str, str] | tuple[int, int], (1, 2), True),
    (tuple[str, str] | tuple[int, int], ("a", "b"), True),
    (tuple[str, str] | tuple[int, int], ("a", 2), False),
    (tuple[str, str] | tuple[int, int], (1,), False),
    (tuple[str, str] | None, None, True),
    (tuple[str, str] | None, ("a", 2), False),
    (Union[tuple[str, str], list[int]], [1], True),
    (Union[tuple[str, str], list[int]], ["a"], False),
    (tuple[str, str] | Any, 3, True),
]


@pytest.mark.parametrize(("form", "value", "expected"), FIXED_TUPLES)
def test_checker_decides_fixed_tuples_and_unions_of_them(
    form: Any, value: object, expected: bool
) -> None:
    assert checker(form)(value) is expected


@pytest.mark.parametrize("form", [tuple[str, str], tuple[str, str] | tuple[int, int]])
def test_fixed_tuple_checks_are_one_flat_expression(form: Any) -> None:
    """No generator, loop or nested function per element: that cost 1.8x to 2.9x an
    unchecked yield (benchmarks/typecheck_instructions.py)."""
    code = checker(form).__code__  # type: ignore[attr-defined]
    assert not [c for c in code.co_consts if hasattr(c, "co_code")]  # no generator
    assert not code.co_freevars  # no per-element checks called from a closure
    assert set(code.co_names) <= {"isinstance", "len", "tuple"} | {f"k{i}" for i in range(9)}


def test_typeddict_with_an_unresolvable_forward_reference_checks_what_it_can() -> None:
    class Later(TypedDict):
        x: int
        y: NotDefinedAnywhere  # type: ignore[name-defined]

    class NotDefinedAnywhere:  # a class of that name, unknown to get_type_hints
        pass

    check = checker(Later)  # the hints stay strings: matched by class name
    assert check({"x": 1, "y": NotDefinedAnywhere()})
    assert not check({"x": 1, "y": object()})
    assert not check({"x": "1", "y": NotDefinedAnywhere()})
    assert not check({"y": NotDefinedAnywhere()})


def test_admits_none_follows_the_form() -> None:
    assert admits_none(Optional[int]) and admits_none(Any) and admits_none(None)
    assert not admits_none(int)


def test_is_any_form_sees_through_aliases() -> None:
    assert is_any_form(Any) and is_any_form(object) and is_any_form(T)
    assert not is_any_form(int) and not is_any_form(T_bound)


@pytest.mark.parametrize(
    ("form", "text"),
    [
        (None, "None"),
        (type(None), "None"),
        (Any, "Any"),
        (int, "int"),
        (Base, "Base"),
        ("Base", "'Base'"),
        (list[int], "list[int]"),
        (Optional[int], "Optional[int]"),
    ],
)
def test_describe_writes_forms_as_a_reader_would(form: Any, text: str) -> None:
    assert describe(form) == text
