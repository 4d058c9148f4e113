"""The lifecycle table of `_coroutine.py`, walked pair by pair: every state x operation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

import pytest

from coroutine import Coroutine, Current, New, ResumeError, Run, Yield

Coro = Coroutine[int, Optional[int]]


def two_yields() -> None:
    Yield[int, Optional[int]](1)
    Yield[int, Optional[int]](2)


@contextmanager
def in_state(state: str) -> Iterator[tuple[Coro, list[BaseException | str]]]:
    """A coroutine in `state`, and the outcomes of operations applied to it there.

    For "running" and "normal" the operation must be applied from inside (see `apply`).
    """
    c: Coro = New[int, Optional[int]](two_yields)
    if state == "suspended":
        c.Next()
    elif state == "done":
        list(c)
    outcomes: list[BaseException | str] = []
    yield c, outcomes
    c.close() if c.status == "suspended" else None


def run_op(c: Coro, op: str) -> str:
    ops: dict[str, Callable[[], object]] = {
        "Next": c.Next,
        "Send": lambda: c.Send(5),
        "Stop": c.Stop,
        "throw": lambda: c.throw(KeyError("thrown")),
        "close": c.close,
        "send": lambda: c.send(None),
        "next": lambda: next(c),
        "Run": lambda: Run(c, lambda v: None),
    }
    try:
        result = ops[op]()
    except StopIteration:
        return "StopIteration"
    except KeyError:
        return "KeyError"
    except ResumeError:
        return "ResumeError"
    return repr(result)


# state -> op -> (outcome, status afterwards)
TABLE: dict[str, dict[str, tuple[str, str]]] = {
    "created": {
        "Next": ("True", "suspended"),
        "Send": ("None", "created"),
        "Stop": ("None", "created"),
        "throw": ("KeyError", "done"),
        "close": ("None", "done"),
        "send": ("1", "suspended"),
        "next": ("1", "suspended"),
        "Run": ("None", "done"),
    },
    "suspended": {
        "Next": ("True", "suspended"),
        "Send": ("None", "suspended"),
        "Stop": ("None", "suspended"),
        "throw": ("KeyError", "done"),
        "close": ("None", "done"),
        "send": ("2", "suspended"),
        "next": ("2", "suspended"),
        "Run": ("None", "done"),
    },
    "done": {
        "Next": ("False", "done"),
        "Send": ("None", "done"),
        "Stop": ("None", "done"),
        "throw": ("KeyError", "done"),
        "close": ("None", "done"),
        "send": ("StopIteration", "done"),
        "next": ("StopIteration", "done"),
        "Run": ("None", "done"),
    },
}
OPS = list(TABLE["created"])


@pytest.mark.parametrize("state", list(TABLE))
@pytest.mark.parametrize("op", OPS)
def test_operation_in_state_follows_the_lifecycle_table(state: str, op: str) -> None:
    with in_state(state) as (c, _):
        assert c.status == state
        outcome, after = TABLE[state][op]
        assert run_op(c, op) == outcome
        assert c.status == after


# From inside: a running coroutine (its own body) and a normal one (it drives another).
RESUMING_OPS = {"Next", "throw", "close", "send", "next", "Run"}


@pytest.mark.parametrize("op", OPS)
def test_operation_on_a_running_coroutine(op: str) -> None:
    outcomes: list[str] = []

    def body() -> None:
        me = Current()
        assert me is not None
        outcomes.append(me.status)
        outcomes.append(run_op(me, op))  # type: ignore[arg-type]
        outcomes.append(me.status)
        del me

    c = New[int, Any](body)
    c.Next()
    expected = "ResumeError" if op in RESUMING_OPS else "None"
    assert outcomes == ["running", expected, "running"]


@pytest.mark.parametrize("op", OPS)
def test_operation_on_a_normal_coroutine(op: str) -> None:
    outcomes: list[str] = []
    holder: list[Coro] = []

    def inner() -> None:
        outer = holder[0]
        outcomes.append(outer.status)
        outcomes.append(run_op(outer, op))
        outcomes.append(outer.status)

    def outer_body() -> None:
        New[int, Any](inner).Next()
        Yield[int, Optional[int]](1)

    c: Coro = New[int, Optional[int]](outer_body)
    holder.append(c)
    if op == "Stop":  # the outer body yields after being stopped by the inner one
        with pytest.raises(ResumeError, match="stopped"):
            c.Next()
    else:
        c.Next()
    holder.clear()
    expected = "ResumeError" if op in RESUMING_OPS else "None"
    assert outcomes == ["normal", expected, "normal"]
    c.close()


def test_a_stopped_created_coroutine_ends_on_next_without_running() -> None:
    ran: list[int] = []
    c = New[int, Any](lambda: ran.append(1))
    c.Stop()
    assert c.status == "created"
    assert c.Next() is False
    assert c.status == "done"
    assert ran == []
