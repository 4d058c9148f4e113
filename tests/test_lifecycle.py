"""The lifecycle table of `_coroutine.py`, walked pair by pair: every state x operation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional

import pytest

from coroutine import Coroutine, Current, New, ResumeError, Run, StoppedError, Yield, _lifecycle

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
    if state in ("suspended", "stopping"):
        c.Next()
    if state == "stopping":
        c.Stop()
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
    except StoppedError:
        return "StoppedError"
    return repr(result)


# The table is the runtime's own (coroutine._lifecycle.TABLE): each row is walked here.
TABLE = _lifecycle.TABLE
OPS = list(_lifecycle.OPERATIONS)
OUTSIDE = ["created", "suspended", "stopping", "done"]


@pytest.mark.parametrize("state", OUTSIDE)
@pytest.mark.parametrize("op", OPS)
def test_operation_in_state_follows_the_lifecycle_table(state: str, op: str) -> None:
    with in_state(state) as (c, _):
        move = TABLE[state][op]
        assert run_op(c, op) == move.gives
        assert c.status == move.after


def restorable() -> None:
    two_yields()


@pytest.mark.parametrize("op", OPS)
def test_operation_on_a_restored_coroutine_follows_the_lifecycle_table(op: str) -> None:
    first = New[int, Optional[int]](restorable, durable=True)
    first.Next()
    c = New[int, Optional[int]](restorable, durable=True)
    c.Context().Unmarshal(first.Context().Marshal())
    first.close()
    assert c.status == "suspended"
    move = TABLE["restored"][op]
    assert run_op(c, op) == move.gives
    assert c.status == move.after
    c.close()


# From inside: a running coroutine (its own body) and a normal one (it drives another).


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
    assert outcomes == ["running", TABLE["running"][op].gives, TABLE["running"][op].after]


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
    assert outcomes == ["normal", TABLE["normal"][op].gives, TABLE["normal"][op].after]
    c.close()


def test_a_stopped_created_coroutine_ends_on_next_without_running() -> None:
    ran: list[int] = []
    c = New[int, Any](lambda: ran.append(1))
    c.Stop()
    assert c.status == "created"
    assert c.Next() is False
    assert c.status == "done"
    assert ran == []
