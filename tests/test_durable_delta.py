"""SPEC §6 Growth: MarshalDelta returns what was recorded since the last save; a full state
followed by its deltas restores the latest; two resumptions of one state are noticed."""

from __future__ import annotations

from typing import Any

import pytest

from coroutine import InvalidStateError, New, NewWithReturn, NotDurableError, Yield


def summing(n: int = 50) -> int:
    total = 0
    for i in range(n):
        total += Yield[int, int](i)
    return total


def make() -> Any:
    return NewWithReturn[int, int](summing, durable=True)


def save_every_step(steps: int) -> tuple[Any, list[bytes]]:
    c = make()
    chunks = []
    for _ in range(steps):
        assert c.Next()
        c.Send(c.Recv() * 10)
        chunks.append(c.Context().MarshalDelta())
    return c, chunks


def test_the_first_marshal_delta_is_a_full_state() -> None:
    c, chunks = save_every_step(1)
    r = make()
    r.Context().Unmarshal(chunks[0])
    assert r.Next() and r.Recv() == 1
    c.close()
    r.close()


def test_full_state_and_deltas_restore_the_latest_position_at_every_step() -> None:
    c, chunks = save_every_step(6)
    for k in range(1, 7):
        r = make()
        r.Context().Unmarshal(b"".join(chunks[:k]))
        assert r.Next() and r.Recv() == k  # the answer to yield k-1 was pending
        r.close()
    c.close()


def test_saving_after_every_step_writes_bytes_linear_in_the_steps() -> None:
    c, small = save_every_step(20)
    d, large = save_every_step(40)
    c.close()
    d.close()
    per_step = (sum(map(len, large)) - sum(map(len, small))) / 20
    # A delta holds one step's events and the position (about 45 bytes), and 40 bytes of
    # framing (magic, the tag of the frame it follows, its own tag); not the whole history.
    assert per_step < 100
    assert len(large[-1]) <= len(large[1]) + 8  # the 40th delta is no bigger than the 2nd


def test_a_restored_coroutine_appends_deltas_to_the_state_it_came_from() -> None:
    c, chunks = save_every_step(3)
    c.close()
    r = make()
    r.Context().Unmarshal(b"".join(chunks))
    assert r.Next() and r.Recv() == 3
    r.Send(30)
    chunks.append(r.Context().MarshalDelta())
    again = make()
    again.Context().Unmarshal(b"".join(chunks))
    assert again.Next() and again.Recv() == 4
    again.close()
    r.close()


def test_a_state_resumed_twice_is_refused_when_both_deltas_are_appended() -> None:
    c, chunks = save_every_step(2)
    c.close()
    forks = []
    for answer in (1, 2):
        r = make()
        r.Context().Unmarshal(b"".join(chunks))
        r.Next()
        r.Send(answer)
        forks.append(r.Context().MarshalDelta())
        r.close()
    with pytest.raises(InvalidStateError, match="resumed twice"):
        make().Context().Unmarshal(b"".join(chunks) + forks[0] + forks[1])


def test_a_missing_or_reordered_delta_is_refused() -> None:
    c, chunks = save_every_step(4)
    c.close()
    with pytest.raises(InvalidStateError, match="does not follow the frame before it"):
        make().Context().Unmarshal(chunks[0] + chunks[2])
    with pytest.raises(InvalidStateError, match="does not follow the frame before it"):
        make().Context().Unmarshal(chunks[0] + chunks[2] + chunks[1])
    with pytest.raises(InvalidStateError, match="a MarshalDelta alone"):
        make().Context().Unmarshal(chunks[1])


def test_a_delta_after_the_end_restores_as_done_with_the_result() -> None:
    c = NewWithReturn[int, int](lambda_free_two, durable=True)
    chunks = []
    while c.Next():
        c.Send(5)
        chunks.append(c.Context().MarshalDelta())
    chunks.append(c.Context().MarshalDelta())
    r = NewWithReturn[int, int](lambda_free_two, durable=True)
    r.Context().Unmarshal(b"".join(chunks))
    assert r.Done() and r.Result() == 10


def lambda_free_two() -> int:
    return Yield[int, int](0) + Yield[int, int](1)


def test_marshal_delta_of_a_volatile_coroutine_raises_not_durable() -> None:
    with pytest.raises(NotDurableError, match="MarshalDelta needs a durable coroutine"):
        New[int, Any](summing, durable=False).Context().MarshalDelta()
