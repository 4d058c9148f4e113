"""The switch protocol of `_context`: one copy of each primitive, and the bugs it fixed.

Each regression test below names a way the runtime used to leave a coroutine stuck or a
generator difference it used to have (issue 10); each failed before the protocol existed.
"""

from __future__ import annotations

import ast
import contextvars
import functools
import inspect
import re
import sys
import threading
from pathlib import Path
from typing import Any

import greenlet
import pytest

import coroutine
from coroutine import (
    New,
    NewWithReturn,
    NotInCoroutineError,
    ResumeError,
    Run,
    Yield,
    YieldTypeError,
    _accel,
    _context,
    _lifecycle,
    _new,
)

SRC = Path(coroutine.__file__).parent


# -- one copy of each primitive -------------------------------------------------------------


def test_only_the_switch_protocol_switches_greenlets() -> None:
    # `.switch(` and `.throw(` on a greenlet: the primitives of _context and _driver, the
    # parked worker, and the unwinding of an abandoned body in Coroutine.__del__.
    allowed = {
        "_context.py": {"switch_out", "end_from_body"},
        "_driver.py": {"resume"},
        "_worker.py": {"_worker_main", "acquire"},  # acquire: a new worker's first switch
        "_coroutine.py": {"__del__"},
        # coroutine.aio's driver: its own switches, by its own rules (_bridge's docstring)
        "_bridge.py": {"start", "resume", "await_"},
    }
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        if "_plugin" in path.parts or path.name == "mypy.py":
            continue
        if "workflow" in path.parts:  # drives coroutines through the public API only
            assert "import greenlet" not in path.read_text(), path
            assert "from greenlet" not in path.read_text(), path
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("switch", "throw")
                    and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "self")
                ):
                    found.setdefault(path.name, set()).add(func.name)
    assert found == allowed


def _c_functions(source: str) -> dict[str, str]:
    """The top-level function definitions of a C file (K&R-free, as ours are written:
    return type on its own line, name and parameters on the next, body from "{" to "}")."""
    found = re.finditer(r"^(\w+)\(([^)]*)\)\s*(?:/\*.*?\*/\s*)?\n\{(.*?)^\}", source, re.M | re.S)
    return {m.group(1): m.group(3) for m in found}


def test_only_the_compiled_protocol_switches_greenlets_in_c() -> None:
    # The C accelerator's honest account: greenlet's C API is called to switch in one helper
    # (switch_to), which only the compiled resume, start, yield site and worker (parking,
    # as `_worker._worker_main` does) call; PyGreenlet_Throw
    # is never used. The same files are compiled or not: this reads the sources either way.
    sources = sorted((SRC / "_speedups_c").glob("*.[ch]"))
    functions: dict[str, str] = {}
    for path in sources:
        found = _c_functions(path.read_text())
        assert not found.keys() & functions.keys(), path  # one definition per name
        functions.update(found)
    assert {"resume_body", "start_body", "YieldSite_call", "mod_run"} <= functions.keys()
    direct = {name for name, body in functions.items() if "PyGreenlet_Switch(" in body}
    callers = {name for name, body in functions.items() if re.search(r"\bswitch_to\(", body)}
    throwing = {name for name, body in functions.items() if "PyGreenlet_Throw" in body}
    aio = {"aio_start"}, {"aio_resume", "aio_await"}  # coroutine.aio's driver (aio.h)
    assert (direct, callers, throwing) == (
        {"switch_to", "start_worker"} | aio[0],  # start_worker: a new worker's first switch
        {"resume_body", "start_body", "YieldSite_call", "worker_park"} | aio[1],
        set(),
    )
    header = (SRC / "_speedups_c" / "speedups.h").read_text().split("*/", 1)[0]
    assert "`resume_body`, `start_body` and\n * `YieldSite_call`, and `worker_park`" in header
    for rule in ("D1", "D2", "D3", "B1", "B2", "B3", "E1"):
        assert f" *   {rule} " in header


def test_the_handshake_rules_are_written_at_the_top_of_the_protocol_module() -> None:
    doc = _context.__doc__ or ""
    for rule in ("D1.", "D2.", "D3.", "B1.", "B2.", "B3.", "E1."):
        assert rule in doc


def test_the_lifecycle_document_is_the_table_rendered() -> None:
    doc = Path(__file__).parents[1] / "docs" / "reference" / "lifecycle.md"
    assert doc.read_text() == _lifecycle.render()


# -- regressions ----------------------------------------------------------------------------


def two() -> None:
    Yield[int, Any](1)
    Yield[int, Any](2)


@pytest.mark.parametrize("bad", ["abc", 0, list, None])
def test_throwing_a_non_exception_is_a_type_error_that_changes_nothing(bad: Any) -> None:
    for started in (False, True):
        c = New[int, Any](two)
        if started:
            c.Next()
        before = c.status
        with pytest.raises(TypeError, match="takes an exception"):
            c.throw(bad)
        assert c.status == before
        assert list(c) == ([2] if started else [1, 2])


def test_a_stop_iteration_escaping_a_body_is_a_runtime_error_as_in_pep_479() -> None:
    def body() -> None:
        Yield[int, Any](1)
        raise StopIteration(5)

    with pytest.raises(RuntimeError, match="raised StopIteration") as info:
        list(New[int, Any](body))
    assert isinstance(info.value.__cause__, StopIteration)
    c = NewWithReturn[int, Any](body)
    c.send(None)
    with pytest.raises(RuntimeError):
        c.send(None)
    assert c.Done() and c.Result() is None


