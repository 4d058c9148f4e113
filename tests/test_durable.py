"""SPEC §6: what durable coroutines promise, one behaviour per test."""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

import coroutine
from coroutine import (
    InvalidStateError,
    New,
    NewWithReturn,
    NotDurableError,
    ResumeError,
    SideEffect,
    Yield,
    YieldTypeError,
    _new,
)
from coroutine.types import Register

# -- bodies ----------------------------------------------------------------------------------


def count_to_three() -> None:
    for i in range(3):
        Yield[int, Any](i)


def echo() -> int:
    total = 0
    for _ in range(3):
        total += Yield[int, int](total)
    return total


def optional_echo() -> list[object]:
    return [Yield[int, object](i) for i in range(3)]


MODE = {"flip": False, "early": False}


def switchable() -> None:
    Yield[int, Any](1)
    Yield[int, Any](2 if not MODE["flip"] else 20)
    if MODE["early"]:
        return
    Yield[int, Any](3)


def thrown_into() -> list[str]:
    log = []
    for i in range(3):
        try:
            Yield[int, Any](i)
        except KeyError as exc:
            log.append(f"caught {exc.args[0]}")
    return log


CALLS: list[str] = []


def flaky() -> None:
    CALLS.append("called")
    raise ConnectionError("down", 503)


def effect_that_fails() -> str:
    try:
        SideEffect(flaky)
    except ConnectionError as exc:
        Yield[str, Any](f"retry after {exc.args}")
    return "gave up"


def effect_then_yield() -> None:
    SideEffect(lambda: CALLS.append("effect") or 1)
    Yield[int, Any](1)
    Yield[int, Any](2)


def yield_in_effect() -> None:
    SideEffect(lambda: Yield[int, Any](1))


def with_args(start: int, *, step: int) -> None:
    for i in range(3):
        Yield[int, Any](start + i * step)


class Account:
    def __init__(self, owner: str) -> None:
        self.owner = owner

    def run(self) -> None:
        Yield[str, Any](self.owner)
        Yield[str, Any](self.owner.upper())


Register(Account, lambda a: a.owner, Account)


class Unregistered:
    def run(self) -> None:
        Yield[int, Any](1)


def hop(c: Any, make: Any) -> Any:
    b = c.Context().Marshal()
    fresh = make()
    fresh.Context().Unmarshal(b)
    return fresh


def make_count() -> Any:
    return New[int, Any](count_to_three, durable=True)


# -- creation --------------------------------------------------------------------------------


def test_durable_true_with_a_lambda_raises_not_durable_saying_why() -> None:
    with pytest.raises(NotDurableError, match="it is a lambda"):
        New[int, Any](lambda: None, durable=True)


def test_durable_true_with_a_closure_names_the_enclosing_function() -> None:
    def inner() -> None:
        pass

    with pytest.raises(NotDurableError, match=r"defined inside test_durable_true_with_a_clo"):
        New[int, Any](inner, durable=True)


def test_durable_true_with_a_method_of_an_unregistered_object_says_to_register() -> None:
    with pytest.raises(NotDurableError, match=r"bound to a Unregistered object.*Register"):
        New[int, Any](Unregistered().run, durable=True)


def test_durable_true_with_a_partial_of_unencodable_arguments_raises() -> None:
    with pytest.raises(NotDurableError, match="partial's arguments cannot be encoded"):
        New[int, Any](functools.partial(with_args, object(), step=1), durable=True)


def test_a_method_of_a_registered_object_is_a_durable_entry() -> None:
    c = New[str, Any](Account("ann").run, durable=True)
    assert c.Next() and c.Recv() == "ann"
    c = hop(c, lambda: New[str, Any](Account("ann").run, durable=True))
    assert c.Next() and c.Recv() == "ANN"
    assert not c.Next()


