"""The value codec of durable coroutines: a small tagged binary format that runs no code when
it decodes.

Theory of operation. A value is one tag byte followed by its payload; every encoding is
self-delimiting, so encodings can be concatenated and read back one after the other
(`_decode.decode_from`). The tags are the builtin types of SPEC §6, plus two escapes:

    N None   T True   F False   i int      f float    s str      b bytes
    l list   t tuple  d dict    S set      Z frozenset
    R registered type: name, then the encoding of what the type's `encode` returned
    P pickled type:    name, then the pickle (only for types registered with `RegisterPickle`)

Lengths and counts are unsigned LEB128 varints; ints are a varint byte count then the
two's-complement big-endian bytes; floats are IEEE-754 big-endian doubles; strings are UTF-8
(lone surrogates allowed). Types are matched exactly (``type(v) is int``), never by
``isinstance``: a subclass would decode as its base, silently, so it must be registered.

This module holds the format, the registry of types and the encoder; `_decode` reads the
format back (bounded, for hostile bytes), `_digest` fingerprints yielded values. Decoding
builds only builtin containers and scalars. The only code it runs is what a program
registered itself: a registered type's `decode`, and `pickle.loads` for a type registered with
`RegisterPickle`, and only when the name in the bytes is registered in this process. A pickle
in bytes that name no pickled type is rejected before anything reads it.

The *canonical* form (`canonical`, used for digests) is the same encoding with the items of
sets, frozensets and dicts sorted by their own encodings, so that equal values have equal
canonical forms in every process (``str`` hashing, hence set order, changes per process).
"""

from __future__ import annotations

import pickle
import struct
import threading
from collections.abc import Callable
from typing import Any

from . import _show

_short = _show.short  # the bounded repr of messages (callers use it through the codec too)

__all__ = [
    "MAX_DEPTH",
    "DecodeError",
    "EncodeError",
    "canonical",
    "encode",
    "register",
    "register_pickle",
    "unregister",
]

MAX_DEPTH = 100
"""How deeply containers may nest, in values encoded and in bytes decoded."""

_F64 = struct.Struct(">d")


class EncodeError(TypeError):
    """A value the codec cannot encode.

    Attributes:
        value: the offending value (not necessarily the one passed to `encode`).
        path: where it sits in the value passed, like ``[2]['name']``; empty at the top.
        reason: what is wrong with it and what to do.
    """

    def __init__(self, reason: str, value: object, path: str = "") -> None:
        super().__init__(reason)
        self.value = value
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        path = self.path if len(self.path) <= 120 else self.path[:117] + "..."
        where = f" at {path}" if path else ""
        return f"cannot encode {_short(self.value)}{where}: {self.reason}"


class DecodeError(ValueError):
    """Bytes that are not a valid encoding (the durable layer turns it into InvalidStateError)."""


# -- the registry ----------------------------------------------------------------------------

# Invariant: _by_type and _by_name describe the same registrations, one entry per class; a name
# belongs to one class. Written under _lock, read without it (dict reads are atomic).
_lock = threading.Lock()
_by_type: dict[type, tuple[str, Callable[[Any], Any] | None]] = {}  # encode None => pickle
_by_name: dict[str, tuple[type, Callable[[Any], Any] | None]] = {}  # decode None => pickle

_BUILTIN = (type(None), bool, int, float, str, bytes, list, tuple, dict, set, frozenset)


def _register(cls: type, encode: Any, decode: Any, name: str | None) -> str:
    if not isinstance(cls, type):
        raise TypeError(f"Register takes a class, got {cls!r}; pass the class itself")
    if cls in _BUILTIN:
        raise TypeError(
            f"{cls.__name__} is encoded by the codec itself and cannot be registered; "
            "register your own subclass or wrapper type instead"
        )
    if name is None:
        name = f"{cls.__module__}.{cls.__qualname__}"
    if not isinstance(name, str) or not name:
        raise TypeError(f"a registered type's name must be a non-empty str, got {name!r}")
    with _lock:
        owner = _by_name.get(name)
        if owner is not None and owner[0] is not cls:
            raise ValueError(
                f"the name {name!r} is already registered for {owner[0]!r}; pass "
                f"name='...' to register {cls!r} under another name"
            )
        old = _by_type.pop(cls, None)
        if old is not None:
            del _by_name[old[0]]
        _by_type[cls] = (name, encode)
        _by_name[name] = (cls, decode)
    return name


