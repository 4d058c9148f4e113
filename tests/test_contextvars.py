"""SPEC §4 line 14: a body runs in a copy of its creator's contextvars context."""

from __future__ import annotations

import contextvars
from typing import Any

from coroutine import New, Yield

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_body_sees_the_creator_context_at_new() -> None:
    token = var.set("at creation")
    try:
        c = New[str, Any](lambda: Yield[str, Any](var.get()))
    finally:
        var.reset(token)
    assert c.Next() and c.Recv() == "at creation"
    c.close()


def test_variables_set_by_the_driver_after_new_are_not_seen_inside() -> None:
    c = New[str, Any](lambda: Yield[str, Any](var.get()))
    token = var.set("later")
    try:
        assert c.Next() and c.Recv() == "unset"
    finally:
        var.reset(token)
        c.close()


def test_variables_set_inside_do_not_leak_out() -> None:
    def body() -> None:
        var.set("inside")
        Yield[str, Any](var.get())

    c = New[str, Any](body)
    assert c.Next() and c.Recv() == "inside"
    assert var.get() == "unset"
    c.close()


def test_each_coroutine_has_its_own_copy_kept_across_yields() -> None:
    def body(name: str) -> None:
        var.set(name)
        Yield[str, Any](var.get())
        Yield[str, Any](var.get())

    a, b = New[str, Any](lambda: body("a")), New[str, Any](lambda: body("b"))
    assert [a.__next__(), b.__next__(), a.__next__(), b.__next__()] == ["a", "b", "a", "b"]
    a.close()
    b.close()


def test_a_reused_worker_does_not_carry_variables_between_coroutines() -> None:
    def setter() -> None:
        var.set("left behind")

    New[str, Any](setter).Next()
    c = New[str, Any](lambda: Yield[str, Any](var.get()))
    assert c.Next() and c.Recv() == "unset"
    c.close()
