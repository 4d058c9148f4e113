"""The value codec of durable state: round trips, canonical digests, refusals, fuzzed bytes."""

from __future__ import annotations

import enum
import pickle
import sys
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coroutine.durable import _codec, _decode, _digest
from coroutine.types import Register, RegisterPickle

scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False) | st.text() | st.binary()
)  # fmt: skip
hashables = st.recursive(
    scalars, lambda c: st.tuples(c, c) | st.frozensets(c, max_size=3), max_leaves=8
)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.tuples(c, c) | st.dictionaries(hashables, c, max_size=4)
    | st.sets(hashables, max_size=4) | st.frozensets(hashables, max_size=4),
    max_leaves=20,
)  # fmt: skip


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 == True is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@given(values)
def test_every_builtin_value_round_trips_with_its_exact_types(v: Any) -> None:
    assert same(_decode.decode(_codec.encode(v)), v)


@given(values)
def test_canonical_form_and_digest_depend_only_on_equality(v: Any) -> None:
    copy = _decode.decode(_codec.encode(v))
    assert _codec.canonical(copy) == _codec.canonical(v)
    assert _digest.matches(copy, _digest.digest(v))
    assert _digest.digest(copy)[-8:] == _digest.digest(v)[-8:]


def test_sets_and_dicts_have_one_canonical_form_whatever_their_order() -> None:
    a = {"b": 1, "a": 2}
    b = {"a": 2, "b": 1}
    assert _codec.encode(a) != _codec.encode(b)  # the plain encoding keeps dict order
    assert _codec.canonical(a) == _codec.canonical(b)
    assert _digest.matches({"zz", "y", "x"}, _digest.digest({"x", "y", "zz"}))


def test_a_reordered_container_matches_its_digest_and_another_value_does_not() -> None:
    recorded = _digest.digest({"a": 1, "b": [1, 2]})
    assert _digest.matches({"a": 1, "b": [1, 2]}, recorded)  # the quick sum
    assert _digest.matches({"b": [1, 2], "a": 1}, recorded)  # another order: the canonical part
    assert not _digest.matches({"a": 1, "b": [1, 3]}, recorded)
    assert not _digest.matches({"a": True, "b": [1, 2]}, recorded)
    assert not _digest.matches(("a", 1), recorded)


def test_small_digests_hold_the_value_and_large_ones_a_hash() -> None:
    assert _digest.describe_digest(_digest.digest("Fizz")) == "'Fizz'"
    long = _digest.digest("Fizz" * 10)
    assert len(long) == 9 and long[0] == 0xFF
    big = _digest.digest(list(range(100)))
    assert len(big) == 17 and big[0] == 0xFE
    assert _digest.describe_digest(big).startswith("a value with digest ")


def test_bools_ints_and_floats_stay_distinct() -> None:
    assert len({_digest.digest(v) for v in (1, True, 1.0)}) == 3


class Color(enum.IntEnum):
    RED = 1


class Opaque:
    pass


def test_unencodable_values_name_their_type_and_path_and_say_to_register() -> None:
    match = r"at \[1\]\['k'\]: its type .*Opaque.*Register"
    with pytest.raises(_codec.EncodeError, match=match) as info:
        _codec.encode([1, {"k": Opaque()}])
    assert info.value.path == "[1]['k']"
    assert isinstance(info.value.value, Opaque)


def test_subclasses_of_builtins_are_not_silently_encoded_as_their_base() -> None:
    with pytest.raises(_codec.EncodeError, match="not subclasses"):
        _codec.encode(Color.RED)


def test_self_containing_values_are_refused_not_overflowing_the_stack() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(_codec.EncodeError, match="nest more than"):
        _codec.encode(loop)


def test_deeply_nested_bytes_are_refused() -> None:
    deep = b"l\x01" * (_codec.MAX_DEPTH + 1) + b"N"
    with pytest.raises(_codec.DecodeError, match="nest more than"):
        _decode.decode(deep)


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


