"""SPEC §4 line 15: abandoned coroutines are unwound and freed, with no reference cycles."""

from __future__ import annotations

import functools
import gc
import sys
import weakref
from typing import Any

import pytest

from coroutine import Coroutine, Current, LoadContext, New, Yield


class Marker:
    """Something a body holds, to see when its frames are freed."""


def test_an_abandoned_suspended_coroutine_is_unwound_and_freed_without_gc() -> None:
    unwound: list[str] = []
    held = Marker()
    held_ref = weakref.ref(held)

    def body(m: Marker) -> None:
        try:
            Yield[int, Any](1)
        finally:
            unwound.append("finally")

    c = New[int, Any](functools.partial(body, held))
    del held
    c.Next()
    coro_ref = weakref.ref(c)
    gc.disable()  # plain reference counting must be enough: no cycle may be involved
    try:
        del c
        assert coro_ref() is None
        assert unwound == ["finally"]
    finally:
        gc.enable()
    gc.collect()
    assert held_ref() is None


def test_an_abandoned_coroutine_holding_its_context_is_still_freed() -> None:
    unwound: list[str] = []

    def body() -> None:
        ctx = LoadContext[int, Any]()  # held across the yield
        try:
            ctx.Yield(1)
        finally:
            unwound.append("finally")

    c = New[int, Any](body)
    c.Next()
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None
    assert unwound == ["finally"]


def test_a_nested_suspended_pair_is_unwound_when_the_outer_is_dropped() -> None:
    unwound: list[str] = []

    def inner() -> None:
        try:
            Yield[int, Any](1)
            Yield[int, Any](2)
        finally:
            unwound.append("inner")

    def outer() -> None:
        c = New[int, Any](inner)
        c.Next()
        try:
            Yield[int, Any](c.Recv())
        finally:
            unwound.append("outer")

    c = New[int, Any](outer)
    c.Next()
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None
    assert unwound == ["outer", "inner"]


def test_an_exception_while_unwinding_goes_to_sys_unraisablehook() -> None:
    def body() -> None:
        try:
            Yield[int, Any](1)
        finally:
            raise KeyError("from finally")

    seen: list[Any] = []
    old = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        c = New[int, Any](body)
        c.Next()
        del c
        gc.collect()
    finally:
        sys.unraisablehook = old
    assert len(seen) == 1
    assert isinstance(seen[0].exc_value, KeyError)


def test_a_finished_coroutine_keeps_no_frames_alive() -> None:
    refs: list[weakref.ref[Marker]] = []

    def body() -> None:
        local = Marker()
        refs.append(weakref.ref(local))
        Yield[int, Any](1)

    c = New[int, Any](body)
    list(c)
    gc.collect()
    assert refs[0]() is None
    assert c.Done()


def test_a_body_exception_does_not_keep_the_coroutine_alive() -> None:
    def body() -> None:
        raise ValueError("boom")

    c = New[int, Any](body)
    ref = weakref.ref(c)
    with pytest.raises(ValueError):
        c.Next()
    del c
    gc.collect()
    assert ref() is None


def test_current_held_only_while_running_does_not_pin_the_coroutine() -> None:
    def body() -> None:
        assert isinstance(Current(), Coroutine)
        Yield[int, Any](1)

    c = New[int, Any](body)
    c.Next()
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None


def test_many_abandoned_coroutines_do_not_accumulate() -> None:
    refs = []
    for _ in range(200):
        c = New[int, Any](lambda: [Yield[int, Any](i) for i in range(3)])
        c.Next()
        refs.append(weakref.ref(c))
        del c
    gc.collect()
    assert all(r() is None for r in refs)


def test_the_exit_hook_unwinds_suspended_coroutines_of_this_thread() -> None:
    from coroutine._coroutine import _unwind_survivors

    unwound: list[str] = []

    def body() -> None:
        try:
            Yield[int, Any](1)
        finally:
            unwound.append("finally")

    c = New[int, Any](body)
    c.Next()
    _unwind_survivors()
    assert c.Done()
    assert unwound == ["finally"]