def test_an_exception_thrown_in_chains_to_the_one_the_body_was_handling() -> None:
    seen: list[BaseException | None] = []

    def body() -> None:
        try:
            raise KeyError("handled")
        except KeyError:
            try:
                Yield[int, Any](1)
            except ValueError as exc:
                seen.append(exc.__context__)

    c = New[int, Any](body)
    c.Next()
    with pytest.raises(StopIteration):
        c.throw(ValueError("thrown"))
    assert isinstance(seen[0], KeyError)


def test_a_run_callback_failure_is_raised_at_the_yield_and_chains_the_same_way() -> None:
    seen: list[BaseException | None] = []

    def body() -> int:
        try:
            raise KeyError("handled")
        except KeyError:
            try:
                return Yield[int, int](1)
            except ZeroDivisionError as exc:
                seen.append(exc.__context__)
                return -1

    assert Run(NewWithReturn[int, int](body), lambda v: v // 0) == -1
    assert isinstance(seen[0], KeyError)


def test_a_cross_thread_next_is_refused_without_disturbing_the_owner() -> None:
    def counter() -> None:
        i = 0
        while True:
            Yield[int, Any](i)
            i += 1

    c = New[int, Any](counter)
    stop = threading.Event()
    refusals: list[str] = []

    def intruder() -> None:
        while not stop.is_set():
            for op in (c.Next, c.close):
                try:
                    op()
                except ResumeError as exc:
                    refusals.append(str(exc)[:20])

    t = threading.Thread(target=intruder)
    t.start()
    try:
        for i in range(100_000):
            assert c.Next() and c.Recv() == i
    finally:
        stop.set()
        t.join()
    assert refusals  # the intruder did try
    assert c.status == "suspended"
    c.close()


def test_a_foreign_yield_into_a_suspended_coroutine_changes_nothing() -> None:
    copies: list[contextvars.Context] = []

    def body() -> None:
        copies.append(contextvars.copy_context())
        Yield[int, Any](1)
        Yield[int, Any](2)

    c = New[int, Any](body)
    c.Next()
    errors: list[BaseException] = []

    def foreign() -> None:
        try:
            copies[0].run(Yield[int, Any], 99)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=foreign)
    t.start()
    t.join()
    assert isinstance(errors[0], NotInCoroutineError)
    assert c.status == "suspended"
    assert list(c) == [2]


def test_yield_type_error_site_is_the_users_line_for_context_yield() -> None:
    def body() -> None:
        coroutine.LoadContext[int, Any]().Yield("not an int")  # type: ignore[arg-type]

    with pytest.raises(YieldTypeError) as info:
        New[int, Any](body).Next()
    assert info.value.site == f"{__file__}:{body.__code__.co_firstlineno + 1}"


def test_yield_type_error_site_is_the_users_line_for_context_yield_resumed_empty() -> None:
    def body() -> None:
        coroutine.LoadContext[int, int]().Yield(1)

    c = New[int, int](body)
    c.Next()
    with pytest.raises(YieldTypeError, match="without a value") as info:
        c.Next()
    assert info.value.site == f"{__file__}:{body.__code__.co_firstlineno + 1}"


def durable_nothing_sent() -> None:
    Yield[int, int](1)


def test_yield_type_error_site_is_the_users_line_for_a_durable_coroutine() -> None:
    c = New[int, int](durable_nothing_sent, durable=True)
    c.Next()
    with pytest.raises(YieldTypeError, match="without a value") as info:
        c.Next()
    line = durable_nothing_sent.__code__.co_firstlineno + 1
    assert info.value.site == f"{__file__}:{line}"


def test_an_interrupt_inside_new_leaves_nothing_for_the_unraisable_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    class Interrupt(BaseException):
        pass

    def tracer(frame: Any, event: str, arg: object) -> Any:
        if (
            event == "line"
            and frame.f_code.co_name == "create"
            and "coro._g"
            in (
                inspect.getsourcelines(frame.f_code)[0][
                    frame.f_lineno - frame.f_code.co_firstlineno
                ]
            )
        ):
            raise Interrupt
        return tracer

    # The Python `create` (the compiled one has no line to interrupt: it is what New calls
    # when the extension is loaded, and the reference otherwise).
    create = functools.partial(_accel.py_create, _new._ANY, False)
    sys.settrace(tracer)
    try:
        with pytest.raises(Interrupt):
            create(two)
    finally:
        sys.settrace(None)
    import gc

    gc.collect()
    assert reported == []


def test_a_body_that_needs_arguments_is_refused_at_creation() -> None:
    def needs(x: int) -> None:
        pass

    import functools

    for fn in (needs, functools.partial(lambda x, y: None, 1)):
        with pytest.raises(TypeError, match="needs arguments"):
            New(fn)
    New(functools.partial(needs, 1))  # complete: accepted
    New(lambda x=1: None)


def test_the_worker_parent_is_the_driver_so_an_escape_lands_in_the_driver() -> None:
    outer_finally: list[str] = []

    def inner() -> None:
        Yield[int, Any](1)

    def outer() -> None:
        try:
            c = New[int, Any](inner)
            c.Next()
            g = c._g
            assert g is not None and g.parent is greenlet.getcurrent()
            c.close()
        finally:
            outer_finally.append("ran")

    New[int, Any](outer).Next()
    assert outer_finally == ["ran"]


def test_refusal_messages_come_from_the_lifecycle_module() -> None:
    def body() -> None:
        me = coroutine.Current()
        assert me is not None
        with pytest.raises(ResumeError, match=re.escape("it is running")):
            me.Next()

    New[int, Any](body).Next()
