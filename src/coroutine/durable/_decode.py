"""Decoding durable state: the reader of `_codec`'s format, built for hostile bytes.

Theory of operation. Bytes handed to `decode` may have been written by anyone (a state is
authenticated only when a key is set). So the reader runs no code but what the program
registered (`_codec.register`), and bounds what it builds before it builds it:

* no recursion: containers are kept on an explicit stack, and nest at most `MAX_DEPTH` deep;
* memory: each object is charged to a `Budget` *before* it is allocated, at a cost that
  over-estimates what CPython takes for it, so decoded objects stay under the budget's limit
  (a decompression bomb is refused when it would pass it, not after). One `Budget` is shared
  by every value decoded from one state;
* time: a count is refused if it exceeds the bytes left (every item takes a byte), and a
  container holding more than `_MAX_SAME_HASH` keys of one hash is refused (inserting n keys
  of one hash costs n**2 comparisons: hash flooding).

Every refusal is a `DecodeError` saying why and where; the durable layer turns it into
`InvalidStateError`.
"""

from __future__ import annotations

import pickle
from typing import Any

from . import _codec
from ._codec import MAX_DEPTH, DecodeError, _short

# Assigned, not imported: CPython 3.11 compiles ``name.method()`` of an imported name as an
# attribute load (a bound method made at each call), of an assigned one as a method call.
_F64 = _codec._F64
_by_name = _codec._by_name

__all__ = ["Budget", "budget_for", "decode", "decode_from"]

_NOT_SCALAR: Any = object()

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
        n = self._count()
        self.budget.charge(_COST_STR + n)  # a str of n UTF-8 bytes takes at most n more
        raw = self._take(n)
        try:
            return bytes(raw).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid UTF-8 in a string: {exc}") from None

    def _scalar(self, tag: int) -> Any:
        """The scalar of `tag` (its tag byte read), or `_NOT_SCALAR` if `tag` is not a scalar's."""
        if tag == 0x69:  # i
            size = self._count()
            if size == 0:
                raise DecodeError("an int of zero bytes")
            self.budget.charge(_COST_INT + size)
            return int.from_bytes(self._take(size), "big", signed=True)
        if tag == 0x73:  # s
            return self._str()
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
            n = self._count()
            self.budget.charge(_COST_BYTES + n)
            return bytes(self._take(n))
        return _NOT_SCALAR

    def dec(self) -> Any:
        stack: list[_Frame] = []
        while True:
            if self.pos >= self.end:
                raise DecodeError(f"truncated: a value is missing at offset {self.pos}")
            tag = self.buf[self.pos]
            self.pos += 1
            value = self._scalar(tag)
            if value is _NOT_SCALAR:
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
                n = self._count()
                self.budget.charge(_COST_BYTES + n)
                frame.items.append(self._take(n))
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
