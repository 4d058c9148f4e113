"""The bytes of a durable state: frames, their MAC, the header and the position.

Theory of operation. `Marshal` writes a *full* frame; `MarshalDelta` a *delta* frame holding
only the events recorded since the previous frame, and the coroutine's position now. A stored
state is a full frame followed by its deltas, in order:

    full   "CoRo" 3 flags "F" uvarint(n) header   events   tail
    delta  "D" prev                                events   tail
    tail   "S" uvarint(n) position  u32(n)  tag

The header is the `_codec` tuple ``(signature, entry, description, fingerprint, version,
origin, resumes)``; the position ``(kind, events, yields, frame, pending digest, pending
value, pending Send, result, resumes)``, values still encoded (the pending value is the
canonical encoding of the value yielded at the pending yield, for `inspect`); events are those
of `_log`; ``prev`` is the first 8 bytes of the tag before the delta. Format 2 is read too:
its position has no ``resumes`` (the header's counts), and a delta appended to a format 2
state is written in format 2.

Each tag is BLAKE2b over *every byte before it* (earlier frames included): keyed (flag bit 0)
with the first of the keys configured (`_keys`), else a plain checksum. So checking the last
16 bytes checks the whole state, with one hash over it per key listed and before anything
else in it is read; the writer keeps the hash running (`Chain`), so a delta costs what it
holds, and extends its state under the key that state was signed with. A state cut after any
frame is that earlier state; a delta appended after another save of the same state (resumed
twice) breaks the chain, and the error says so (`_mismatch`, at a cost linear in the bytes).

`read` finds the header at the start and the position at the end; the events in between are
decoded by the replay as it meets them (`_log.Events`), under the same memory budget as the
header, the position and its values: one per state. With a `Transform` (flag bit 1) header,
position and each frame's events are stored as ``"Z" uvarint(n) seal(bytes)``
(encrypt-then-MAC); reading them opens every frame's events at `Unmarshal`. A process with a
transform configured refuses unsealed states, as one with a key refuses unsigned ones.
"""

from __future__ import annotations

import hmac
from typing import Any, NamedTuple

from .._errors import InvalidStateError
from . import _codec, _decode, _digest, _log, _show
from ._keys import TAG, _Settings, hasher, keys_for
from ._mismatch import why_not

__all__ = ["FORMAT_VERSION", "Chain", "Snapshot", "load", "read", "value"]

FORMAT_VERSION = 3
_READS = (2, 3)  # the format versions read
MAGIC = b"CoRo"
_KEYED, _SEALED = 1, 2

# What a state says the coroutine was doing when marshalled.
K_CREATED, K_SUSPENDED, K_RUNNING, K_DONE = range(4)
KINDS = ("created", "suspended", "running", "done")


def _part(data: bytes, transform: Any) -> bytes:
    """A header, position or events, as stored: sealed ("Z" + length) with a transform."""
    if transform is None:
        return data
    sealed: bytes = transform.seal(data)
    return b"Z" + _codec._uvarint(len(sealed)) + sealed


class Chain:
    """The writer's side of a state: the hash of every byte written so far, and the tag."""

    __slots__ = ("frames", "hasher", "tag", "version")

    def __init__(self, hasher: Any, tag: bytes, frames: int, version: int = FORMAT_VERSION):
        self.hasher, self.tag, self.frames, self.version = hasher, tag, frames, version

    @classmethod
    def full(
        cls, header: tuple[Any, ...], events: bytes, position: tuple[Any, ...]
    ) -> tuple[bytes, Chain]:
        """A full state of `header`, `events` and `position` (kind, events, yields, pending
        digest, pending value, Send, result), signed with the first key, and its chain."""
        key = _Settings.keys[0] if _Settings.keys else None
        transform = _Settings.transform
        flags = (_KEYED if key else 0) | (_SEALED if transform is not None else 0)
        head = _part(_codec.encode(header), transform)
        data = MAGIC + bytes((FORMAT_VERSION, flags)) + b"F" + _codec._uvarint(len(head)) + head
        chain = cls(hasher(key), b"", 0)
        return chain._close(data + _part(events, transform), position, header[6]), chain

    def delta(self, events: bytes, position: tuple[Any, ...], resumes: int) -> bytes:
        """A delta of `events` since the last frame, ending at `position` (as for `full`)."""
        body = b"D" + self.tag[: _log._PREV] + _part(events, _Settings.transform)
        self.frames += 1
        return self._close(body, position, resumes)

    def _close(self, data: bytes, position: tuple[Any, ...], resumes: int) -> bytes:
        fields = (*position[:3], self.frames, *position[3:])
        if self.version >= 3:
            fields += (resumes,)
        pos = _part(_codec.encode(fields), _Settings.transform)
        n = len(pos)
        data += b"S" + _codec._uvarint(n) + pos + n.to_bytes(4, "big")
        self.hasher.update(data)
        self.tag = self.hasher.copy().digest()
        self.hasher.update(self.tag)
        return data + self.tag


