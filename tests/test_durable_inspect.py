"""SPEC §6 Inspection: coroutine.durable.inspect and ``python -m coroutine.durable FILE``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coroutine import InvalidStateError, New, NewWithReturn, Yield
from coroutine.durable import StateInfo, _keys, configure, inspect
from coroutine.types import Register


def billing() -> int:
    total = 0
    for i in range(3):
        total += Yield[dict[str, Any], int]({"invoice": i, "amount": 10 * i})
    return total


def make() -> Any:
    return NewWithReturn[dict[str, Any], int](billing, durable=True, version="2026-12")


@pytest.fixture(autouse=True)
def no_key_nor_transform() -> Iterator[None]:
    saved = _keys._Settings.keys, _keys._Settings.transform
    _keys._Settings.keys, _keys._Settings.transform = (), None
    yield
    _keys._Settings.keys, _keys._Settings.transform = saved


def test_inspect_says_what_work_is_waiting() -> None:
    c = make()
    c.Next()
    c.Send(1)
    c.Next()
    info = inspect(c.Context().Marshal())
    c.close()
    assert info.entry == "test_durable_inspect.billing"
    assert info.signature == "[dict[str, Any], int]"
    assert info.version == "2026-12"
    assert info.status == "suspended"
    assert info.steps == 2 and info.events == 1
    assert info.pending == {"invoice": 1, "amount": 10}
    assert not info.has_pending_send and info.frames == 1 and info.resumes == 0


def test_inspect_reads_a_state_with_deltas_and_a_finished_one() -> None:
    c = make()
    chunks = []
    while c.Next():
        c.Send(5)
        chunks.append(c.Context().MarshalDelta())
    info = inspect(b"".join(chunks))
    assert (info.status, info.steps, info.frames, info.has_pending_send) == (
        "suspended",
        3,
        3,
        True,
    )
    assert info.pending == {"invoice": 2, "amount": 20}
    chunks.append(c.Context().MarshalDelta())
    done = inspect(b"".join(chunks))
    assert done.status == "done" and done.pending is None and done.frames == 4


def test_inspect_counts_resumes() -> None:
    c = make()
    c.Next()
    c.Send(1)
    state = c.Context().Marshal()
    c.close()
    r = make()
    r.Context().Unmarshal(state)
    assert inspect(r.Context().Marshal()).resumes == 0  # nothing new yet: the same state
    r.Next()
    assert inspect(r.Context().Marshal()).resumes == 1
    r.close()


class Invoice:
    def __init__(self, n: int) -> None:
        self.n = n


Register(Invoice, lambda i: i.n, Invoice, name="test.Invoice")


def invoices() -> None:
    Yield[Invoice, Any](Invoice(7))


def test_inspect_runs_no_registered_decoder_and_says_so() -> None:
    c = New[Invoice, Any](invoices, durable=True)
    c.Next()
    info = inspect(c.Context().Marshal())
    c.close()
    assert info.pending is None
    assert info.pending_note is not None and "test.Invoice" in info.pending_note


def test_inspect_checks_the_key_first() -> None:
    configure(key="the-key-of-this-test")
    c = make()
    c.Next()
    state = c.Context().Marshal()
    c.close()
    assert inspect(state).status == "suspended"
    configure(key=None)
    with pytest.raises(InvalidStateError, match="signed with a key"):
        inspect(state)
    assert inspect(state, key="the-key-of-this-test").steps == 1
    with pytest.raises(InvalidStateError, match="MAC does not match"):
        inspect(state, key="another-key-of-the-test")


def test_python_m_coroutine_durable_prints_the_state(tmp_path: Path) -> None:
    c = make()
    c.Next()
    path = tmp_path / "state.bin"
    path.write_bytes(c.Context().Marshal())
    c.close()
    out = subprocess.run(
        [sys.executable, "-m", "coroutine.durable", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "entry     test_durable_inspect.billing" in out.stdout
    assert "pending   {'amount': 0, 'invoice': 0}" in out.stdout  # canonical: keys sorted
    assert "version   2026-12" in out.stdout
    path.write_bytes(b"junk")
    bad = subprocess.run(
        [sys.executable, "-m", "coroutine.durable", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (
        bad.returncode == 1
        and "cannot inspect: these bytes are not a coroutine state" in bad.stderr
    )


def test_state_info_prints_one_field_a_line() -> None:
    c = make()
    c.Next()
    text = str(inspect(c.Context().Marshal()))
    c.close()
    assert text.splitlines()[0] == "entry     test_durable_inspect.billing"
    assert isinstance(inspect(c.Context().Marshal()), StateInfo)
