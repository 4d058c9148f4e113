"""SPEC §6 Versions: version=, Patched, ContinueAsNew; and replay_elsewhere, the aid that finds
nondeterminism by replaying under other hash seeds."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from coroutine import (
    InvalidStateError,
    New,
    NewWithReturn,
    NotInCoroutineError,
    Patched,
    Run,
    Yield,
)
from coroutine.durable import ContinueAsNew, inspect, replay_elsewhere

OLD = """
from typing import Any
from coroutine import Yield, Patched

def work() -> list[int]:
    Yield[int, Any](1)
    Yield[int, Any](2)
    Yield[int, Any](3)
    return []
"""

NEW = """
from typing import Any
from coroutine import Yield, Patched

def work() -> list[int]:
    Yield[int, Any](1)
    if Patched("audit-step"):
        Yield[int, Any](100)
    Yield[int, Any](2)
    Yield[int, Any](3)
    return []
"""

REMOVED = OLD.replace("Yield[int, Any](2)", "Patched('other')\n    Yield[int, Any](2)")


@pytest.fixture
def program(tmp_path: Path) -> Iterator[Any]:
    path = tmp_path / "durable_versions_prog.py"
    sys.path.insert(0, str(tmp_path))

    def load(source: str) -> ModuleType:
        path.write_text(source)
        sys.modules.pop("durable_versions_prog", None)
        importlib.invalidate_caches()
        return importlib.import_module("durable_versions_prog")

    try:
        yield load
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("durable_versions_prog", None)


def run_to(mod: ModuleType, value: int, version: str = "1") -> bytes:
    c = New[int, Any](mod.work, durable=True, version=version)
    while c.Next() and c.Recv() != value:
        pass
    state = c.Context().Marshal()
    c.close()
    return state


def resume(mod: ModuleType, state: bytes, version: str = "1") -> list[int]:
    c = New[int, Any](mod.work, durable=True, version=version)
    c.Context().Unmarshal(state)
    return list(c)


def test_an_old_history_replays_the_old_branch_and_a_new_run_takes_the_new(program: Any) -> None:
    old = run_to(program(OLD), 2)
    new = program(NEW)
    assert resume(new, old) == [3]  # replayed without the audit step, then live
    assert list(New[int, Any](new.work, durable=True, version="1")) == [1, 100, 2, 3]
    assert resume(new, run_to(new, 2)) == [3]  # a new history replays the new branch


def test_a_state_resumed_under_the_new_code_keeps_the_branch_it_took(program: Any) -> None:
    old = run_to(program(OLD), 1)  # suspended before the patch point
    new = program(NEW)
    c = New[int, Any](new.work, durable=True, version="1")
    c.Context().Unmarshal(old)
    assert c.Next() and c.Recv() == 100  # reached live: the new code runs
    state = c.Context().Marshal()
    c.close()
    assert resume(new, state) == [2, 3]


def test_removing_a_patch_while_histories_hold_its_marker_diverges(program: Any) -> None:
    new = program(NEW)
    state = run_to(new, 2)
    old = program(OLD)
    c = New[int, Any](old.work, durable=True, version="1")
    c.Context().Unmarshal(state)
    with pytest.raises(InvalidStateError, match=r"recorded run passed Patched\('audit-step'\)"):
        c.Next()
    assert c.Done()
    c = New[int, Any](program(REMOVED).work, durable=True, version="1")
    c.Context().Unmarshal(state)
    with pytest.raises(InvalidStateError, match="diverged"):
        c.Next()


def test_a_version_accepts_edited_code_and_another_version_is_refused(program: Any) -> None:
    state = run_to(program(OLD), 2)
    edited = program(OLD.replace("return []", "return [0]"))
    assert resume(edited, state) == [3]
    with pytest.raises(InvalidStateError, match=r"recorded with version='1'.*version='2'"):
        New[int, Any](edited.work, durable=True, version="2").Context().Unmarshal(state)
    with pytest.raises(InvalidStateError, match="recorded with version='1', this coroutine has no"):
        New[int, Any](edited.work, durable=True).Context().Unmarshal(state)


def test_patched_is_true_outside_durable_coroutines_and_refuses_bad_ids() -> None:
    assert Patched("x") is True
    c = NewWithReturn[int, Any](lambda: Patched("x"))
    assert not c.Next() and c.Result() is True
    with pytest.raises(TypeError, match="non-empty str"):
        Patched("")


def test_patched_answers_the_same_for_an_id_within_a_run(program: Any) -> None:
    c = NewWithReturn[int, Any](patched_twice, durable=True)
    assert not c.Next() and c.Result() == (True, True)
    assert inspect(c.Context().MarshalDelta()).status == "done"


def patched_twice() -> tuple[bool, bool]:
    return Patched("a"), Patched("a")


def test_version_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="version= takes a str"):
        New[int, Any](patched_twice, durable=True, version=3)  # type: ignore[arg-type]


# -- continue as new ------------------------------------------------------------------------------


def account(balance: int = 0, rounds: int = 0) -> int:
    for _ in range(3):
        balance += Yield[int, int](balance)
    if rounds < 2:
        raise ContinueAsNew(balance, rounds + 1)
    return balance


def test_continue_as_new_starts_a_successor_with_the_carried_arguments() -> None:
    coro = NewWithReturn[int, int](account, durable=True)
    runs = 0
    while True:
        runs += 1
        try:
            result = Run(coro, lambda b: 1)
            break
        except ContinueAsNew as c:
            assert coro.Done()
            coro = c.successor()
            assert inspect(coro.Context().Marshal()).entry.startswith("functools.partial(")
    assert runs == 3 and result == 9
    assert coro.Result() == 9


def test_continue_as_new_outside_a_durable_body_raises() -> None:
    with pytest.raises(NotInCoroutineError, match="inside the body of a durable coroutine"):
        ContinueAsNew(1)


# -- determinism aid ------------------------------------------------------------------------------


def tour() -> None:
    for city in {"paris", "rome", "oslo", "lima", "kyiv", "bern", "doha", "riga"}:
        Yield[str, Any](city)


def sorted_tour() -> None:
    for city in sorted({"paris", "rome", "oslo", "lima", "kyiv", "bern", "doha", "riga"}):
        Yield[str, Any](city)


def make_tour() -> Any:
    return New[str, Any](tour, durable=True)


def make_sorted_tour() -> Any:
    return New[str, Any](sorted_tour, durable=True)


def test_replay_elsewhere_reports_the_first_divergence_of_set_order() -> None:
    c = make_tour()
    for _ in range(4):
        c.Next()
    state = c.Context().Marshal()
    c.close()
    found = replay_elsewhere(state, f"{__name__}:make_tour", hashseeds=range(1, 6))
    assert found is not None
    assert "yield" in found.message and "differs" in found.message
    assert str(found).startswith(f"with PYTHONHASHSEED={found.hashseed}: ")


def test_replay_elsewhere_finds_nothing_in_a_deterministic_body() -> None:
    c = make_sorted_tour()
    for _ in range(4):
        c.Next()
    state = c.Context().Marshal()
    c.close()
    assert replay_elsewhere(state, f"{__name__}:make_sorted_tour", hashseeds=(1, 2)) is None