def bad(why: str) -> InvalidStateError:
    return InvalidStateError(f"cannot Unmarshal: {why}")


class Snapshot(NamedTuple):
    """A checked state: its header and position decoded, its events still encoded."""

    sig: str
    entry: bytes
    desc: str
    fp: bytes
    version: str | None
    origin: bytes  # tag of the state this history was resumed from; b"" for a first run
    resumes: int  # how many times this coroutine's history was restored
    kind: int  # K_*
    nevents: int
    nyields: int
    frame: int  # 0 for a full state, else how many deltas follow it
    pending: bytes | None  # digest of the value yielded at the pending yield
    pending_value: bytes | None  # its canonical encoding
    sent: bytes | None  # encoding of the pending Send
    result: bytes | None
    buf: bytes  # the events are buf[start:end] (with S/D records between frames')
    start: int
    end: int
    chain: Chain  # to append deltas to this state
    budget: _decode.Budget  # what decoding this state may still build (its events, say)
    joined: bool  # buf[start:end] holds events only (one frame, or sealed frames opened)


_OPT = (bytes, type(None))
_HEADER = (str, bytes, str, bytes, (str, type(None)), bytes, int)
_POSITION = (int, int, int, int, _OPT, _OPT, _OPT, _OPT, int)  # format 2: without the last
_COUNT = 1 << 63  # header and position ints are counts, below this


def read(
    b: bytes, keys: tuple[bytes, ...], budget: _decode.Budget, *, events: bool = True
) -> Snapshot:
    """Check the MAC (or checksum) of `b`, then decode its header and last position; and,
    for a sealed state, open its events unless `events` is false (`inspect` needs none)."""
    flags, version = _flags(b, keys)
    chained = _authenticate(b, keys)
    transform = _Settings.transform if flags & _SEALED else None
    if b[6] != 0x46:  # F
        raise bad("the state does not start with a full frame (a delta alone?)")
    size, start = _uvarint(b, 7)
    header = _fields(b[start : start + size], transform, _HEADER, budget)
    start += size
    n = int.from_bytes(b[-TAG - 4 : -TAG], "big")
    end = len(b) - TAG - 4 - n
    if end < start + 2:
        raise bad("the state is malformed: its last frame's tail is cut")
    layout = _POSITION if version >= 3 else _POSITION[:8]
    position = _fields(b[end : -TAG - 4], transform, layout, budget)
    end = _tail_start(b, end, n)
    kind, _, _, frame, pending, pending_value, sent, result = position[:8]
    if not 0 <= kind <= K_DONE or (pending is not None) != (kind == K_SUSPENDED):
        raise bad("the state is malformed: its position is inconsistent")
    if pending_value is not None and pending is None:
        raise bad("the state is malformed: its position is inconsistent")
    if sent is not None and kind != K_SUSPENDED:
        raise bad(f"the state is malformed: it holds a pending Send, but is {KINDS[kind]}")
    if result is not None and kind != K_DONE:
        raise bad(f"the state is malformed: it holds a result, but is {KINDS[kind]}")
    buf, joined = b, frame == 0
    if transform is not None and events:
        buf = _open_events(b, start, end, transform, budget)
        start, end, joined = 0, len(buf), True
    resumes = position[8] if version >= 3 else header[6]
    chain = Chain(chained, b[-TAG:], frame, version)
    fields = (*header[:6], resumes, *position[:8], buf, start, end, chain, budget, joined)
    return Snapshot._make(fields)


