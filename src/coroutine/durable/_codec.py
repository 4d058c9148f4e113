"""The value codec of durable coroutines: a small tagged binary format that runs no code when
it decodes.

Theory of operation. A value is one tag byte followed by its payload; every encoding is
self-delimiting, so encodings can be concatenated and read back one after the other
(`decode_from`). The tags are the builtin types of SPEC §6, plus two escapes:

    N None   T True   F False   i int      f float    s str      b bytes
    l list   t tuple  d dict    S set      Z frozenset
    R registered type: name, then the encoding of what the type's `encode` returned
    P pickled type:    name, then the pickle (only for types registered with `RegisterPickle`)

Lengths and counts are unsigned LEB128 varints; ints are a varint byte count then the
two's-complement big-endian bytes; floats are IEEE-754 big-endian doubles; strings are UTF-8
(lone surrogates allowed). Types are matched exactly (``type(v) is int``), never by
``isinstance``: a subclass would decode as its base, silently, so it must be registered.

Decoding builds only builtin containers and scalars. The only code it runs is what a program
registered itself: a registered type's `decode`, and `pickle.loads` for a type registered with
`RegisterPickle`, and only when the name in the bytes is registered in this process. A pickle
in bytes that name no pickled type is rejected before anything reads it.

The *canonical* form (`canonical`, used for digests) is the same encoding with the items of
sets, frozensets and dicts sorted by their own encodings, so that equal values have equal
canonical forms in every process (``str`` hashing, hence set order, changes per process).
"""

from __future__ import annotations

import marshal
import pickle
import struct
import threading
import zlib
from collections.abc import Callable
from hashlib import blake2b
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "DecodeError",
    "EncodeError",
    "canonical",
    "decode",
    "decode_from",
    "digest",
    "encode",
    "register",
    "register_pickle",
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
_DIGEST_HEAD = [bytes((n,)) for n in range(16)]


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


def _short(v: object) -> str:
    """`repr(v)` cut to 80 characters; never raises (an int over 4,300 digits has no repr)."""
    if type(v) is int and v.bit_length() > 256:
        return f"<an int of {v.bit_length()} bits>"
    try:
        text = repr(v)
    except Exception:
        text = f"<{type(v).__qualname__} object>"
    return text if len(text) <= 80 else text[:77] + "..."


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


# -- decoding --------------------------------------------------------------------------------

# What decoded objects cost in memory, roughly (CPython 3.10-3.13, 64-bit): a fixed part per
# object, and a part per item (its slot in the container and, for hash tables, their slack).
_COST_INT, _COST_FLOAT, _COST_STR, _COST_BYTES = 36, 24, 56, 40
_COST_LIST, _COST_TUPLE, _COST_DICT, _COST_SET = (64, 8), (48, 8), (100, 56), (216, 56)

# Keys whose hash a state cannot choose to collide: str and bytes hashes are keyed per process
# (SipHash), and an int below 2**61 - 1 in magnitude hashes to itself. Other keys (big ints,
# floats, tuples, frozensets, registered types) are counted per hash value, and a container
# with more than _MAX_SAME_HASH of them sharing one hash is refused: inserting n keys of one
# hash costs n**2 comparisons (a hash-flooding attack).
_SAFE_KEYS = (str, bytes, bool, type(None))
_MAX_SAME_HASH = 16


