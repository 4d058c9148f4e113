"""`coroutine._inline`: the driver primitive compiled into the hot driving operations.

The rules (I1-I4) are those of the module's docstring; each is tested on small modules
written to a temporary directory, so that the inliner reads real source files as it does
the library's. The last tests check what the library does with it in pure Python.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap
import traceback
import types
from pathlib import Path
from typing import Any

import pytest

from coroutine import _coroutine, _driver, _new, _run
from coroutine._inline import InlineError, inline

PURE = os.environ.get("COROUTINE_PURE", "") not in ("", "0")

PRIMITIVE = """
    FACTOR = 10

    def prim(a, b):
        c = a * FACTOR
        if b is not None:
            c += b
            b = None
        return c + 1
"""


def _module(tmp_path: Path, name: str, source: str) -> types.ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def prim(tmp_path: Path) -> types.FunctionType:
    return _module(tmp_path, "inline_prim", PRIMITIVE).prim  # type: ignore[no-any-return]


def _caller(tmp_path: Path, body: str, name: str = "inline_caller") -> types.ModuleType:
    return _module(tmp_path, name, "from inline_prim import prim\n" + textwrap.dedent(body))


def test_each_statement_form_is_inlined_and_computes_what_the_call_did(
    tmp_path: Path, prim: types.FunctionType
) -> None:
    m = _caller(
        tmp_path,
        """
        def returns(x):
            return prim(x, 2)

        def assigns(x):
            c = 5  # the primitive's own `c` must not clobber this one (I3)
            y = prim(x, None)
            return y, c

        def tests(x):
            if prim(x, -1):
                return "yes"
            return "no"
        """,
    )
    plain = {name: getattr(m, name) for name in ("returns", "assigns", "tests")}
    for name, fn in plain.items():
        inlined = inline(prim, fn)
        assert inlined is not fn and "prim" not in inlined.__code__.co_names
        for x in (0, 1, 3):
            assert inlined(x) == fn(x), (name, x)
    assert [inline(prim, m.tests)(x) for x in (0, 1)] == ["no", "yes"]  # both branches


def test_a_name_or_constant_argument_replaces_a_parameter_never_assigned(
    tmp_path: Path, prim: types.FunctionType
) -> None:
    m = _caller(tmp_path, "def f(x):\n    return prim(x, 2)\n")
    names = inline(prim, m.f).__code__.co_varnames
    assert "_prim_a" not in names  # `a` is never assigned: `x` stands for it
    assert "_prim_b" in names  # `b` is assigned by the primitive: it gets a local


def test_a_none_argument_decides_the_tests_on_its_parameter(
    tmp_path: Path, prim: types.FunctionType
) -> None:
    m = _caller(tmp_path, "def f(x):\n    return prim(x, None)\n")
    inlined = inline(prim, m.f)
    assert [inlined(x) for x in (0, 4)] == [m.f(x) for x in (0, 4)] == [1, 41]
    # `if b is not None:` (the only place `b` is assigned) is gone, and `b` with it (I5)
    assert "_prim_b" not in inlined.__code__.co_varnames


def test_a_none_argument_whose_parameter_is_still_assigned_is_refused(tmp_path: Path) -> None:
    # After `if b is None: b = 1`, a later `if b is None` cannot be decided from the argument.
    bad = _module(
        tmp_path,
        "inline_reassigns",
        "def prim(b):\n    if b is None:\n        b = 1\n    if b is None:\n        b = 2\n"
        "    return b\n",
    )
    m = _module(
        tmp_path,
        "inline_reassigns_caller",
        "from inline_reassigns import prim\ndef f():\n    return prim(None)\n",
    )
    assert m.f() == 1
    with pytest.raises(InlineError, match="rule I5"):
        inline(bad.prim, m.f)


def test_a_call_inside_an_expression_is_refused(tmp_path: Path, prim: types.FunctionType) -> None:
    m = _caller(tmp_path, "def f(x):\n    return 1 + prim(x, None)\n")
    with pytest.raises(InlineError, match="rule I1"):
        inline(prim, m.f)


def test_keyword_arguments_are_refused(tmp_path: Path, prim: types.FunctionType) -> None:
    m = _caller(tmp_path, "def f(x):\n    return prim(x, b=None)\n")
    with pytest.raises(InlineError, match="positional"):
        inline(prim, m.f)


def test_a_caller_that_never_calls_the_primitive_is_refused(
    tmp_path: Path, prim: types.FunctionType
) -> None:
    m = _caller(tmp_path, "def f(x):\n    return x\n")
    with pytest.raises(InlineError, match="does not call"):
        inline(prim, m.f)


@pytest.mark.parametrize(
    "body",
    [
        "def early(a):\n    if a:\n        return 1\n    return 2\n",
        "def ends(a):\n    a += 1\n",
        "def nested(a):\n    f = lambda: a\n    return f()\n",
    ],
)
def test_a_primitive_that_is_not_straight_line_to_one_return_is_refused(
    tmp_path: Path, body: str
) -> None:
    bad = _module(tmp_path, "inline_bad", body)
    fn = next(v for v in vars(bad).values() if isinstance(v, types.FunctionType))
    m = _module(
        tmp_path,
        "inline_bad_caller",
        f"from inline_bad import {fn.__name__}\ndef f(x):\n    return {fn.__name__}(x)\n",
    )
    with pytest.raises(InlineError, match="rule I2"):
        inline(fn, m.f)


def test_the_primitives_globals_are_bound_in_the_callers_module(
    tmp_path: Path, prim: types.FunctionType
) -> None:
    m = _caller(tmp_path, "def f(x):\n    return prim(x, None)\n")
    assert "FACTOR" not in vars(m)
    assert inline(prim, m.f)(2) == 21
    assert m.FACTOR is prim.__globals__["FACTOR"]


def test_a_global_the_caller_binds_to_another_object_is_refused(
    tmp_path: Path, prim: types.FunctionType
) -> None:
    m = _caller(tmp_path, "FACTOR = 3\ndef f(x):\n    return prim(x, None)\n")
    with pytest.raises(InlineError, match=r"'FACTOR'.*rule I3"):
        inline(prim, m.f)


def test_a_traceback_through_inlined_code_shows_the_line_of_the_call(
    tmp_path: Path, prim: types.FunctionType
) -> None:
    m = _caller(tmp_path, "def f(x):\n    y = 0\n    return prim(x, None)\n")
    with pytest.raises(TypeError) as info:
        inline(prim, m.f)("text")  # "text" * 10 + 1: TypeError inside the primitive
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.name, last.lineno, last.line) == ("f", 4, "return prim(x, None)")


def test_a_caller_without_source_is_kept_as_it_is(prim: types.FunctionType) -> None:
    namespace: dict[str, Any] = {"prim": prim}
    exec(compile("def f(x):\n    return prim(x, None)\n", "<nowhere>", "exec"), namespace)
    assert inline(prim, namespace["f"]) is namespace["f"]


def test_an_inlined_function_can_be_inlined_in_turn(
    tmp_path: Path, prim: types.FunctionType
) -> None:
    mid = _module(
        tmp_path,
        "inline_mid",
        "from inline_prim import prim\ndef mid(a):\n    a = a + 1\n    return prim(a, None)\n",
    )
    top = _module(
        tmp_path, "inline_top", "from inline_mid import mid\ndef top(x):\n    return mid(x)\n"
    )
    both = inline(inline(prim, mid.mid), top.top)
    assert both(1) == top.top(1) == 21
    assert not {"mid", "prim"} & set(both.__code__.co_names)


# -- what the library does with it ---------------------------------------------------------


@pytest.mark.skipif(not PURE, reason="the compiled extension replaces these operations")
def test_the_hot_operations_run_the_driver_primitive_inlined() -> None:
    hot = [_coroutine.Coroutine.__dict__[n] for n in ("Next", "__next__", "send")]
    hot += [_run.Run, _driver.start]
    for fn in hot:
        assert "resume" not in fn.__code__.co_names, fn.__qualname__
        assert "switch" in fn.__code__.co_names, fn.__qualname__
    assert "start" not in _coroutine.Coroutine._advance.__code__.co_names
    assert "new_context" not in _new.create.__code__.co_names
