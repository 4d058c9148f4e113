"""Digests of yielded values: what a durable state keeps of each value a body yields.

The replay checks that a body yields what the recorded run yielded, without the state
holding every yielded value: it holds a short, self-delimiting *digest* of each (`digest`),
that equal values match in any process (`matches`). Small scalars are their own canonical
encoding, so a diverging replay can say what was recorded (`describe_digest`); other values
are 8 bytes of BLAKE2b of their canonical encoding (`_codec.canonical`); containers also carry
a quick sum of their `marshal` form, which lets an unchanged container be matched without
computing its canonical encoding (the replay's hot path).
"""

from __future__ import annotations

import marshal
import zlib
from hashlib import blake2b
from typing import Any

from . import _codec
from ._codec import MAX_DEPTH, DecodeError, _short, canonical
from ._decode import decode

# Assigned, not imported: CPython 3.11 compiles ``_SCALARS.get(t)`` of an imported name as an
# attribute load (a bound method made at each call, on the replay's hot path).
_SCALARS = _codec._SCALARS

__all__ = ["describe_digest", "digest", "digest_and_canonical", "digest_size", "matches",
           "read_digest"]  # fmt: skip

_DIGEST_HEAD = [bytes((n,)) for n in range(16)]

_HEADS = {
    t: [tag + bytes((n,)) for n in range(0x80)]
    for t, tag in ((dict, b"d"), (list, b"l"), (tuple, b"t"))
}
_KEY_TYPES = frozenset((int, str, bytes))


def _fast(v: Any, depth: int) -> bytes | None:
    """`canonical(v)` for dicts with keys of one type among int, str and bytes, lists and
    tuples (fewer than 128 items each) of scalars and such containers; None for anything
    else (`canonical` then does the work, and raises what it must). The common shapes of
    yielded values, at half the encoder's cost: replay digests every yielded value."""
    t = type(v)
    heads = _HEADS.get(t)
    if heads is None or len(v) >= 0x80 or depth >= MAX_DEPTH:
        return None
    scalars = _SCALARS
    parts = [heads[len(v)]]
    append = parts.append
    if t is dict:
        if not v:
            return parts[0]
        key_type = type(next(iter(v)))
        if key_type not in _KEY_TYPES:
            return None
        key_enc = scalars[key_type]
        try:
            keys = sorted(v)
        except TypeError:  # keys of mixed types
            return None
        for k in keys:
            if type(k) is not key_type:
                return None
            append(key_enc(k))
            x = v[k]
            enc = scalars.get(type(x))
            part = enc(x) if enc is not None else _fast(x, depth + 1)
            if part is None:
                return None
            append(part)
    else:
        for x in v:
            enc = scalars.get(type(x))
            part = enc(x) if enc is not None else _fast(x, depth + 1)
            if part is None:
                return None
            append(part)
    return b"".join(parts)


def digest(value: Any) -> bytes:
    """A short, self-delimiting fingerprint of `value`, that equal values match in any
    process (`matches`; the bytes themselves may differ in the order-dependent part).

    Small scalars are their own canonical encoding (a length byte up to 15, then the bytes),
    so a replay that diverges can show what was recorded; other scalars are ``0xff`` and 8
    bytes of BLAKE2b of it. A container is ``0xfe``, 8 bytes summing its `marshal` form
    (fast to compute, but not canonical: it depends on dict and set order), then those 8
    bytes of BLAKE2b of its canonical encoding (`matches` uses the first when it can); or
    ``0xff`` and the hash alone if `marshal` refuses it. Raises `EncodeError` as `encode`
    does.
    """
    return digest_and_canonical(value)[0]


_CONTAINER_TYPES = frozenset((dict, list, tuple, set, frozenset))


def _quick(value: Any) -> bytes | None:
    """8 bytes summing the `marshal` form of a container; None if marshal refuses it."""
    try:
        m = marshal.dumps(value, 2)
    except Exception:  # a type marshal does not know (a subclass, a registered type), or deep
        return None
    return zlib.crc32(m).to_bytes(4, "big") + zlib.adler32(m).to_bytes(4, "big")


def digest_and_canonical(value: Any) -> tuple[bytes, bytes]:
    """`digest(value)` and the canonical encoding it was computed from."""
    t = type(value)
    scalar = _SCALARS.get(t)
    raw = scalar(value) if scalar is not None else _fast(value, 0) or canonical(value)
    quick = _quick(value) if t in _CONTAINER_TYPES else None
    if quick is not None:
        return b"\xfe" + quick + blake2b(raw, digest_size=8).digest(), raw
    if len(raw) <= 15:
        return _DIGEST_HEAD[len(raw)] + raw, raw
    return b"\xff" + blake2b(raw, digest_size=8).digest(), raw


def matches(value: Any, recorded: bytes) -> bool:
    """Whether `value` has the digest `recorded`, computed no further than needed: a
    container whose `marshal` form sums as recorded is the value recorded (marshal encodes
    exact types), without its canonical encoding. Raises `EncodeError` as `encode` does."""
    if recorded[:1] == b"\xfe" and type(value) in _CONTAINER_TYPES:
        if _quick(value) == recorded[1:9]:
            return True
        d = digest(value)  # equal values in another order, or another value
        return d[:1] == b"\xfe" and d[9:] == recorded[9:]
    return digest(value) == recorded


def read_digest(buf: bytes, pos: int) -> tuple[bytes, int]:
    """The digest starting at `buf[pos]` and the position after it; `DecodeError` if cut."""
    if pos >= len(buf):
        raise DecodeError("truncated: a digest is missing")
    size = digest_size(buf[pos])
    end = pos + size
    if end > len(buf):
        raise DecodeError("truncated inside a digest")
    return bytes(buf[pos:end]), end


def digest_size(head: int) -> int:
    """The size of a digest whose first byte is `head`; `DecodeError` if none has it."""
    if head <= 15:
        return head + 1
    if head == 0xFF:
        return 9
    if head == 0xFE:
        return 17
    raise DecodeError(f"bad digest length byte {head:#x}")


def describe_digest(d: bytes) -> str:
    """What a digest says about its value: the value itself if small and builtin."""
    if d[:1] != b"\xff" and d[:1] != b"\xfe":
        try:
            return _short(decode(d[1:], registry=False))
        except DecodeError:
            pass
    return f"a value with digest {d.hex()}"