class Budget:
    """How many bytes of decoded objects one decoding may still build (see `decode_from`)."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def charge(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise DecodeError(
                f"the decoded values would take more than {self.limit:,} bytes of memory, "
                "out of proportion to the bytes given (a decompression bomb?)"
            )


def budget_for(size: int) -> Budget:
    """The memory allowed for decoding `size` bytes: 64 times their size, plus 1 MiB."""
    return Budget(64 * size + (1 << 20))


class _Frame:
    """A container being decoded: its tag, the items still to read, those read."""

    __slots__ = ("items", "left", "name", "tag")

    def __init__(self, tag: int, left: int, name: str = "") -> None:
        self.tag = tag
        self.left = left
        self.items: list[Any] = []
        self.name = name


class _Decoder:
    """Reads values without recursion: containers are kept on an explicit stack, so a state
    decodes the same at any depth of the caller's stack."""

    __slots__ = ("budget", "buf", "end", "pos", "registry")

    def __init__(self, buf: bytes, pos: int, registry: bool, budget: Budget | None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf)
        self.registry = registry
        self.budget = budget if budget is not None else budget_for(len(buf) - pos)

    def _take(self, n: int) -> bytes:
        start = self.pos
        stop = start + n
        if stop > self.end:
            raise DecodeError(
                f"truncated: {n} bytes needed at offset {start}, {self.end - start} left"
            )
        self.pos = stop
        return self.buf[start:stop]

    def _uvarint(self) -> int:
        n = shift = 0
        buf = self.buf
        for _ in range(10):
            if self.pos >= self.end:
                raise DecodeError(f"truncated inside a length at offset {self.pos}")
            b = buf[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7
        raise DecodeError(f"a length at offset {self.pos} is longer than 10 bytes")

    def _count(self) -> int:
        n = self._uvarint()
        if n > self.end - self.pos:  # every item takes at least one byte
            raise DecodeError(f"a count of {n} items at offset {self.pos} exceeds the bytes left")
        return n

    def _str(self) -> str:
        raw = self._take(self._count())
        try:
            return bytes(raw).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid UTF-8 in a string: {exc}") from None

    def _scalar(self, tag: int) -> Any:
        """The scalar of `tag` (its tag byte read), or `_NO_KEY` if `tag` is not a scalar's."""
        if tag == 0x69:  # i
            size = self._count()
            if size == 0:
                raise DecodeError("an int of zero bytes")
            self.budget.charge(_COST_INT + size)
            return int.from_bytes(self._take(size), "big", signed=True)
        if tag == 0x73:  # s
            s = self._str()
            self.budget.charge(_COST_STR + len(s))
            return s
        if tag == 0x4E:  # N
            return None
        if tag == 0x54:  # T
            return True
        if tag == 0x46:  # F
            return False
        if tag == 0x66:  # f
            self.budget.charge(_COST_FLOAT)
            return _F64.unpack(self._take(8))[0]
        if tag == 0x62:  # b
            raw = bytes(self._take(self._count()))
            self.budget.charge(_COST_BYTES + len(raw))
            return raw
        return _NO_KEY

    def dec(self) -> Any:
        stack: list[_Frame] = []
        while True:
            if self.pos >= self.end:
                raise DecodeError(f"truncated: a value is missing at offset {self.pos}")
            tag = self.buf[self.pos]
            self.pos += 1
            value = self._scalar(tag)
            if value is _NO_KEY:
                frame = self._open(tag, len(stack))
                if frame.left:
                    stack.append(frame)
                    continue
                value = self._close(frame)
            while stack:  # hand the value to its container, closing the full ones
                top = stack[-1]
                top.items.append(value)
                top.left -= 1
                if top.left:
                    break
                stack.pop()
                value = self._close(top)
            else:
                return value

    def _open(self, tag: int, depth: int) -> _Frame:
        """Start a container (or registered value) whose tag byte was just read."""
        if depth >= MAX_DEPTH:
            raise DecodeError(f"containers nest more than {MAX_DEPTH} deep")
        if tag in _CONTAINERS:
            n = self._count()
            fixed, per_item = _CONTAINERS[tag]
            self.budget.charge(fixed + per_item * n)
            return _Frame(tag, 2 * n if tag == 0x64 else n)
        if tag == 0x52 or tag == 0x50:  # R P
            name = self._str()
            reg = _by_name.get(name) if self.registry else None
            if reg is None or (reg[1] is None) != (tag == 0x50):
                kind = "pickled" if tag == 0x50 else "registered"
                how = "with RegisterPickle" if tag == 0x50 else "with Register"
                raise DecodeError(
                    f"the bytes hold a {kind} type {name!r} that is not registered {how} in "
                    "this process"
                )
            if tag == 0x50:
                frame = _Frame(tag, 0, name)
                frame.items.append(self._take(self._count()))
                return frame
            return _Frame(tag, 1, name)
        raise DecodeError(f"unknown tag byte {tag:#04x} at offset {self.pos - 1}")

    def _close(self, frame: _Frame) -> Any:
        tag, items = frame.tag, frame.items
        if tag == 0x6C:  # l
            return items
        if tag == 0x74:  # t
            return tuple(items)
        if tag == 0x64:  # d
            keys = items[0::2]
            _check_keys(keys)
            return dict(zip(keys, items[1::2], strict=True))
        if tag == 0x53 or tag == 0x5A:  # S Z
            _check_keys(items)
            return set(items) if tag == 0x53 else frozenset(items)
        return self._registered(frame)

    def _registered(self, frame: _Frame) -> Any:
        cls, decode_fn = _by_name[frame.name]
        if decode_fn is None:
            try:
                value = pickle.loads(frame.items[0])
            except Exception as exc:
                raise DecodeError(f"cannot unpickle a {frame.name}: {_short(exc)}") from None
            if type(value) is not cls:
                raise DecodeError(f"unpickling a {frame.name} gave a {type(value).__qualname__}")
            return value
        try:
            return decode_fn(frame.items[0])
        except RecursionError:
            raise
        except Exception as exc:
            raise DecodeError(
                f"the decode function registered for {frame.name} failed: {_short(exc)}"
            ) from None


_CONTAINERS = {0x6C: _COST_LIST, 0x74: _COST_TUPLE, 0x64: _COST_DICT, 0x53: _COST_SET}
_CONTAINERS[0x5A] = _COST_SET  # Z


def _check_keys(keys: list[Any]) -> None:
    """Refuse unhashable keys, and many keys of one hash (quadratic to insert)."""
    counts: dict[int, int] | None = None
    for k in keys:
        t = type(k)
        if t in _SAFE_KEYS or (t is int and -_SAFE_INT < k < _SAFE_INT):
            continue
        try:
            h = hash(k)
        except TypeError:
            raise DecodeError(f"unhashable {t.__name__} as a dict key or set item") from None
        if counts is None:
            counts = {}
        n = counts[h] = counts.get(h, 0) + 1
        if n > _MAX_SAME_HASH:
            raise DecodeError(
                f"more than {_MAX_SAME_HASH} keys of one container share the hash {h} "
                "(a hash-flooding attack?)"
            )


_SAFE_INT = (1 << 61) - 1


def decode_from(
    buf: bytes, pos: int, *, registry: bool = True, budget: Budget | None = None
) -> tuple[Any, int]:
    """Decode the value starting at `buf[pos]`; return it and the position after it.

    With ``registry=False`` registered and pickled types are refused. `budget` bounds the
    memory the decoded objects may take (default: `budget_for` the bytes from `pos` on);
    share one across the values of one input.

    Raises:
        DecodeError: the bytes are not a valid encoding (truncated, unknown tag, too deep,
            unregistered type, a registered decode function failed, too many keys of one
            hash, or over budget).
    """
    d = _Decoder(buf, pos, registry, budget)
    value = d.dec()
    return value, d.pos


def decode(buf: bytes, *, registry: bool = True, budget: Budget | None = None) -> Any:
    """Decode exactly one value filling `buf`; `DecodeError` on anything else."""
    value, end = decode_from(buf, 0, registry=registry, budget=budget)
    if end != len(buf):
        raise DecodeError(f"{len(buf) - end} unexpected bytes after the value")
    return value