def register(
    cls: type, encode: Callable[[Any], Any], decode: Callable[[Any], Any], name: str | None
) -> str:
    """Encode instances of exactly `cls` as `encode(obj)`, decoded by `decode`; the name used."""
    if not callable(encode) or not callable(decode):
        raise TypeError(
            "Register(cls, encode, decode) takes two functions: encode(obj) -> an encodable "
            f"value, decode(value) -> obj; got {encode!r} and {decode!r}"
        )
    return _register(cls, encode, decode, name)


def register_pickle(cls: type, name: str | None) -> str:
    """Encode instances of exactly `cls` with pickle (unsafe for untrusted bytes)."""
    return _register(cls, None, None, name)


def unregister(cls: type) -> None:
    """Forget `cls` (for tests)."""
    with _lock:
        old = _by_type.pop(cls, None)
        if old is not None:
            del _by_name[old[0]]


# -- encoding --------------------------------------------------------------------------------


def _uvarint(n: int) -> bytes:
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int_bytes(n: int) -> bytes:
    size = ((n + (n < 0)).bit_length() >> 3) + 1  # minimal two's complement
    head = _INT_HEAD[size] if size < 0x80 else b"i" + _uvarint(size)
    return head + n.to_bytes(size, "big", signed=True)


_BYTE = [bytes((n,)) for n in range(0x100)]
_INT_HEAD = [b"i" + bytes((size,)) for size in range(0x80)]
_STR_HEAD = [b"s" + bytes((size,)) for size in range(0x80)]
_SMALL_INTS = {n: _int_bytes(n) for n in range(-128, 128)}


_STR_MEMO: dict[str, bytes] = {}  # encodings of short strings met often (dict keys, tags)


def _str_bytes(v: str) -> bytes:
    out = _STR_MEMO.get(v)
    if out is not None:
        return out
    out = _str_raw(v)
    if len(v) <= 16 and len(_STR_MEMO) < 4096:
        _STR_MEMO[v] = out
    return out


def _str_raw(v: str) -> bytes:
    try:
        raw = v.encode()
    except UnicodeEncodeError:  # lone surrogates
        raw = v.encode("utf-8", "surrogatepass")
    n = len(raw)
    return (_STR_HEAD[n] if n < 0x80 else b"s" + _uvarint(n)) + raw


# Scalars encode alone, without an _Encoder: the common case of a yield.
_SCALARS: dict[type, Callable[[Any], bytes]] = {
    int: lambda v: _SMALL_INTS.get(v) or _int_bytes(v),
    str: _str_bytes,
    type(None): lambda v: b"N",
    bool: lambda v: b"T" if v else b"F",
    float: lambda v: b"f" + _F64.pack(v),
    bytes: lambda v: b"b" + _uvarint(len(v)) + v,
}


_NO_KEY: Any = object()


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