def test_a_partial_restores_only_into_a_partial_with_the_same_arguments() -> None:
    c = New[int, Any](functools.partial(with_args, 10, step=5), durable=True)
    assert c.Next() and c.Recv() == 10
    b = c.Context().Marshal()
    other = New[int, Any](functools.partial(with_args, 11, step=5), durable=True)
    with pytest.raises(InvalidStateError, match=r"belongs to a coroutine of functools\.partial"):
        other.Context().Unmarshal(b)
    same = New[int, Any](functools.partial(with_args, 10, step=5), durable=True)
    same.Context().Unmarshal(b)
    assert same.Next() and same.Recv() == 15
    same.close()
    c.close()


def test_marshal_of_a_volatile_coroutine_raises_not_durable() -> None:
    c = New[int, Any](count_to_three, durable=False)
    with pytest.raises(NotDurableError, match="durable=True"):
        c.Context().Marshal()
    with pytest.raises(NotDurableError):
        c.Context().Unmarshal(b"")


def test_durable_default_leaves_unrecordable_entries_volatile_and_marshal_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_new, "DURABLE", True)
    c = New[int, Any](lambda: Yield[int, Any](1))
    assert c.Next() and c.Recv() == 1
    with pytest.raises(NotDurableError, match=r"COROUTINE_DURABLE=1.*it is a lambda"):
        c.Context().Marshal()
    assert not c.Next()
    d = New[int, Any](count_to_three)  # a module-level entry is durable by default
    assert d.Next()
    assert hop(d, make_count).Next()
    d.close()


def test_durable_false_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_new, "DURABLE", True)
    with pytest.raises(NotDurableError, match="durable=True"):
        New[int, Any](count_to_three, durable=False).Context().Marshal()


@pytest.mark.skipif(_new.DURABLE, reason="COROUTINE_DURABLE=1 is set")
def test_durable_flag_is_exported_and_off_without_the_environment_variable() -> None:
    assert coroutine.Durable is _new.DURABLE is False


# -- restoring -------------------------------------------------------------------------------


def test_unmarshalled_coroutine_is_suspended_and_recv_is_none_until_next() -> None:
    c = make_count()
    c.Next()
    c.Next()
    r = hop(c, make_count)
    assert r.status == "suspended" and not r.Done() and r.Recv() is None
    assert r.Next() and r.Recv() == 2
    assert not r.Next() and r.Done()
    c.close()


def test_a_done_coroutine_restores_as_done_with_its_result() -> None:
    c = NewWithReturn[int, int](echo, durable=True)
    c.Next()
    for v in (1, 2, 3):
        c.Send(v)
        c.Next()
    assert c.Done() and c.Result() == 6
    r = hop(c, lambda: NewWithReturn[int, int](echo, durable=True))
    assert r.status == "done" and r.Done() and r.Result() == 6
    assert not r.Next()


def test_a_created_coroutine_restores_as_created_and_runs_from_the_start() -> None:
    r = hop(make_count(), make_count)
    assert r.status == "created"
    assert r.Next() and r.Recv() == 0
    r = hop(r, make_count)
    assert r.status == "suspended"
    assert list(r) == [1, 2]


def test_a_send_pending_at_marshal_is_delivered_after_unmarshal() -> None:
    make = lambda: NewWithReturn[int, int](echo, durable=True)  # noqa: E731
    c = make()
    c.Next()
    c.Send(40)
    r = hop(c, make)
    assert r.Next() and r.Recv() == 40
    c.close()
    r.close()


def test_a_send_after_unmarshal_wins_over_the_restored_one() -> None:
    make = lambda: NewWithReturn[int, int](echo, durable=True)  # noqa: E731
    c = make()
    c.Next()
    c.Send(40)
    r = hop(c, make)
    r.Send(2)
    assert r.Next() and r.Recv() == 2
    c.close()
    r.close()


def test_resuming_a_restored_coroutine_with_nothing_sent_follows_the_none_rule() -> None:
    make = lambda: NewWithReturn[int, int](echo, durable=True)  # noqa: E731
    c = make()
    c.Next()
    r = hop(c, make)
    with pytest.raises(YieldTypeError, match="resumed without a value"):
        r.Next()
    c.close()
    make_opt = lambda: NewWithReturn[int, object](optional_echo, durable=True)  # noqa: E731
    o = make_opt()
    o.Next()
    o = hop(o, make_opt)
    assert list(o) == [1, 2] and o.Result() == [None, None, None]


