"""Bad input to Unmarshal: mutated, truncated, spliced, random and forged states give
InvalidStateError and nothing else, leave the coroutine as it was, and run no pickle."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coroutine import InvalidStateError, NewWithReturn, Yield
from coroutine.durable import _codec, _digest, _keys, _state


def body() -> list[object]:
    got: list[object] = [Yield[object, object](v) for v in ("a", 2, (3, 4), {"k": [5]})]
    return got


def make() -> Any:
    return NewWithReturn[object, object](body, durable=True)


def valid_states() -> list[bytes]:
    states = []
    c = make()
    states.append(c.Context().Marshal())
    sent: list[object] = [None, "text", {1: b"x"}, [1.5, (None,)], 7]
    while c.Next():
        c.Send(sent.pop())
        states.append(c.Context().Marshal())
    states.append(c.Context().Marshal())
    return states


STATES = valid_states()


def reseal(b: bytes) -> bytes:
    """Give mutated bytes a valid checksum, so the mutation reaches the decoder."""
    hasher = _keys.hasher(None)
    hasher.update(b[:-16])
    return b[:-16] + hasher.digest()


HEADER = ("[object, object]", b"f\0test_durable_state.body", "test_durable_state.body", b"",
          "v1", b"", 0)  # fmt: skip


def forge(events: bytes, nevents: int, sent: bytes | None = None) -> bytes:
    """A state suspended at its second yield, with a valid checksum (made with version "v1",
    so that no fingerprint is needed)."""
    d, raw = _digest.digest_and_canonical(2)
    position = (_state.K_SUSPENDED, nevents, 1, d, raw, sent, None)
    return _state.Chain.full(HEADER, events, position)[0]


def make_v1() -> Any:
    return NewWithReturn[object, object](body, durable=True, version="v1")


def only_invalid_state(b: bytes) -> None:
    c = make()
    try:
        c.Context().Unmarshal(b)
    except InvalidStateError:
        assert c.status == "created" and c.Recv() is None
        return
    # Unmarshal accepted the bytes; driving may diverge but must fail cleanly.
    try:
        while c.Next():
            c.Send(None)
    except InvalidStateError:
        pass
    assert c.Done()


state = st.sampled_from(STATES)
fuzz = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@fuzz
@given(state, st.data())
def test_bit_flips_give_invalid_state(b: bytes, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(b) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = b[:i] + bytes([b[i] ^ (1 << bit)]) + b[i + 1 :]
    with pytest.raises(InvalidStateError):
        make().Context().Unmarshal(flipped)
    only_invalid_state(reseal(flipped))


@fuzz
@given(state, st.data())
def test_truncations_give_invalid_state(b: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(b) - 1))
    with pytest.raises(InvalidStateError):
        make().Context().Unmarshal(b[:cut])
    if cut > 21:
        only_invalid_state(reseal(b[:cut]))


@fuzz
@given(state, state, st.data())
def test_splices_of_two_states_give_invalid_state_or_a_valid_one(
    a: bytes, b: bytes, data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(a)))
    j = data.draw(st.integers(0, len(b)))
    spliced = a[:i] + b[j:]
    if spliced not in STATES:
        with pytest.raises(InvalidStateError):
            make().Context().Unmarshal(spliced)
    only_invalid_state(reseal(spliced) if len(spliced) >= 16 else spliced)


@fuzz
@given(st.binary(max_size=300))
def test_random_bytes_give_invalid_state(b: bytes) -> None:
    with pytest.raises(InvalidStateError):
        make().Context().Unmarshal(b)
    with pytest.raises(InvalidStateError):
        make().Context().Unmarshal(b"CoRo\x02\x00F" + b)
    only_invalid_state(reseal(b"CoRo\x02\x00F" + b + bytes(16)))


RAN: list[str] = []


def _evil() -> None:
    RAN.append("pwned")


class Evil:
    def __reduce__(self) -> Any:
        return (_evil, ())


def test_a_pickle_payload_in_a_state_is_never_executed() -> None:
    name = b"builtins.object"
    payload = pickle.dumps(Evil())
    forged_value = b"P" + bytes([len(name)]) + name + bytes([len(payload)]) + payload
    good_event = b"Y" + _digest.digest("a") + _codec.encode("x")
    c = make_v1()
    c.Context().Unmarshal(forge(good_event, 1))  # the forgery is well made
    assert c.Next() and c.Recv() == (3, 4)
    c.close()
    with pytest.raises(InvalidStateError, match="not registered with RegisterPickle"):
        make_v1().Context().Unmarshal(forge(good_event, 1, sent=forged_value))
    c = make_v1()
    c.Context().Unmarshal(forge(good_event + b"E" + forged_value, 2))
    with pytest.raises(InvalidStateError, match="not registered with RegisterPickle"):
        c.Next()  # events are decoded as the replay meets them
    assert c.Done()
    assert RAN == []


def test_every_valid_state_restores() -> None:
    for b in STATES:
        c = make()
        c.Context().Unmarshal(b)
        while c.Next():
            c.Send(1)
        assert c.Done()