@pytest.fixture
def point() -> Any:
    Register(Point, lambda p: (p.x, p.y), lambda t: Point(*t))
    yield Point
    _codec.unregister(Point)


def test_registered_types_round_trip_inside_containers(point: Any) -> None:
    v = {"path": [Point(1, 2), Point(3, 4)]}
    assert _decode.decode(_codec.encode(v)) == v


def test_registered_types_are_refused_when_decoding_without_the_registration(point: Any) -> None:
    b = _codec.encode(Point(1, 2))
    _codec.unregister(Point)
    with pytest.raises(_codec.DecodeError, match="not registered"):
        _decode.decode(b)


def test_registering_a_builtin_or_a_taken_name_raises() -> None:
    with pytest.raises(TypeError, match="encoded by the codec itself"):
        Register(int, int, int)
    Register(Opaque, lambda o: None, lambda n: Opaque(), name="opaque")
    try:
        with pytest.raises(ValueError, match="already registered"):
            Register(Point, lambda p: None, lambda n: Point(0, 0), name="opaque")
    finally:
        _codec.unregister(Opaque)


def test_a_failing_registered_decoder_is_a_decode_error(point: Any) -> None:
    Register(Point, lambda p: (p.x, p.y), lambda t: Point(*t[:1]))
    with pytest.raises(_codec.DecodeError, match="decode function registered"):
        _decode.decode(_codec.encode(Point(1, 2)))


def test_pickle_is_used_only_for_types_registered_with_register_pickle() -> None:
    with pytest.raises(_codec.EncodeError):
        _codec.encode(Fraction(1, 3))
    RegisterPickle(Fraction)
    try:
        assert _decode.decode(_codec.encode([Fraction(1, 3)])) == [Fraction(1, 3)]
    finally:
        _codec.unregister(Fraction)


class Boom:
    def __reduce__(self) -> Any:
        return (_explode, ())


EXPLODED: list[int] = []


def _explode() -> None:
    EXPLODED.append(1)


def test_a_pickle_payload_in_the_bytes_is_never_executed() -> None:
    payload = pickle.dumps(Boom())
    name = b"fractions.Fraction"
    forged = b"P" + bytes([len(name)]) + name + bytes([len(payload)]) + payload
    with pytest.raises(_codec.DecodeError, match="not registered with RegisterPickle"):
        _decode.decode(forged)
    with pytest.raises(_codec.DecodeError, match="unknown tag"):
        _decode.decode(payload)
    assert EXPLODED == []


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_decode_error_only(b: bytes) -> None:
    try:
        _decode.decode(b)
    except _codec.DecodeError:
        pass


@given(values, st.data())
def test_truncated_encodings_raise_decode_error(v: Any, data: st.DataObject) -> None:
    b = _codec.encode(v)
    cut = data.draw(st.integers(0, len(b) - 1))
    with pytest.raises(_codec.DecodeError):
        _decode.decode(b[:cut])


@given(values)
def test_the_fast_canonical_path_gives_the_canonical_bytes(v: Any) -> None:
    fast = _digest._fast(v, 0)
    assert fast is None or fast == _codec.canonical(v)
    assert _digest.digest_and_canonical(v) == (_digest.digest(v), _codec.canonical(v))


def test_the_fast_canonical_path_takes_the_common_shapes() -> None:
    v = {"id": 7, "tags": ("a", "b"), "score": 2.5, "n": None, "raw": b"x", "sub": [{1: 2}]}
    assert _digest._fast(v, 0) == _codec.canonical(v)
    assert _digest._fast({1: 0, "a": 0}, 0) is None  # mixed keys: left to the encoder
    assert _digest._fast({True: 0}, 0) is None


def test_decoding_needs_no_stack_for_nesting() -> None:
    deep = b"l\x01" * (_codec.MAX_DEPTH - 1) + b"N"
    assert _at_depth(sys.getrecursionlimit() - 60, lambda: _decode.decode(deep)) is not None


def _at_depth(n: int, fn: Any) -> Any:
    return fn() if n <= 0 else _at_depth(n - 1, fn)
