"""The compiled decoder loop against the Python one, on the same bytes: equal values, or the
same refusal; the same position after, and the same budget left, charge for charge.

`_decode._Decoder.py_dec` is the reference; the compiled `dec` (``_speedups_c/decode.c``) is
taken from the extension even on the pure run (``COROUTINE_PURE=1`` only keeps it from being
installed), so both runs of the suite compare the two. Inputs: real states (decoded from every
offset, as the log reader starts values anywhere), random values of every type the format
holds, registered and pickled types among them, mutated and truncated by a seeded RNG, under
the default budget and under small ones that run out at any charge; the dense values of the
cost criterion; nesting at the depth limit; hash floods and unhashable keys.
"""

from __future__ import annotations

import gc
import importlib
import math
import random
import struct
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

import coroutine
from coroutine import InvalidStateError, NewWithReturn, Yield
from coroutine.durable import _codec, _decode, _keys, inspect
from coroutine.types import Register, RegisterPickle

_ext: Any
try:
    _ext = importlib.import_module("coroutine._speedups")
except ImportError:  # pragma: no cover (a platform without a compiler: nothing to compare)
    _ext = None

pytestmark = pytest.mark.skipif(_ext is None, reason="coroutine._speedups was not built")

PY: Callable[[Any], Any] = _decode._Decoder.py_dec
C: Callable[[Any], Any] = _decode.COMPILED or (_decode.compiled(_ext) if _ext else PY)


class Point:
    def __init__(self, x: object, y: object) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return type(other) is Point and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))  # raises TypeError for unhashable fields


class Hostile:
    """Hashes by raising something other than TypeError (it propagates, from both)."""

    def __hash__(self) -> int:
        raise ValueError("no hash for you")


def _point(t: Any) -> Point:
    if t == ("nested", "bytes"):  # a decode function that decodes (re-entering the loop)
        return Point(_decode.decode(_codec.encode([1, "two"])), None)
    return Point(*t)


@pytest.fixture(autouse=True)
def registered() -> Any:
    Register(Point, lambda p: (p.x, p.y), _point, name="t.Point")
    Register(Hostile, lambda h: None, lambda n: Hostile(), name="t.Hostile")
    RegisterPickle(Fraction, name="t.Fraction")
    yield
    for cls in (Point, Hostile, Fraction):
        _codec.unregister(cls)


# -- comparing -----------------------------------------------------------------------------


def shape(v: Any) -> Any:
    """`v` as nested tuples of (type, content): equal shapes, equal values of equal types
    (floats by their bits, so that -0.0, nan and 0.0 are told apart)."""
    t = type(v)
    if t is float:
        return ("float", struct.pack(">d", v))
    if t is list or t is tuple:
        return (t.__name__, tuple(shape(x) for x in v))
    if t is dict:
        return ("dict", tuple((shape(k), shape(x)) for k, x in v.items()))
    if t is set or t is frozenset:
        return (t.__name__, tuple(sorted(repr(shape(x)) for x in v)))
    if t is Point:
        return ("Point", shape(v.x), shape(v.y))
    if t is Hostile:
        return ("Hostile",)
    return (t.__name__, v)


def outcome(
    dec: Callable[[Any], Any],
    buf: bytes,
    pos: int = 0,
    end: int | None = None,
    registry: bool = True,
    limit: int | None = None,
) -> tuple[Any, ...]:
    budget = _decode.budget_for(len(buf) - pos) if limit is None else _decode.Budget(limit)
    d = _decode._Decoder(buf, pos, registry, budget)
    if end is not None:
        d.end = end
    try:
        v = dec(d)
    except Exception as exc:  # DecodeError, or what a registered type's hash raised
        return ("raised", type(exc), str(exc), d.pos, budget.left)
    return ("decoded", shape(v), d.pos, budget.left)


def agree(buf: bytes, **kw: Any) -> tuple[Any, ...]:
    """Both outcomes, asserted equal; the outcome."""
    py, c = outcome(PY, buf, **kw), outcome(C, buf, **kw)
    assert c == py, (buf[:80], kw)
    return py


# -- inputs --------------------------------------------------------------------------------

