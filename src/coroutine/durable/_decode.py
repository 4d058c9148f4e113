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

`_Decoder.dec` as written here is the reference. With the accelerator loaded (see
`coroutine._accel`) the method is replaced by its compiled translation
(``_speedups_c/decode.c``, `COMPILED`), which reads the same slots, charges the same budget at
the same points, refuses with the same messages, and calls the functions below back for
what is rare: a count that is not a short varint (`_count`), a budget running out
(`Budget.charge`), registered and pickled types (`_registered_frame`, `_registered`). Dense
values cost it 5 to 20 times less CPU (benchmarks/bench_decode.py).
"""

from __future__ import annotations

import pickle
from typing import Any

from .. import _accel
from . import _codec
from ._codec import MAX_DEPTH, DecodeError, _short

# Assigned, not imported: CPython 3.11 compiles ``name.method()`` of an imported name as an
# attribute load (a bound method made at each call), of an assigned one as a method call.
_F64 = _codec._F64
_by_name = _codec._by_name

__all__ = ["Budget", "budget_for", "decode", "decode_from"]

# What decoded objects cost in memory at most (CPython 3.10-3.13, 64-bit), transients
# included, as tracemalloc measures it: a str or int is made from a slice of the input (n
# bytes more while it is made); a container's items are appended to a list (over-allocated
# by an eighth), then a tuple, dict or set is made from it (both alive); a dict or set table
# has up to 8 slots an item just after it grows. An empty container is made directly.
# Containers: (empty, fixed, per item).
_COST_INT, _COST_FLOAT, _COST_STR, _COST_BYTES = 72, 24, 80, 40  # and 2n, -, 2n, n
_COST_LIST, _COST_TUPLE, _COST_DICT, _COST_SET = (
    (56, 104, 9),
    (40, 144, 17),
    (64, 232, 124),
    (216, 216, 130),
)

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
    """The memory decoded objects may take for `size` bytes of state: 64 times their size,
    plus 1 MiB less 64 KiB (kept for what is not charged: the decoder's own lists, the
    replay's frames), so that the peak of decoding a state stays within 64 x size + 1 MiB."""
    return Budget(64 * size + (1 << 20) - (1 << 16))


def _count(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The count (a length, a number of items) at `buf[pos]`, and the position after it;
    `DecodeError` if cut, too long, or more than the bytes left before `end` (each item
    takes one)."""
    n = shift = 0
    for _ in range(10):
        if pos >= end:
            raise DecodeError(f"truncated inside a length at offset {pos}")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            if n > end - pos:
                raise DecodeError(f"a count of {n} items at offset {pos} exceeds the bytes left")
            return n, pos
        shift += 7
    raise DecodeError(f"a length at offset {pos} is longer than 10 bytes")


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

    def dec(self) -> Any:
        """The value at `pos` (`pos` is then after it).

        One loop with its state in locals: the hot path of all decoding (the replay decodes
        each event with it). A container being read is a frame ``[tag, items still to read,
        items read, registered name]``; every object is charged to the budget before it is
        made, and a count is never more than the bytes left.
        """
        buf, pos, end, budget = self.buf, self.pos, self.end, self.budget
        stack: list[list[Any]] = []
        while True:
            if pos >= end:
                raise DecodeError(f"truncated: a value is missing at offset {pos}")
            tag = buf[pos]
            pos += 1
            if tag in _COUNTED:
                if pos < end and buf[pos] < 0x80 and buf[pos] <= end - pos - 1:
                    n = buf[pos]  # the common one-byte count, read here
                    pos += 1
                else:
                    n, pos = _count(buf, pos, end)
                if tag == 0x73:  # s
                    budget.charge(_COST_STR + 2 * n)  # n UTF-8 bytes: at most n in a str
                    try:
                        value: Any = buf[pos : pos + n].decode("utf-8", "surrogatepass")
                    except UnicodeDecodeError as exc:
                        raise DecodeError(f"invalid UTF-8 in a string: {exc}") from None
                    pos += n
                elif tag == 0x69:  # i
                    if n == 0:
                        raise DecodeError("an int of zero bytes")
                    budget.charge(_COST_INT + 2 * n)
                    value = int.from_bytes(buf[pos : pos + n], "big", signed=True)
                    pos += n
                elif tag == 0x62:  # b
                    budget.charge(_COST_BYTES + n)
                    value = bytes(buf[pos : pos + n])
                    pos += n
                else:  # l t d S Z
                    if len(stack) >= MAX_DEPTH:
                        raise DecodeError(f"containers nest more than {MAX_DEPTH} deep")
                    empty, fixed, per_item = _CONTAINERS[tag]
                    budget.charge(fixed + per_item * n if n else empty)
                    if n:
                        stack.append([tag, 2 * n if tag == 0x64 else n, [], ""])
                        continue
                    value = _EMPTY[tag]()
            elif tag == 0x4E:  # N
                value = None
            elif tag == 0x54:  # T
                value = True
            elif tag == 0x46:  # F
                value = False
            elif tag == 0x66:  # f
                if pos + 8 > end:
                    raise DecodeError(
                        f"truncated: 8 bytes needed at offset {pos}, {end - pos} left"
                    )
                budget.charge(_COST_FLOAT)
                value = _F64.unpack_from(buf, pos)[0]
                pos += 8
            elif tag == 0x52 or tag == 0x50:  # R P
                if len(stack) >= MAX_DEPTH:
                    raise DecodeError(f"containers nest more than {MAX_DEPTH} deep")
                frame, pos = _registered_frame(buf, tag, pos, end, self.registry, budget)
                if frame[1]:
                    stack.append(frame)
                    continue
                value = _registered(frame)
            else:
                raise DecodeError(f"unknown tag byte {tag:#04x} at offset {pos - 1}")
            while stack:  # hand the value to its container, closing the full ones
                top = stack[-1]
                top[2].append(value)
                top[1] -= 1
                if top[1]:
                    break
                stack.pop()
                kind = top[0]
                if kind == 0x6C:  # l
                    value = top[2]
                elif kind == 0x74:  # t
                    value = tuple(top[2])
                else:
                    value = _close(top) if kind != 0x52 else _registered(top)
            else:
                self.pos = pos
                return value

    py_dec = dec  # the reference, as written (`dec` is the compiled one when it is loaded)


def _registered_frame(
    buf: bytes, tag: int, pos: int, end: int, registry: bool, budget: Budget
) -> tuple[list[Any], int]:
    """The frame of a registered (R) or pickled (P) value whose tag was read, and the
    position after its head (after the pickle, for P)."""
    n, pos = _count(buf, pos, end)
    budget.charge(_COST_STR + 2 * n)
    try:
        name = buf[pos : pos + n].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 in a string: {exc}") from None
    pos += n
    reg = _by_name.get(name) if registry else None
    if reg is None or (reg[1] is None) != (tag == 0x50):
        kind = "pickled" if tag == 0x50 else "registered"
        how = "with RegisterPickle" if tag == 0x50 else "with Register"
        raise DecodeError(
            f"the bytes hold a {kind} type {name!r} that is not registered {how} in this process"
        )
    if tag == 0x52:
        return [tag, 1, [], name], pos
    n, pos = _count(buf, pos, end)
    budget.charge(_COST_BYTES + n)
    return [tag, 0, [buf[pos : pos + n]], name], pos + n


def _registered(frame: list[Any]) -> Any:
    """The value of a full registered or pickled frame: the program's own code runs here."""
    tag, _, items, name = frame
    cls, decode_fn = _by_name[name]
    if tag == 0x50:
        try:
            value = pickle.loads(items[0])
        except Exception as exc:
            raise DecodeError(f"cannot unpickle a {name}: {_short(exc)}") from None
        if type(value) is not cls:
            raise DecodeError(f"unpickling a {name} gave a {type(value).__qualname__}")
        return value
    assert decode_fn is not None  # an R frame names a type registered with a decode
    try:
        return decode_fn(items[0])
    except RecursionError:
        raise
    except Exception as exc:
        raise DecodeError(
            f"the decode function registered for {name} failed: {_short(exc)}"
        ) from None


def _close(frame: list[Any]) -> Any:
    """The dict, set or frozenset of a full frame (`dec` closes lists and tuples itself)."""
    tag, _, items, _ = frame
    if tag == 0x64:  # d
        keys = items[0::2]
        _check_keys(keys)
        return dict(zip(keys, items[1::2], strict=True))
    _check_keys(items)  # S Z
    return set(items) if tag == 0x53 else frozenset(items)


_CONTAINERS = {0x6C: _COST_LIST, 0x74: _COST_TUPLE, 0x64: _COST_DICT, 0x53: _COST_SET}
_CONTAINERS[0x5A] = _COST_SET  # Z
_EMPTY: dict[int, Any] = {0x6C: list, 0x74: tuple, 0x64: dict, 0x53: set, 0x5A: frozenset}
_COUNTED = frozenset((0x73, 0x69, 0x62, *_CONTAINERS))  # s i b and containers: a count follows


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


def compiled(ext: Any) -> Any:
    """`_Decoder.dec` compiled by the extension module `ext`, bound to this module's objects.

    The compiled loop (``_speedups_c/decode.c``) is a translation of `_Decoder.dec`, reading
    the same slots and charging the same budget; it calls `_count`, `Budget.charge`,
    `_registered_frame` and `_registered` back for errors and registered types, and ``py_dec``
    for a decoder holding anything but bytes. (Tests take it from the extension even on the
    pure path, to compare the two.)"""
    return ext.decode_setup(
        {
            "Decoder": _Decoder,
            "Budget": Budget,
            "DecodeError": DecodeError,
            "count": _count,
            "registered_frame": _registered_frame,
            "registered": _registered,
            "dec": _Decoder.py_dec,
            "MAX_DEPTH": MAX_DEPTH,
            "MAX_SAME_HASH": _MAX_SAME_HASH,
            "scalar_costs": (_COST_INT, _COST_FLOAT, _COST_STR, _COST_BYTES),
            "container_costs": (*_COST_LIST, *_COST_TUPLE, *_COST_DICT, *_COST_SET, *_COST_SET),
        }
    )


COMPILED: Any = compiled(_accel.speedups) if _accel.speedups is not None else None
"""The compiled `_Decoder.dec` in use (a method descriptor), or None: the pure path
(``COROUTINE_PURE=1``, or the extension not built)."""
if COMPILED is not None:
    _Decoder.dec = COMPILED  # type: ignore[method-assign]