class _Encoder:
    __slots__ = ("canon", "out")

    def __init__(self, canon: bool) -> None:
        self.canon = canon
        self.out: list[bytes] = []

    def enc(self, v: Any, depth: int) -> None:
        t = type(v)
        out = self.out
        scalar = _SCALARS.get(t)
        if scalar is not None:
            out.append(scalar(v))
            return
        if depth >= MAX_DEPTH:
            raise _too_deep(v)
        depth += 1
        if t is list or t is tuple:
            out.append((b"l" if t is list else b"t") + _uvarint(len(v)))
            i = 0
            try:
                for i, item in enumerate(v):  # noqa: B007 (read on error)
                    scalar = _SCALARS.get(type(item))
                    if scalar is not None:
                        out.append(scalar(item))
                    else:
                        self.enc(item, depth)
            except EncodeError as exc:
                exc.path = f"[{i}]{exc.path}"
                raise
        elif t is dict:
            out.append(b"d" + _uvarint(len(v)))
            if not self.canon:
                pairs = v.items()
            elif _sortable(v):  # one key type: sort by the keys themselves
                pairs = sorted(v.items(), key=_first)
            else:  # mixed key types: sort by encoding
                items = [self._alone(k, depth) + self._alone(x, depth, k) for k, x in v.items()]
                out.extend(sorted(items))
                return
            k = None
            try:
                for k, x in pairs:
                    self.enc(k, depth)
                    self.enc(x, depth)
            except EncodeError as exc:
                exc.path = f"[{_short(k)}]{exc.path}"
                raise
        elif t is set or t is frozenset:
            out.append((b"S" if t is set else b"Z") + _uvarint(len(v)))
            if self.canon and _sortable(v):
                out.extend(map(_SCALARS[type(next(iter(v)))], sorted(v)))
            else:
                items = [self._alone(x, depth) for x in v]
                if self.canon:
                    items.sort()
                out.extend(items)
        else:
            self._registered(v, t, depth)

    def _alone(self, v: object, depth: int, key: object = _NO_KEY) -> bytes:
        """`v` encoded on its own; `key` is its dict key, for the error's path."""
        scalar = _SCALARS.get(type(v))
        if scalar is not None:
            return scalar(v)
        sub = _Encoder(self.canon)
        try:
            sub.enc(v, depth)
        except EncodeError as exc:
            if key is not _NO_KEY:
                exc.path = f"[{_short(key)}]{exc.path}"
            raise
        return b"".join(sub.out)

    def _registered(self, v: object, t: type, depth: int) -> None:
        reg = _by_type.get(t)
        if reg is None:
            raise EncodeError(
                f"its type {t.__module__}.{t.__qualname__} is not encodable: durable state "
                "holds None, bool, int, float, str, bytes, list, tuple, dict, set and "
                "frozenset (exactly those types, not subclasses); register the type with "
                "coroutine.types.Register(cls, encode, decode)",
                v,
            )
        name, encode = reg
        raw = name.encode("utf-8", "surrogatepass")
        if encode is None:
            try:
                data = pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise EncodeError(f"pickle failed: {exc!r}", v) from exc
            self.out += [b"P", _uvarint(len(raw)), raw, _uvarint(len(data)), data]
            return
        try:
            inner = encode(v)
        except Exception as exc:
            raise EncodeError(
                f"the encode function registered for {name} raised {exc!r}", v
            ) from exc
        if type(inner) is t:
            raise EncodeError(
                f"the encode function registered for {name} returned a {t.__qualname__} "
                "again; it must return builtin values (a tuple or dict of fields, say)",
                v,
            )
        self.out += [b"R", _uvarint(len(raw)), raw]
        try:
            self.enc(inner, depth)
        except EncodeError as exc:
            exc.path = f"<{name}>{exc.path}"
            raise


def _sortable(items: Any) -> bool:
    """Whether `items` (keys or set items) are all ints, all strs or all bytes: then their
    own order is total and the same in every process."""
    it = iter(items)
    first = next(it, None)
    t = type(first)
    if t is not int and t is not str and t is not bytes:
        return False
    return all(type(x) is t for x in it)


def _too_deep(v: object) -> EncodeError:
    return EncodeError(
        f"containers nest more than {MAX_DEPTH} deep (or a container holds itself); "
        "flatten the value or register a type that encodes it flat",
        v,
    )


def encode(value: Any) -> bytes:
    """`value` as bytes.

    Raises:
        EncodeError: `value` holds something the codec cannot encode (the message says what
            and where), or nests deeper than `MAX_DEPTH`.
    """
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        return scalar(value)
    e = _Encoder(False)
    e.enc(value, 0)
    return b"".join(e.out)


def canonical(value: Any) -> bytes:
    """The encoding of `value` with set and dict items sorted: equal values, equal bytes."""
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        return scalar(value)
    e = _Encoder(True)
    e.enc(value, 0)
    return b"".join(e.out)
