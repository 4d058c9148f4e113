"""The public surface: names, exports, exception hierarchy."""

from __future__ import annotations

import ast
import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import coroutine
from coroutine import (
    CoroutineError,
    CoroutineExit,
    InvalidStateError,
    New,
    NotDurableError,
    NotInCoroutineError,
    ResumeError,
    Yield,
    YieldTypeError,
)

SPEC_NAMES = {
    "New", "NewWithReturn", "Yield", "LoadContext", "Run", "RunAsync", "Current", "Durable",
    "Coroutine", "Context", "CoroutineError", "NotInCoroutineError", "YieldTypeError",
    "ResumeError", "NotDurableError", "InvalidStateError", "CoroutineExit", "Patched",
}  # fmt: skip


def test_every_spec_name_is_exported() -> None:
    assert SPEC_NAMES <= set(coroutine.__all__)
    for name in coroutine.__all__:
        assert hasattr(coroutine, name), name


def test_every_public_name_is_exported_exactly_once() -> None:
    assert len(coroutine.__all__) == len(set(coroutine.__all__))
    init = Path(coroutine.__file__).read_text()
    imported: list[str] = []
    for node in ast.walk(ast.parse(init)):
        if isinstance(node, ast.ImportFrom):
            imported += [a.asname or a.name for a in node.names]
    assert sorted(n for n in imported if not n.startswith("_")) == sorted(coroutine.__all__)


@pytest.mark.parametrize(
    ("exc", "bases"),
    [
        (CoroutineError, (Exception,)),
        (NotInCoroutineError, (CoroutineError,)),
        (YieldTypeError, (CoroutineError, TypeError)),
        (ResumeError, (CoroutineError, RuntimeError)),
        (NotDurableError, (CoroutineError,)),
        (InvalidStateError, (CoroutineError, ValueError)),
        (CoroutineExit, (BaseException,)),
    ],
)
def test_exception_refines_the_builtins_of_the_spec_table(
    exc: type[BaseException], bases: tuple[type[BaseException], ...]
) -> None:
    for base in bases:
        assert issubclass(exc, base)
    assert exc.__doc__


def test_coroutine_exit_is_not_an_exception() -> None:
    assert not issubclass(CoroutineExit, Exception)


def test_users_cannot_construct_coroutine_or_context_directly() -> None:
    with pytest.raises(TypeError, match=r"New\[R, S\]"):
        coroutine.Coroutine()
    with pytest.raises(TypeError, match="LoadContext"):
        coroutine.Context()


def _twice() -> None:
    Yield[int, Any](1)
    Yield[int, Any](2)


@pytest.mark.parametrize(
    "op",
    [pickle.dumps, lambda obj: pickle.dumps(obj, protocol=0), copy.copy, copy.deepcopy],
    ids=["pickle", "pickle-protocol-0", "copy", "deepcopy"],
)
@pytest.mark.parametrize("part", ["Coroutine", "Context"])
def test_pickling_or_copying_a_coroutine_or_its_context_says_to_marshal(
    op: Callable[[object], object], part: str
) -> None:
    c = New[int, Any](_twice)
    assert c.Next()
    target = c if part == "Coroutine" else c.Context()
    shown = rf"^cannot pickle or copy a {part}: .*coro\.Context\(\)\.Marshal\(\)"
    with pytest.raises(TypeError, match=shown):
        op(target)
    assert c.status == "suspended" and c.Recv() == 1  # refused: nothing changed
    assert c.Next() and c.Recv() == 2
    c.close()


def test_durable_default_is_off_without_the_environment_variable() -> None:
    assert coroutine.Durable is False


def test_every_public_object_has_a_docstring() -> None:
    for name in coroutine.__all__:
        obj = getattr(coroutine, name)
        if isinstance(obj, bool):
            continue
        assert obj.__doc__, name


def test_unsubscripted_yield_and_load_context_mean_any() -> None:
    seen: list[object] = []

    def body() -> None:
        seen.append(coroutine.LoadContext())
        seen.append(coroutine.Yield("anything"))

    c = coroutine.NewWithReturn(body)
    assert c.Next() and c.Recv() == "anything"
    c.Send(1)
    assert not c.Next()
    assert seen == [c.Context(), 1]


def test_yield_reprs_as_its_public_name() -> None:
    assert repr(coroutine.Yield) == "coroutine.Yield"


@pytest.mark.parametrize("make", [coroutine.New, coroutine.NewWithReturn])
def test_new_refuses_a_body_that_is_not_callable(make: type) -> None:
    with pytest.raises(TypeError, match="function of no arguments, got 42"):
        make(42)