HASH_ZERO = [(2**61 - 1) * k for k in range(1, 40)]  # ints past the safe range, hash 0


def scalar(rng: random.Random) -> Any:
    kind = rng.randrange(12)
    if kind == 0:
        return rng.choice((None, True, False))
    if kind == 1:
        return rng.randrange(-300, 300)
    if kind == 2:
        return rng.randrange(-(2**70), 2**70) * rng.choice((1, 2**64, 2**200))
    if kind == 3:
        return rng.choice((0.0, -0.0, math.inf, -math.inf, math.nan, 1.5, -2.25e300))
    if kind == 4:
        return rng.random() * 10 ** rng.randrange(-20, 20)
    if kind == 5:
        return "".join(rng.choice("ab\x00é\u20ac\U0001f600\ud800") for _ in range(rng.randrange(6)))
    if kind == 6:
        return rng.randbytes(rng.randrange(5))
    if kind == 7:
        return rng.choice(HASH_ZERO)
    if kind == 8:
        return Point(rng.randrange(9), rng.choice(("y", None)))
    if kind == 9:
        return Fraction(rng.randrange(1, 9), rng.randrange(1, 9))
    return "k" * rng.randrange(3)


def hashable(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(5)
    if kind == 0 and depth < 3:
        return tuple(hashable(rng, depth + 1) for _ in range(rng.randrange(3)))
    if kind == 1 and depth < 3:
        return frozenset(hashable(rng, depth + 1) for _ in range(rng.randrange(3)))
    return scalar(rng)


def value(rng: random.Random, depth: int = 0) -> Any:
    if depth >= 4 or rng.random() < 0.3:
        return scalar(rng)
    kind = rng.randrange(6)
    n = rng.randrange(6)
    if kind == 0:
        return [value(rng, depth + 1) for _ in range(n)]
    if kind == 1:
        return tuple(value(rng, depth + 1) for _ in range(n))
    if kind == 2:
        return {hashable(rng, depth): value(rng, depth + 1) for _ in range(n)}
    if kind == 3:
        return {hashable(rng, depth) for _ in range(n)}
    if kind == 4:
        return frozenset(hashable(rng, depth) for _ in range(n))
    return Point(value(rng, depth + 1), value(rng, depth + 1))


INTERESTING = b"NTFifsbltdSZRP\x00\x01\x7f\x80\xff"


def mutate(b: bytes, rng: random.Random) -> bytes:
    out = bytearray(b)
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(7)
        i = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            out[min(i, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1:
            out[i:i] = bytes([rng.choice(INTERESTING)])
        elif kind == 2:
            del out[i : i + rng.randrange(1, 4)]
        elif kind == 3:
            out[i:i] = out[i : i + rng.randrange(1, 9)]
        elif kind == 4:
            del out[i:]
        elif kind == 5:  # a long or huge count
            out[i:i] = rng.choice((b"\x80" * rng.randrange(1, 11) + b"\x01", b"\xff" * 9 + b"\x7f"))
        elif out:
            out[min(i, len(out) - 1)] = rng.randrange(256)
    return bytes(out)


def body() -> list[object]:
    sent = [Yield[object, object](v) for v in ("a", 2, (3, 4.5), {"k": [5]}, {b"x", None})]
    return sent


def real_states() -> list[bytes]:
    """Saved states of `body`, which yields and receives values of many types."""
    answers: list[object] = [[1.5, (None,)], {1: b"x"}, "text", frozenset({7}), None, -(2**80)]
    c = NewWithReturn[object, object](body, durable=True)
    states, chain = [c.Context().Marshal()], c.Context().MarshalDelta()
    while c.Next():
        c.Send(answers.pop())
        states.append(c.Context().Marshal())
        chain += c.Context().MarshalDelta()
    return [*states, chain]


STATES = real_states()


def reseal(b: bytes) -> bytes:
    """Mutated bytes with a valid checksum, so that the mutation reaches the decoder."""
    hasher = _keys.hasher(None)
    hasher.update(b[:-16])
    tag: bytes = hasher.digest()
    return b[:-16] + tag


# -- the tests -----------------------------------------------------------------------------


def test_the_compiled_loop_is_installed_unless_pure() -> None:
    if coroutine.ACCELERATED:
        assert _decode._Decoder.dec is _decode.COMPILED is not None
    else:
        assert _decode._Decoder.dec is _decode._Decoder.py_dec and _decode.COMPILED is None
    assert C is not PY


def test_real_states_decode_alike_from_every_offset() -> None:
    decoded = 0
    for b in STATES:
        for pos in range(len(b)):
            decoded += agree(b, pos=pos)[0] == "decoded"
            agree(b, pos=pos, end=pos + (len(b) - pos) // 2)
    assert decoded > 200  # the values of the logs and headers, not only refusals


def test_mutated_real_states_inspect_alike() -> None:
    """The whole reader (`inspect`: header, log, pending value) with one loop, then the other."""
    rng = random.Random(21)
    compiled_dec = _decode._Decoder.dec
    seen = set()
    try:
        for i in range(300):
            b = reseal(mutate(rng.choice(STATES), rng))
            results = []
            for dec in (PY, C):
                _decode._Decoder.dec = dec  # type: ignore[method-assign, assignment]
                try:
                    results.append(str(inspect(b)))
                except InvalidStateError as exc:
                    results.append(f"refused: {exc}")
            assert results[0] == results[1], (i, b)
            seen.add(results[0].startswith("refused"))
    finally:
        _decode._Decoder.dec = compiled_dec  # type: ignore[method-assign]
    assert seen == {True, False}


def test_random_values_and_their_mutations_decode_alike() -> None:
    rng = random.Random(2021)
    counts = {"decoded": 0, "raised": 0}
    for _ in range(2500):
        b = _codec.encode(value(rng))
        assert agree(b)[0] == "decoded"
        counts[agree(b, registry=False)[0]] += 1
        for _ in range(2):
            counts[agree(mutate(b, rng))[0]] += 1
        # a small budget runs out at some charge: the same one, with the same left
        counts[agree(b, limit=rng.randrange(-1, 40 * len(b) + 400))[0]] += 1
    assert min(counts.values()) > 1000, counts


def test_random_bytes_decode_alike() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        b = bytes(rng.choice(INTERESTING) if rng.random() < 0.6 else rng.randrange(256)
                  for _ in range(rng.randrange(1, 30)))  # fmt: skip
        agree(b)


@pytest.mark.parametrize("item", [b"l\x00", b"d\x00", b"N", b"i\x01\x05", b"l\x01N", b"S\x00"])
def test_dense_values_decode_alike(item: bytes) -> None:
    """The dense inputs of the cost criterion (S\\x00 at 64 KB is over the budget)."""
    for size in (1000, 1 << 16):
        n = size // len(item)
        raw = b"l" + _codec._uvarint(n) + item * n
        result = agree(raw)
        assert result[0] == ("raised" if item == b"S\x00" and size > 1000 else "decoded")


def test_nesting_up_to_the_limit_and_one_past_it() -> None:
    """A container, a registered or a pickled value takes a level; a registered one's
    encoding (a tuple here) one more."""
    point, fraction = _codec.encode(Point(1, 2)), _codec.encode(Fraction(1, 2))
    levels = {b"N": 0, b"l\x00": 1, b"t\x00": 1, fraction: 1, point: 2}
    for depth in range(_codec.MAX_DEPTH - 3, _codec.MAX_DEPTH + 2):
        for inner, more in levels.items():
            result = agree(b"l\x01" * depth + inner)
            assert (result[0] == "decoded") == (depth + more <= _codec.MAX_DEPTH), result


def test_hash_floods_and_unhashable_keys_are_refused_alike() -> None:
    flood = [_codec.encode(k) for k in HASH_ZERO[:20]]
    others = [_codec.encode(k) for k in (0.5, (1, 2), 2**70 + 1)]  # hashed, each its own hash
    unhashable, hostile = [_codec.encode([1])], [_codec.encode(Hostile())]
    for n in (16, 17, 20):
        for odd in ([], others, unhashable, hostile):
            for at in (0, 5, n):
                items = flood[:n]
                items[at:at] = odd
                count = _codec._uvarint(len(items))
                for tag in (b"S", b"Z"):
                    result = agree(tag + count + b"".join(items))
                    fine = n <= 16 and odd in ([], others)
                    assert (result[0] == "decoded") == fine, result
                agree(b"d" + count + b"".join(k + b"N" for k in items))
    # two floods: the error names the hash whose 17th key comes first (0), not its last
    ones = [_codec.encode(k + 1) for k in HASH_ZERO[:17]]  # hash 1
    items = ones[:16] + flood[:17] + ones[16:] + flood[17:18]
    result = agree(b"S" + _codec._uvarint(len(items)) + b"".join(items))
    assert "share the hash 0 " in result[2], result


def test_the_budget_is_overdrawn_where_the_loop_would_refuse_first() -> None:
    """The compiled decoder reads ahead to refuse a value over budget without building it;
    whatever would be refused before the overdraw still is, with its own message."""
    bomb = b"l" + _codec._uvarint(2000) + b"S\x00" * 2000  # 700 KB of sets: over 100 KB
    flood = b"".join(_codec.encode(k) for k in HASH_ZERO[:17])
    before = {
        "nothing": b"N",
        "a hash flood": b"S\x11" + flood,
        "a flood in a dict": b"d\x11" + b"".join(_codec.encode(k) + b"N" for k in HASH_ZERO[:17]),
        "an unhashable item": b"S\x02N" + _codec.encode([1]),
        "a hashable tuple": b"Z\x01" + _codec.encode((1, 2)),
        "invalid UTF-8": b"s\x02\xff\xfe",
        "valid UTF-8": _codec.encode("\u20ac"),
        "a registered type": _codec.encode(Point(1, 2)),
        "a pickled type": _codec.encode(Fraction(1, 2)),
        "an int of no bytes": b"i\x00",
        "an unknown tag": b"Q",
        "a long count": b"l\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00",
        "nesting too deep": b"l\x01" * 101 + b"N",
    }
    refused_by_budget = set()
    for what, head in before.items():
        for tail in (bomb, bomb[:-1]):  # truncated after the overdraw: still the budget
            result = agree(b"l\x02" + head + tail, limit=100_000)
            assert result[0] == "raised", (what, result)
            if "bytes of memory" in result[2]:
                refused_by_budget.add(what)
    assert refused_by_budget == {"nothing", "a hashable tuple", "valid UTF-8", "a long count",
                                 "a registered type", "a pickled type"}  # fmt: skip


def test_registered_types_decode_alike_and_may_decode_themselves() -> None:
    for v in (Point(1, 2), [Point(("nested", "bytes"), None)], Point("nested", "bytes"),
              {Point(1, 2): Fraction(1, 3)}, Point([1], 2), [Point(1, 2)] * 3):  # fmt: skip
        b = _codec.encode(v)
        agree(b)
        agree(b, registry=False)
    bad = b"R" + _codec._uvarint(7) + b"t.Point" + _codec.encode((1, 2, 3))  # decode raises
    assert agree(bad)[0] == "raised"
    forged = b"P" + _codec._uvarint(10) + b"t.Fraction" + b"\x03abc"  # not a pickle
    assert agree(forged)[0] == "raised"


def test_a_decoder_over_other_buffers_falls_back_to_the_reference() -> None:
    b = _codec.encode([1, "x", {2: 3.5}])
    for buf in (bytearray(b), memoryview(b)):
        assert outcome(C, buf) == outcome(PY, buf)  # type: ignore[arg-type]


def test_the_collector_runs_as_the_program_left_it() -> None:
    """The loop pauses the collector; a registered type's code runs with it as it was."""
    seen: list[bool] = []

    def record(t: Any) -> Point:
        seen.append(gc.isenabled())
        return Point(*t)

    Register(Point, lambda p: (p.x, p.y), record, name="t.Point")
    b = _codec.encode([Point(1, 2)] * 2)
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            outcome(C, b)
            outcome(C, b"l\x02" + b"l\x00" * 2)
            assert gc.isenabled() is enabled
            assert seen == [enabled] * 2
            seen.clear()
    finally:
        (gc.enable if was else gc.disable)()
