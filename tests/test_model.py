"""Property-based model test: random bodies and drivers against a generator-based reference.

Each example is a random body program (yields at any depth, nested calls, try/except/finally,
``with`` blocks, raises, catching `CoroutineExit`, stopping itself, nested inner coroutines)
and a random driver program (`Next`, `Send`, `Stop`, `throw`, `close`, `send`, `next`, `Run`
with a scripted callback, dropping the coroutine). It runs twice: on the library, where the
body is interpreted by plain recursive functions that call `Yield` at any depth, and on
`reference.RefCoroutine`, where the same body is a generator. The traces (values yielded and
sent, ``finally`` and ``with`` exits, exceptions seen by body and driver, states after each
operation, unraisable errors) must be identical.

CI runs a fixed budget of examples. For a long local run:

    COROUTINE_MODEL_EXAMPLES=20000 python -m pytest tests/test_model.py -q
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reference import (
    CATCHABLE,
    EXCEPTIONS,
    Block,
    Recorder,
    RefCoroutine,
    Trace,
    make_exc,
    ref_body,
)

from coroutine import Current, New, NewWithReturn, Run, Yield

EXAMPLES = int(os.environ.get("COROUTINE_MODEL_EXAMPLES", "400"))

Y_ANY = Yield[int, Any]
Y_INT = Yield[int, int]

# -- random programs -------------------------------------------------------------------


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, picked in proportion to its weight."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


values = st.integers(0, 9)
exc_kinds = st.sampled_from(sorted(EXCEPTIONS))
run_actions = st.lists(
    st.one_of(
        st.tuples(st.just("answer"), values),
        st.tuples(st.just("raise"), exc_kinds),
        st.just(("stop",)),
        st.just(("close",)),
        st.just(("bad",)),
    ),
    max_size=3,
).map(tuple)
next_op = st.sampled_from([("Next",), ("next",)])
driver_op = weighted(
    (8, next_op),
    (3, st.tuples(st.just("Send"), values)),
    (2, st.tuples(st.just("send"), st.one_of(st.none(), values))),
    (1, st.sampled_from([("SendBad",), ("Stop",), ("close",), ("drop",)])),
    (1, st.tuples(st.just("throw"), exc_kinds)),
    (1, st.tuples(st.just("Run"), run_actions)),
)
self_op = st.sampled_from(["Next", "close", "throw", "send", "Stop", "Send", "Run"])
yield_ = st.tuples(st.just("yield"), values, st.sampled_from(["any", "any", "int"]))
leaf = weighted(  # mostly yields: a raise or a return ends the rest of its block
    (12, yield_),
    (1, st.tuples(st.just("raise"), exc_kinds)),
    (1, st.tuples(st.just("return"), values)),
    (1, st.just(("yield_bad",))),
    (1, st.just(("stop_self",))),
    (1, st.tuples(st.just("self_op"), self_op)),
)
leaves = st.lists(leaf, max_size=5)


def compound(blocks: st.SearchStrategy[Block]) -> st.SearchStrategy[Block]:
    handler = st.tuples(
        st.sampled_from(["CoroutineExit", "CoroutineExit", *sorted(CATCHABLE)]), blocks
    )
    ops = st.lists(driver_op, max_size=4)
    node = weighted(
        (8, leaf),
        (1, st.tuples(st.just("call"), blocks)),
        (
            2,
            st.tuples(
                st.just("try"),
                st.just(0),
                blocks,
                st.lists(handler, max_size=2),
                st.one_of(st.none(), blocks),
            ),
        ),
        (1, st.tuples(st.just("with"), st.just(0), blocks)),
        (1, st.tuples(st.just("inner"), st.just(0), blocks, ops, blocks, ops, st.booleans())),
    )
    return st.lists(node, max_size=5)


programs = st.recursive(leaves, compound, max_leaves=20)


def number(block: Block, counter: Iterator[int]) -> Block:
    """Give each try, with and inner node its own id, for the trace."""
    out: Block = []
    for node in block:
        kind = node[0]
        if kind == "call":
            node = ("call", number(node[1], counter))
        elif kind == "try":
            _, _, body, handlers, fin = node
            node = (
                "try",
                next(counter),
                number(body, counter),
                [(name, number(h, counter)) for name, h in handlers],
                None if fin is None else number(fin, counter),
            )
        elif kind == "with":
            node = ("with", next(counter), number(node[2], counter))
        elif kind == "inner":
            _, _, body, before, outer, after, with_return = node
            node = (
                "inner",
                next(counter),
                number(body, counter),
                before,
                number(outer, counter),
                after,
                with_return,
            )
        out.append(node)
    return out


# -- the driver harness, the same for both ---------------------------------------------


class Harness:
    """Applies driver operations to the coroutine in `box[0]` and records what happened."""

    def __init__(self, trace: Trace, library: bool) -> None:
        self.trace = trace
        self.library = library

    def unraisable(self, e: BaseException) -> None:
        self.trace.append(("unraisable", type(e).__name__))

    def drive(self, box: list[Any], ops: list[tuple[Any, ...]], path: str) -> None:
        for op in ops:
            if box[0] is None:
                self.trace.append(("gone", path, op[0]))
                continue
            self.trace.append(("op", path, op[0], self.apply(box, op, path)))
            if box[0] is not None:
                c = box[0]
                self.trace.append(("state", path, c.status, c.Done(), c.Recv(), c.Result()))
                del c

    def apply(self, box: list[Any], op: tuple[Any, ...], path: str) -> tuple[Any, ...]:
        kind = op[0]
        try:
            if kind == "Next":
                r = box[0].Next()
            elif kind == "Send":
                r = box[0].Send(op[1])
            elif kind == "SendBad":
                r = box[0].Send(None)
            elif kind == "Stop":
                r = box[0].Stop()
            elif kind == "throw":
                r = box[0].throw(make_exc(op[1]))
            elif kind == "close":
                r = box[0].close()
            elif kind == "send":
                r = box[0].send(op[1])
            elif kind == "next":
                r = next(box[0])
            elif kind == "Run":
                r = self.run(box, op[1], path)
            elif kind == "drop":
                r = self.drop(box, path)
            else:  # pragma: no cover
                raise AssertionError(op)
        except StopIteration as e:
            return ("StopIteration", e.value)
        except BaseException as e:
            return ("raised", type(e).__name__)
        return ("ok", r)

    def run(self, box: list[Any], actions: tuple[tuple[Any, ...], ...], path: str) -> Any:
        script = list(actions)

        def fn(v: Any) -> Any:
            self.trace.append(("fn", path, v))
            if not script:
                return v
            action = script.pop(0)
            if action[0] == "answer":
                return action[1]
            if action[0] == "raise":
                raise make_exc(action[1])
            if action[0] == "stop":
                box[0].Stop()
            elif action[0] == "close":
                box[0].close()
            else:  # "bad": not an S
                return None
            return 0

        if self.library:
            return Run(box[0], fn)
        return box[0].run(fn)

    def drop(self, box: list[Any], path: str) -> str:
        if box[0] is None:  # dropped already
            return "gone"
        if self.library:
            ref = weakref.ref(box[0])
            box[0] = None  # the last reference: unwound now, by reference counting
            if ref() is not None:
                self.trace.append(("not freed", path))
        else:
            box[0].drop()
            box[0] = None
        return "dropped"

    def self_op(self, me: Any, op: str, path: str) -> None:
        ops = {"Send": ("Send", 1), "throw": ("throw", "ValueError"), "Run": ("Run", ())}
        box = [me]
        self.trace.append(("self op", path, op, self.apply(box, ops.get(op, (op,)), path)))


# -- the library's side: a stackful interpreter ----------------------------------------


class LibEnv:
    def __init__(self, trace: Trace, path: str, harness: Harness) -> None:
        self.trace = trace
        self.path = path
        self.harness = harness


def run_lib(block: Block, env: LibEnv) -> tuple[str, int] | None:
    """Interpret `block` with `Yield` at whatever depth it is reached."""
    trace = env.trace
    for node in block:
        kind = node[0]
        if kind == "yield":
            _, v, site = node
            got = (Y_ANY if site == "any" else Y_INT)(v)
            trace.append(("got", env.path, got))
        elif kind == "yield_bad":
            Y_ANY("x")
        elif kind == "raise":
            raise make_exc(node[1])
        elif kind == "return":
            trace.append(("return", env.path, node[1]))
            return ("ret", node[1])
        elif kind == "stop_self":
            me = Current()
            if me is None:
                trace.append(("no current", env.path))
            else:
                me.Stop()
            del me
        elif kind == "self_op":
            me = Current()
            if me is None:
                trace.append(("no current", env.path))
            else:
                env.harness.self_op(me, node[1], env.path)
            del me
        elif kind == "call":
            call_lib(node[1], env)
        elif kind == "try":
            r = try_lib(node, env)
            if r is not None:
                return r
        elif kind == "with":
            with Recorder(trace, node[1]):
                r = run_lib(node[2], env)
            if r is not None:
                return r
        elif kind == "inner":
            r = inner_lib(node, env)
            if r is not None:
                return r
        else:  # pragma: no cover
            raise AssertionError(node)
    return None


def call_lib(block: Block, env: LibEnv) -> None:
    run_lib(block, env)  # a return inside a call returns from the call only


def try_lib(node: tuple[Any, ...], env: LibEnv) -> tuple[str, int] | None:
    _, nid, block, handlers, fin = node
    env.trace.append(("try", nid))
    try:
        try:
            return run_lib(block, env)
        except BaseException as e:
            for name, hblock in handlers:
                if isinstance(e, CATCHABLE[name]):
                    env.trace.append(("caught", nid, type(e).__name__))
                    return run_lib(hblock, env)
            raise
    finally:
        if fin is not None:
            env.trace.append(("finally", nid))
            run_lib(fin, env)


def inner_lib(node: tuple[Any, ...], env: LibEnv) -> tuple[str, int] | None:
    _, nid, block, before, outer_block, after, with_return = node
    path = f"{env.path}/{nid}"
    harness = env.harness
    make = NewWithReturn[int, int] if with_return else New[int, int]
    box: list[Any] = [make(functools.partial(lib_body, block, LibEnv(env.trace, path, harness)))]
    try:
        harness.drive(box, before, path)
        r = run_lib(outer_block, env)
        harness.drive(box, after, path)
        return r
    finally:
        harness.drop(box, path)


def lib_body(block: Block, env: LibEnv) -> int | None:
    r = run_lib(block, env)
    return None if r is None else r[1]


# -- the property ----------------------------------------------------------------------


@contextmanager
def unraisable_to(harness: Harness) -> Iterator[None]:
    old = sys.unraisablehook
    sys.unraisablehook = lambda u: harness.unraisable(u.exc_value)  # type: ignore[arg-type]
    try:
        yield
    finally:
        sys.unraisablehook = old


def trace_library(block: Block, ops: list[tuple[Any, ...]], with_return: bool) -> Trace:
    trace: Trace = []
    harness = Harness(trace, library=True)
    make = NewWithReturn[int, int] if with_return else New[int, int]
    box: list[Any] = [make(functools.partial(lib_body, block, LibEnv(trace, "top", harness)))]
    with unraisable_to(harness):
        harness.drive(box, [*ops, ("drop",)], "top")
        trace.append(("collect",))
        gc.collect(1)  # nothing left to collect: it all went by reference counting
    return trace


def trace_reference(block: Block, ops: list[tuple[Any, ...]], with_return: bool) -> Trace:
    trace: Trace = []
    harness = Harness(trace, library=False)
    box: list[Any] = [RefCoroutine(ref_body(block, trace, "top", harness), with_return)]
    box[0].unraisable = harness.unraisable
    harness.drive(box, [*ops, ("drop",)], "top")
    trace.append(("collect",))
    return trace


def check(block: Block, ops: list[tuple[Any, ...]], with_return: bool) -> None:
    block = number(block, iter(range(1, 10**6)))
    expected = trace_reference(block, ops, with_return)
    got = trace_library(block, ops, with_return)
    assert got == expected


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(programs, st.lists(driver_op, max_size=10), st.booleans())
@example(  # a body that catches CoroutineExit and yields, dropped by the driver
    [("try", 0, [("yield", 1, "any")], [("CoroutineExit", [("yield", 2, "any")])], None)],
    [("Next",)],
    True,
)
@example(  # Run's callback closes the coroutine it is driving
    [("yield", 1, "any"), ("yield", 2, "any")], [("Run", (("close",),))], True
)
@example(  # Run's callback raises; the body catches it and yields: freed once dropped
    [
        (
            "try",
            0,
            [("yield", 0, "any")],
            [("BaseException", [("yield", 0, "any")])],
            [("yield", 0, "any")],
        )
    ],
    [("Run", (("bad",), ("raise", "Boom")))],
    False,
)
def test_library_and_generator_reference_leave_identical_traces(
    block: Block, ops: list[tuple[Any, ...]], with_return: bool
) -> None:
    check(block, ops, with_return)
