"""SPEC §6 Untrusted bytes: each hostile state named in issue 13 is refused with
InvalidStateError saying why, in bounded time and memory, running nothing it names."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
import types
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coroutine import InvalidStateError, NewWithReturn, Yield
from coroutine.durable import _codec, _decode, _digest, _keys, _state, configure
from coroutine.types import Register


def body() -> list[object]:
    return [Yield[int, int](i) for i in range(3)]


def text_body() -> list[object]:
    return [Yield[int, str](i) for i in range(3)]


def make(fn: Any = body) -> Any:
    types_ = (int, int) if fn is body else (int, str)
    return NewWithReturn.__class_getitem__(types_)(fn, durable=True, version="v1")


def forge(events: bytes = b"", nevents: int = 0, *, sent: bytes | None = None, fn: Any = body,
          yields: int | None = None) -> bytes:  # fmt: skip
    """A state of `make(fn)` suspended at yield `yields` (default: the number of events),
    with a valid checksum (or MAC, under the configured key)."""
    sig = "[int, int]" if fn is body else "[int, str]"
    name = f"{__name__}.{fn.__name__}"
    header = (sig, b"f\0" + name.encode(), name, b"", "v1", b"", 0)
    n = nevents if yields is None else yields
    d, raw = _digest.digest_and_canonical(n)
    position = (_state.K_SUSPENDED, nevents, n, d, raw, sent, None)
    return _state.Chain.full(header, events, position)[0]


@pytest.fixture(autouse=True)
def no_key_nor_transform() -> Iterator[None]:
    saved = _keys._Settings.keys, _keys._Settings.transform
    _keys._Settings.keys, _keys._Settings.transform = (), None
    yield
    _keys._Settings.keys, _keys._Settings.transform = saved


def uvarint(n: int) -> bytes:
    return _codec._uvarint(n)


def refused(b: bytes, match: str, fn: Any = body, seconds: float = 2.0) -> InvalidStateError:
    start = time.perf_counter()
    with pytest.raises(InvalidStateError, match=match) as info:
        make(fn).Context().Unmarshal(b)
    assert time.perf_counter() - start < seconds
    return info.value


def test_the_forgery_helper_makes_states_that_restore() -> None:
    c = make()
    c.Context().Unmarshal(forge(b"Y" + _digest.digest(0) + _codec.encode(5), 1, sent=b"i\x01\x07"))
    assert c.Next() and c.Recv() == 2
    c.close()


# -- cost ---------------------------------------------------------------------------------------

P61 = (1 << 61) - 1  # ints k * P61 all hash to 0


def test_forty_thousand_dict_keys_of_one_hash_are_refused_in_linear_time() -> None:
    n = 40_000
    flood = b"d" + uvarint(n) + b"".join(_codec._int_bytes(k * P61) + b"N" for k in range(1, n))
    flood += _codec._int_bytes(0) + b"N"
    refused(forge(sent=flood), "keys of one container share the hash", seconds=2.0)
    set_items = b"S" + uvarint(n) + b"".join(_codec._int_bytes(k * P61) for k in range(n))
    refused(forge(sent=set_items), "share the hash", seconds=2.0)


def test_decoded_memory_is_capped_relative_to_the_input() -> None:
    n = 50_000  # empty sets: 2 bytes each in the state, 216 bytes each once built
    bomb = b"l" + uvarint(n) + b"S\x00" * n
    state = forge(sent=bomb)
    tracemalloc.start()
    try:
        refused(state, "out of proportion to the bytes given", seconds=10)  # traced: slower
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * len(state) + (4 << 20)


def test_decoding_stays_within_its_memory_budget_when_it_succeeds() -> None:
    n = 100_000  # empty lists: 2 bytes each, 64 once built: within the budget, and measured
    value = b"l" + uvarint(n) + b"l\x00" * n
    tracemalloc.start()
    try:
        got = _decode.decode(value, budget=_decode.budget_for(len(value)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(got) == n
    assert peak < 64 * len(value) + (1 << 20)


def test_a_million_nested_containers_are_refused_without_recursion() -> None:
    deep = b"l\x01" * 1_000_000 + b"N"
    refused(forge(sent=deep), "nest more than 100 deep")


def test_a_valid_state_unmarshals_with_little_stack_left() -> None:
    nested: Any = 0
    for _ in range(90):
        nested = [nested]
    state = forge(sent=_codec.encode(nested), fn=text_body)
    room = sys.getrecursionlimit() - len(inspect_stack()) - 30  # leave 30 frames
    c = make(text_body)
    with pytest.raises(InvalidStateError, match="not of the coroutine's S"):
        at_depth(room, lambda: c.Context().Unmarshal(state))
    ok = forge(sent=_codec.encode("x" * 10), fn=text_body)
    at_depth(room, lambda: c.Context().Unmarshal(ok))
    assert c.Next() and c.Recv() == 1
    c.close()


def inspect_stack() -> list[object]:
    frames = []
    f = sys._getframe()
    while f is not None:
        frames.append(f)
        f = f.f_back  # type: ignore[assignment]
    return frames


def at_depth(n: int, fn: Any) -> Any:
    return fn() if n <= 0 else at_depth(n - 1, fn)


class Recursive:
    pass


def _recurse(_: object) -> Recursive:
    return _recurse(_)


def test_a_real_recursion_error_is_not_relabelled_as_a_malformed_state() -> None:
    Register(Recursive, lambda r: 0, _recurse, name="test.Recursive")
    try:
        state = forge(sent=b"R" + uvarint(14) + b"test.Recursive" + b"i\x01\x00")
        with pytest.raises(RecursionError):
            make().Context().Unmarshal(state)
    finally:
        _codec.unregister(Recursive)


# -- no code run ----------------------------------------------------------------------------------


def exc_event(kind: bytes, module: str, qual: str, args: tuple[Any, ...] = ()) -> bytes:
    digest = _digest.digest(0) if kind == b"T" else b""
    return kind + digest + _codec.encode((module, qual, args))


def replay_raises(state: bytes, match: str, fn: Any = body) -> None:
    c = make(fn)
    c.Context().Unmarshal(state)
    with pytest.raises(InvalidStateError, match=match):
        c.Next()
    assert c.Done()


def test_a_forged_exception_never_imports_its_module() -> None:
    assert "antigravity" not in sys.modules
    replay_raises(forge(exc_event(b"T", "antigravity", "Fly"), 1), "no such Exception subclass")
    assert "antigravity" not in sys.modules


def test_a_forged_exception_never_calls_a_module_getattr() -> None:
    calls: list[str] = []
    mod = types.ModuleType("hostile_lazy")
    mod.__getattr__ = lambda name: calls.append(name) or ValueError  # type: ignore[attr-defined]
    sys.modules["hostile_lazy"] = mod
    try:
        replay_raises(forge(exc_event(b"T", "hostile_lazy", "Lazy"), 1), "no such Exception")
    finally:
        del sys.modules["hostile_lazy"]
    assert calls == []


@pytest.mark.parametrize("name", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
def test_a_forged_base_exception_is_never_rebuilt(name: str) -> None:
    replay_raises(forge(exc_event(b"T", "builtins", name), 1), "no such Exception subclass")
    c = make()
    c.Context().Unmarshal(forge(exc_event(b"X", "builtins", name), 1, yields=0))
    with pytest.raises(InvalidStateError, match="no such Exception subclass"):
        c.Next()


INITS: list[tuple[Any, ...]] = []


class Audited(Exception):
    def __init__(self, *args: Any) -> None:
        INITS.append(args)
        super().__init__(*args)


def thrown_body() -> list[object]:
    try:
        Yield[int, int](0)
    except Audited as exc:
        return [exc.args]
    return []


def test_a_rebuilt_exception_has_its_args_and_its_init_is_not_called() -> None:
    # A state marshalled inside the body, after the driver threw Audited into yield 0.
    event = exc_event(b"T", __name__, "Audited", ("boom", 7))
    header = ("[int, int]", b"f\0" + f"{__name__}.thrown_body".encode(), "thrown_body", b"",
              "v1", b"", 0)  # fmt: skip
    running = (_state.K_RUNNING, 1, 1, None, None, None, None)
    t = NewWithReturn[int, int](thrown_body, durable=True, version="v1")
    t.Context().Unmarshal(_state.Chain.full(header, event, running)[0])
    assert not t.Next() and t.Result() == [("boom", 7)]
    assert INITS == []


# -- sends and messages ----------------------------------------------------------------------------


def test_a_restored_pending_send_is_checked_against_s() -> None:
    refused(forge(sent=_codec.encode("text")), r"pending Send 'text' is not of the coroutine's S")


def test_a_recorded_send_is_checked_against_s_when_replayed() -> None:
    event = b"Y" + _digest.digest(0) + _codec.encode("text")
    replay_raises(forge(event, 1), r"sends 'text', not of the coroutine's S")


def test_an_int_over_4300_digits_does_not_break_the_message() -> None:
    big = 10**5000
    err = refused(
        forge(sent=_codec.encode(big), fn=text_body), "pending Send <an int of", text_body
    )
    assert "bits>" in str(err)
    event = b"Y" + _digest.digest(0) + _codec.encode(big)
    replay_raises(forge(event, 1, fn=text_body), "sends <an int of 16610 bits>", text_body)


# -- keys and transforms ---------------------------------------------------------------------------


def marshal_one(c: Any) -> bytes:
    assert c.Next()
    c.Send(41)
    return bytes(c.Context().Marshal())


def test_a_signed_state_needs_its_key() -> None:
    configure(key="first-key-for-tests")
    c = make()
    state = marshal_one(c)
    c.close()
    r = make()
    r.Context().Unmarshal(state)
    assert r.Next() and r.Recv() == 1 and r.Result() is None
    r.close()
    configure(key=None)
    refused(state, "signed with a key, and none is set")
    configure(key="second-key-for-tests")
    refused(state, "MAC does not match")


def test_an_unsigned_state_is_refused_when_a_key_is_set() -> None:
    state = forge()
    configure(key="first-key-for-tests")
    refused(state, "not signed, but a state key is set")


def test_a_tampered_signed_state_is_refused_before_anything_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(key=b"a-secret-for-tests")
    c = make()
    state = marshal_one(c)
    c.close()
    decoded: list[int] = []
    real = _decode._Decoder.dec
    monkeypatch.setattr(_decode._Decoder, "dec", lambda self: decoded.append(1) or real(self))
    for i in range(len(state)):
        flipped = state[:i] + bytes([state[i] ^ 0x10]) + state[i + 1 :]
        with pytest.raises(InvalidStateError):
            make().Context().Unmarshal(flipped)
    assert decoded == []


class Reverse:
    """A toy transform (a real one encrypts, e.g. with cryptography's Fernet)."""

    def seal(self, data: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in reversed(data))

    def open(self, data: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in data)[::-1]


def test_a_transform_keeps_sent_values_out_of_the_bytes() -> None:
    configure(transform=Reverse())
    c = NewWithReturn[int, str](text_body, durable=True, version="v1")
    assert c.Next()
    c.Send("account-number-12345")
    c.Next()
    c.Send("card-4111111111111111")
    state = c.Context().Marshal() + c.Context().MarshalDelta()
    c.close()
    assert b"account-number" not in state and b"card-4111" not in state
    r = NewWithReturn[int, str](text_body, durable=True, version="v1")
    r.Context().Unmarshal(state)
    assert r.Next() and r.Recv() == 2
    r.Send("z")
    assert not r.Next() and r.Result() == ["account-number-12345", "card-4111111111111111", "z"]
    configure(transform=None)
    refused(state, "sealed by a transform", fn=text_body)


def test_the_key_comes_from_the_environment() -> None:
    script = (
        "from coroutine.durable import _keys; import sys; "
        "sys.exit(0 if _keys._Settings.keys == (_keys._derive('key-from-the-env'),) else 1)"
    )
    env = {"COROUTINE_STATE_KEY": "key-from-the-env", "PATH": ""}
    assert subprocess.run([sys.executable, "-c", script], env=env, check=False).returncode == 0


# -- fuzz -----------------------------------------------------------------------------------------


def valid_states() -> list[bytes]:
    out = []
    c = make()
    out.append(c.Context().MarshalDelta())
    while c.Next():
        c.Send(c.Recv() + 1)
        out[-1] += c.Context().MarshalDelta()
        out.append(c.Context().Marshal())
    return out


fuzz = settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)


@fuzz
@given(st.data(), st.booleans())
def test_fuzzed_states_give_invalid_state_or_restore(data: st.DataObject, keyed: bool) -> None:
    configure(key="key-of-the-fuzz-test" if keyed else None)
    states = valid_states()
    b = bytearray(data.draw(st.sampled_from(states)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(b) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del b[i : i + data.draw(st.integers(1, 8))]
        else:
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        if not b:
            break
    if data.draw(st.booleans()) and len(b) > 16 and not keyed:  # reach the decoder
        hasher = _keys.hasher(None)
        hasher.update(bytes(b[:-16]))
        b[-16:] = hasher.digest()
    c = make()
    try:
        c.Context().Unmarshal(bytes(b))
    except InvalidStateError:
        assert c.status == "created"
        return
    assert bytes(b) in states or not keyed  # a forgery passes only without a key
    try:
        while c.Next():
            c.Send(0)
    except InvalidStateError:
        pass
    assert c.Done()