def _flags(b: bytes, keys: tuple[bytes, ...]) -> tuple[int, int]:
    """The flags and format version of `b`, if this process reads them as they are."""
    if len(b) < 8 + TAG or b[:4] != MAGIC:
        if b[:1] == b"D" and len(b) > 8 + TAG:
            raise bad(
                "these bytes are a MarshalDelta alone: a state is one full Marshal followed "
                "by its deltas; pass the full state, then the deltas, concatenated"
            )
        if len(b) >= 4 and b[:4] != MAGIC:
            raise bad(f"these bytes are not a coroutine state (they start with {b[:4]!r})")
        raise bad(f"{len(b)} bytes is too short to be a coroutine state (truncated?)")
    if b[4] not in _READS:
        raise bad(
            f"the state has format version {b[4]}, this library reads versions "
            f"{', '.join(map(str, _READS))}; unmarshal it with the library version that wrote it"
        )
    flags = b[5]
    if flags & ~(_KEYED | _SEALED):
        raise bad(f"the state has unknown flags {flags:#04x} (a newer library wrote it?)")
    if (flags & _KEYED) and not keys:
        raise bad(
            "the state is signed with a key, and none is set: set COROUTINE_STATE_KEY "
            "(or coroutine.durable.configure(key=...)) to the key that wrote it"
        )
    if keys and not flags & _KEYED:
        raise bad("the state is not signed, but a state key is set: unsigned states are refused")
    if _Settings.transform is not None and not flags & _SEALED:
        raise bad(
            "the state is not sealed, but a transform is set: unsealed states are refused "
            "(unmarshal it without the transform, and marshal it again with it)"
        )
    if flags & _SEALED and _Settings.transform is None:
        raise bad("the state is sealed by a transform; configure the same transform to read it")
    return flags, b[4]


def _authenticate(b: bytes, keys: tuple[bytes, ...]) -> Any:
    """The running hash of `b` (its tag included) under the key that verifies it; else
    InvalidStateError saying why none does. Reads nothing of `b` but its bytes' hash."""
    tag = b[-TAG:]
    body = memoryview(b)[:-TAG]
    for key in keys or (None,):
        h = hasher(key)
        h.update(body)
        if hmac.compare_digest(h.digest(), tag):
            h.update(tag)
            return h
    raise bad(why_not(b, keys, sealed=bool(b[5] & _SEALED)))


def load(b: bytes, sig: str, entry: Any, version: str | None) -> Snapshot:
    """Check `b` for a coroutine of `sig` running `entry` (an `_entry.Entry`) at `version`.

    Costs one hash over `b` (per key listed) and the decoding of its header and position
    (and, for a sealed state, opening its parts); the events are decoded by the replay,
    under the snapshot's `budget`.

    Raises:
        InvalidStateError: why `b` cannot be restored into that coroutine.
    """
    snap = read(b, keys_for(None), _decode.budget_for(len(b)))
    desc = _show.shown(snap.desc)
    if snap.entry != entry.ref:
        raise bad(
            f"the state belongs to a coroutine of {desc}, but this one runs {entry.desc}; "
            "unmarshal it into a coroutine created with the same entry and arguments"
        )
    if snap.version != version:
        ours = "no version" if version is None else f"version={version!r}"
        theirs = "no version" if snap.version is None else f"version={snap.version[:200]!r}"
        raise bad(
            f"the state was recorded with {theirs}, this coroutine has {ours}: create it with "
            "the version the state was recorded with"
        )
    if version is None and snap.fp != entry.fp:
        raise bad(
            f"the state was recorded by another version of {desc}: its code has changed "
            "since (or the Python version has; bytecode differs between minor versions). "
            "States are bound to the program that wrote them; finish old coroutines with "
            "the old program, or give the coroutine a version= and guard changes with Patched"
        )
    if snap.sig != sig:
        raise bad(f"the state is of a coroutine of {_show.shown(snap.sig)}, this one is {sig}")
    if snap.pending is not None:
        try:
            _, stop = _digest.read_digest(snap.pending, 0)
        except _codec.DecodeError:
            stop = -1
        if stop != len(snap.pending):
            raise bad("the state is malformed: its pending digest is")
    return snap