def test_unmarshal_into_a_started_coroutine_raises_resume_error() -> None:
    c = make_count()
    c.Next()
    with pytest.raises(ResumeError, match="has not started"):
        c.Context().Unmarshal(c.Context().Marshal())
    c.close()


def test_marshal_of_a_restored_coroutine_before_next_gives_an_equivalent_state() -> None:
    c = make_count()
    c.Next()
    b = c.Context().Marshal()
    r = make_count()
    r.Context().Unmarshal(b)
    assert r.Context().Marshal() == b
    c.close()


def test_marshal_from_inside_the_body_resumes_after_the_last_event() -> None:
    # A state taken while running holds the yields so far; the restored body replays them
    # and runs live from there, to its next yield.
    SAVED.clear()
    make = lambda: New[int, Any](self_marshal, durable=True)  # noqa: E731
    c = make()
    assert c.Next() and c.Next() and c.Recv() == 1
    r = make()
    r.Context().Unmarshal(SAVED[0])
    assert r.status == "suspended"
    assert r.Next() and r.Recv() == 1
    assert not r.Next()
    c.close()


SAVED: list[bytes] = []


def self_marshal() -> None:
    Yield[int, Any](0)
    SAVED.append(coroutine.LoadContext[int, Any]().Marshal())
    Yield[int, Any](1)


# -- divergence ------------------------------------------------------------------------------


def test_replay_divergence_raises_invalid_state_naming_the_yield_and_the_values() -> None:
    make = lambda: New[int, Any](switchable, durable=True)  # noqa: E731
    c = make()
    for _ in range(3):
        c.Next()
    b = c.Context().Marshal()
    MODE["flip"] = True
    try:
        r = make()
        r.Context().Unmarshal(b)  # only decodes: fine
        match = r"yield 1 differs: the body yielded 20, the recorded run yielded 2"
        with pytest.raises(InvalidStateError, match=match):
            r.Next()
        assert r.Done()
        assert not r.Next()
    finally:
        MODE["flip"] = False
    c.close()


def test_a_body_that_ends_before_the_recorded_position_raises_invalid_state() -> None:
    make = lambda: New[int, Any](switchable, durable=True)  # noqa: E731
    c = make()
    for _ in range(3):
        c.Next()
    b = c.Context().Marshal()
    MODE["early"] = True
    try:
        r = make()
        r.Context().Unmarshal(b)
        with pytest.raises(InvalidStateError, match="returned after 2 yields"):
            r.Next()
        assert r.Done()
    finally:
        MODE["early"] = False
    c.close()


def test_a_divergence_cannot_be_swallowed_by_the_body() -> None:
    c = New[int, Any](functools.partial(_swallowing, False), durable=True)
    c.Next()
    c.Next()
    b = c.Context().Marshal()
    r = New[int, Any](functools.partial(_swallowing, False), durable=True)
    r.Context().Unmarshal(b)
    MODE["flip"] = True
    try:
        with pytest.raises(InvalidStateError):
            r.Next()
        assert r.Done()
    finally:
        MODE["flip"] = False
    c.close()


def _swallowing(_: bool) -> None:
    while True:
        try:
            Yield[int, Any](1 if not MODE["flip"] else 2)
        except Exception:
            pass


def test_an_exception_thrown_into_a_yield_is_replayed() -> None:
    make = lambda: NewWithReturn[int, Any](thrown_into, durable=True)  # noqa: E731
    c = make()
    c.Next()
    assert c.throw(KeyError("k1")) == 1
    c = hop(c, make)
    assert c.Next() and c.Recv() == 2
    c = hop(c, make)
    assert not c.Next()
    assert c.Result() == ["caught k1"]


# -- side effects ----------------------------------------------------------------------------


def test_side_effect_exceptions_are_recorded_and_raised_again_on_replay() -> None:
    CALLS.clear()
    make = lambda: NewWithReturn[str, Any](effect_that_fails, durable=True)  # noqa: E731
    c = make()
    assert c.Next() and c.Recv() == "retry after ('down', 503)"
    r = hop(c, make)
    assert not r.Next() and r.Result() == "gave up"
    assert CALLS == ["called"]
    c.close()