def value(encoded: bytes | None, what: str, check: Any, budget: _decode.Budget) -> Any:
    """A value of the position (the pending Send, the result), decoded under the state's
    `budget` and checked."""
    if encoded is None:
        return None
    try:
        v = _decode.decode(encoded, budget=budget)
    except _codec.DecodeError as exc:
        raise bad(f"the state is malformed: {what}: {exc}") from None
    if check is not None and not check(v):
        raise bad(f"{what} {_codec._short(v)} is not of the coroutine's S")
    return v


def _uvarint(b: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    for i in range(pos, min(pos + 10, len(b))):
        n |= (b[i] & 0x7F) << shift
        if b[i] < 0x80:
            return n, i + 1
        shift += 7
    raise bad("the state is malformed: a length is cut")


def _tail_start(b: bytes, pos_start: int, n: int) -> int:
    """Where the last tail ("S" uvarint(n) position) begins, given where its position does."""
    width = len(_codec._uvarint(n))
    start = pos_start - width - 1
    if start < 0 or b[start] != 0x53 or _uvarint(b, start + 1) != (n, pos_start):
        raise bad("the state is malformed: its last frame's tail is cut")
    return start


def _fields(part: bytes, transform: Any, types: tuple[Any, ...], budget: Any) -> Any:
    if transform is not None:
        part = _open(part, 0, len(part), transform, budget)
    try:
        fields = _decode.decode(part, registry=False, budget=budget)
    except _codec.DecodeError as exc:
        raise bad(f"the state is malformed: {exc}") from None
    if not (
        type(fields) is tuple and len(fields) == len(types)
        and all(isinstance(f, t) and type(f) is not bool
                for f, t in zip(fields, types, strict=True))
    ):  # fmt: skip
        raise bad("the state is malformed: unexpected layout")
    for f in fields:
        if type(f) is int and not 0 <= f < _COUNT:
            raise bad(f"the state is malformed: a count is out of range ({_codec._short(f)})")
    return fields


def _open(b: bytes, pos: int, end: int, transform: Any, budget: _decode.Budget) -> bytes:
    """The part sealed at `b[pos:end]` ("Z" uvarint(n) sealed), opened."""
    if pos >= end or b[pos] != 0x5A:
        raise bad("the state is malformed: a sealed part is missing")
    n, start = _uvarint(b, pos + 1)
    if start + n != end:
        raise bad("the state is malformed: a sealed part has the wrong length")
    try:
        opened = transform.open(b[start:end])
    except Exception as exc:
        raise bad(f"the transform could not open the state: {_codec._short(exc)}") from None
    if type(opened) is not bytes:
        if not isinstance(opened, (bytearray, memoryview)):
            raise bad(f"the transform's open returned a {type(opened).__qualname__}, not bytes")
        opened = bytes(opened)
    try:
        budget.charge(len(opened))
    except _codec.DecodeError as exc:
        raise bad(f"the state is malformed: {exc}") from None
    return opened


def _open_events(b: bytes, pos: int, end: int, transform: Any, budget: _decode.Budget) -> bytes:
    """The events of every frame of a sealed state, opened and joined.

    A sealed state's events region is the full frame's sealed events, then for each delta
    the tail before it, its head and its sealed events: one part a frame, so opening costs
    one call of the transform a frame at most, whatever the bytes say."""
    out: list[bytes] = []
    try:
        while True:
            n, start = _uvarint(b, pos + 1)
            if start + n > end:
                raise bad("the state is malformed: a sealed part has the wrong length")
            out.append(_open(b, pos, start + n, transform, budget))
            pos = start + n
            if pos >= end:
                return b"".join(out)
            if b[pos] != _log.S:
                raise bad("the state is malformed: a sealed frame holds more than one part")
            pos = _log._skip_record(b, pos, end)
            if pos >= end or b[pos] != _log.D:
                raise bad("the state is malformed: a frame's tail is not followed by a delta")
            pos += 1 + _log._PREV
    except _codec.DecodeError as exc:
        raise bad(f"the state is malformed: {exc}") from None