def test_side_effect_outside_a_durable_coroutine_just_calls() -> None:
    assert SideEffect(lambda: 42) == 42
    c = NewWithReturn[int, Any](functools.partial(SideEffect, functools.partial(int, "7")))
    assert not c.Next() and c.Result() == 7


def test_side_effect_in_a_volatile_coroutine_nested_in_a_durable_one_is_recorded() -> None:
    CALLS.clear()
    make = lambda: New[int, Any](nested_effects, durable=True)  # noqa: E731
    c = make()
    assert c.Next() and c.Recv() == 1
    r = hop(c, make)
    assert r.Next() and r.Recv() == 2
    assert CALLS == ["effect"]
    r.close()
    c.close()


def nested_effects() -> None:
    inner = New[int, Any](effect_then_yield)
    while inner.Next():
        Yield[int, Any](inner.Recv())


def test_yield_inside_a_side_effect_raises_not_durable() -> None:
    c = New[int, Any](yield_in_effect, durable=True)
    with pytest.raises(NotDurableError, match="Yield inside a SideEffect"):
        c.Next()


# -- what cannot be marshalled ---------------------------------------------------------------


def test_an_unencodable_sent_value_makes_marshal_raise_saying_which() -> None:
    c = NewWithReturn[int, Any](functools.partial(_yield_n, 2), durable=True)
    c.Next()
    c.Send(object())
    c.Next()
    with pytest.raises(NotDurableError, match=r"value sent to yield 0.*builtins\.object"):
        c.Context().Marshal()
    c.close()


def test_an_unencodable_pending_send_makes_marshal_raise() -> None:
    c = NewWithReturn[int, Any](functools.partial(_yield_n, 2), durable=True)
    c.Next()
    c.Send(object())
    with pytest.raises(NotDurableError, match="pending Send cannot be encoded"):
        c.Context().Marshal()
    c.close()


def _yield_n(n: int) -> list[Any]:
    return [Yield[int, Any](i) for i in range(n)]


# -- the program's fingerprint ---------------------------------------------------------------

PROGRAM = """
from typing import Any
from coroutine import Yield

def work() -> None:
    for i in range(3):
        Yield[int, Any](i {op} 1)
"""


def test_state_from_a_changed_entry_function_is_rejected(tmp_path: Path) -> None:
    mod = tmp_path / "durable_fp_prog.py"
    mod.write_text(PROGRAM.format(op="+"))
    sys.path.insert(0, str(tmp_path))
    try:
        prog = importlib.import_module("durable_fp_prog")
        c = New[int, Any](prog.work, durable=True)
        c.Next()
        b = c.Context().Marshal()
        c.close()
        mod.write_text("\n\n# moved down, same code\n" + PROGRAM.format(op="+"))
        prog = importlib.reload(prog)
        same = New[int, Any](prog.work, durable=True)
        same.Context().Unmarshal(b)
        assert same.Next() and same.Recv() == 2
        same.close()
        mod.write_text(PROGRAM.format(op="*"))
        prog = importlib.reload(prog)
        changed = New[int, Any](prog.work, durable=True)
        with pytest.raises(InvalidStateError, match="its code has changed"):
            changed.Context().Unmarshal(b)
        assert changed.status == "created"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("durable_fp_prog", None)


def test_state_of_another_signature_is_rejected() -> None:
    c = make_count()
    c.Next()
    b = c.Context().Marshal()
    other = New[object, Any](count_to_three, durable=True)
    with pytest.raises(InvalidStateError, match=r"coroutine of \[int, Any\]"):
        other.Context().Unmarshal(b)
    c.close()


def test_failed_unmarshal_leaves_the_coroutine_as_it_was() -> None:
    c = make_count()
    c.Next()
    c.Next()
    b = c.Context().Marshal()
    c.close()
    r = make_count()
    with pytest.raises(InvalidStateError, match="checksum"):
        r.Context().Unmarshal(b[:-1] + bytes([b[-1] ^ 1]))
    assert r.status == "created"
    assert list(r) == [0, 1, 2]


def test_unmarshal_names_foreign_bytes_and_other_versions() -> None:
    c = make_count()
    b = c.Context().Marshal()
    with pytest.raises(InvalidStateError, match="not a coroutine state"):
        make_count().Context().Unmarshal(b"PK\x03\x04" + b[4:])
    with pytest.raises(InvalidStateError, match="format version 9"):
        make_count().Context().Unmarshal(b[:4] + b"\x09" + b[5:])
    with pytest.raises(InvalidStateError, match="too short"):
        make_count().Context().Unmarshal(b[:10])
    with pytest.raises(TypeError, match="bytes Marshal returned"):
        make_count().Context().Unmarshal("text")  # type: ignore[arg-type]


# -- stops, nesting, drivers -----------------------------------------------------------------

FINALLY: list[str] = []


def guarded() -> None:
    try:
        while True:
            Yield[int, Any](1)
    finally:
        FINALLY.append("finally")


def test_a_stopped_durable_coroutine_unwinds_and_marshals_as_done() -> None:
    FINALLY.clear()
    c = New[int, Any](guarded, durable=True)
    c.Next()
    c.Stop()
    assert not c.Next() and FINALLY == ["finally"]
    r = hop(c, lambda: New[int, Any](guarded, durable=True))
    assert r.Done() and FINALLY == ["finally"]


def test_stopping_a_restored_coroutine_before_next_replays_and_runs_its_finally() -> None:
    FINALLY.clear()
    c = New[int, Any](guarded, durable=True)
    c.Next()
    state = c.Context().Marshal()
    c.close()
    FINALLY.clear()
    r = New[int, Any](guarded, durable=True)
    r.Context().Unmarshal(state)
    r.Stop()
    assert r.Next() is False
    assert r.Done()
    assert FINALLY == ["finally"]


def inner_with_effect() -> None:
    Yield[int, Any](SideEffect(lambda: CALLS.append("inner") or len(CALLS)))
    Yield[int, Any](-1)


def outer_of_durable() -> None:
    inner = New[int, Any](inner_with_effect, durable=True)
    while inner.Next():
        Yield[int, Any](inner.Recv())


def test_a_side_effect_in_a_durable_coroutine_nested_in_another_runs_once() -> None:
    CALLS.clear()
    make = lambda: New[int, Any](outer_of_durable, durable=True)  # noqa: E731
    c = make()
    assert c.Next() and c.Recv() == 1
    r = hop(c, make)
    assert r.Next() and r.Recv() == -1
    assert CALLS == ["inner"]
    r.close()
    c.close()


def test_run_drives_a_restored_coroutine_to_its_end() -> None:
    make = lambda: NewWithReturn[int, int](echo, durable=True)  # noqa: E731
    c = make()
    c.Next()
    c.Send(5)
    r = hop(c, make)
    assert coroutine.Run(r, lambda v: v + 1) == 5 + 6 + 12
    c.close()


def test_an_abandoned_restored_coroutine_is_simply_freed() -> None:
    import weakref

    c = make_count()
    c.Next()
    r = hop(c, make_count)
    ref = weakref.ref(r)
    del r
    assert ref() is None
    c.close()


def reordered() -> None:
    keys = ["a", "b", "c"] if not MODE["flip"] else ["c", "b", "a"]
    Yield[dict[str, int], Any]({k: 1 for k in keys})
    Yield[dict[str, int], Any]({"end": 1})
    Yield[dict[str, int], Any]({"end": 2})


def test_a_yielded_dict_equal_but_built_in_another_order_replays() -> None:
    make = lambda: New[dict[str, int], Any](reordered, durable=True)  # noqa: E731
    c = make()
    c.Next()
    c.Next()
    state = c.Context().Marshal()
    c.close()
    MODE["flip"] = True
    try:
        r = make()
        r.Context().Unmarshal(state)
        assert r.Next() and r.Recv() == {"end": 2}
        r.close()
    finally:
        MODE["flip"] = False
