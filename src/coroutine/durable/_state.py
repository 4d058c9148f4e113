"""The bytes of a durable state: frames, their MAC, the header and the position.

Theory of operation. `Marshal` writes a *full* frame; `MarshalDelta` a *delta* frame holding
only the events recorded since the previous frame, and the coroutine's position now. A stored
state is a full frame followed by its deltas, in order:

    full   "CoRo" 2 flags "F" uvarint(n) header   events   tail
    delta  "D" prev                                events   tail
    tail   "S" uvarint(n) position  u32(n)  tag

The header is the `_codec` tuple ``(signature, entry, description, fingerprint, version,
origin, resumes)``; the position ``(kind, events, yields, frame, pending digest, pending
value, pending Send, result)``, values still encoded (the pending value is the canonical
encoding of the value yielded at the pending yield, for `inspect`); events are those of
`_log`; ``prev`` is the first 8 bytes of the tag before the delta.

Each tag is BLAKE2b over *every byte before it* (earlier frames included): keyed with
`COROUTINE_STATE_KEY` or `configure(key=...)` (flag bit 0), else a plain checksum. So checking
the last 16 bytes checks the whole state, with one hash over it and before anything is
decoded; the writer keeps the hash running (`Chain`), so a delta costs what it holds. A state
cut after any frame is that earlier state; a delta appended after another save of the same
state (resumed twice) breaks the chain, and the error says so (`_why_not`).

`read` finds the header at the start and the position at the end; the events in between are
decoded by the replay as it meets them (`_log.Events`). With a `Transform` (flag bit 1)
header, position and each frame's events are stored as ``"Z" uvarint(n) seal(bytes)``
(encrypt-then-MAC); reading them opens every frame's events at `Unmarshal`.
"""

from __future__ import annotations

import os
from hashlib import blake2b
from typing import Any, NamedTuple, Protocol

from .._errors import InvalidStateError
from . import _codec, _decode, _digest, _log

__all__ = ["FORMAT_VERSION", "Chain", "Snapshot", "Transform", "configure", "read"]

FORMAT_VERSION = 2
MAGIC = b"CoRo"
TAG = 16
_KEYED, _SEALED = 1, 2

# What a state says the coroutine was doing when marshalled.
K_CREATED, K_SUSPENDED, K_RUNNING, K_DONE = range(4)
KINDS = ("created", "suspended", "running", "done")


class Transform(Protocol):
    """Seals the parts of states (encryption, say), and opens them again.

    ``open(seal(b)) == b``; `open` raises any exception for bytes it cannot open.
    """

    def seal(self, data: bytes, /) -> bytes: ...

    def open(self, data: bytes, /) -> bytes: ...


class _Settings:
    key: bytes | None = None  # the MAC key derived from the user's, or None (a checksum)
    transform: Transform | None = None


def _derive(key: bytes | str) -> bytes:
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if not raw:
        raise ValueError("a state key must not be empty")
    return blake2b(raw, digest_size=32, person=b"coroutine.key").digest()


_UNSET: Any = object()


def configure(*, key: bytes | str | None = _UNSET, transform: Transform | None = _UNSET) -> None:
    """Set the process-wide state key and transform (see `coroutine.durable.configure`)."""
    if key is not _UNSET:
        _Settings.key = None if key is None else _derive(key)
    if transform is not _UNSET:
        if transform is not None and not (
            callable(getattr(transform, "seal", None))
            and callable(getattr(transform, "open", None))
        ):
            raise TypeError(
                "transform must have seal(bytes) -> bytes and open(bytes) -> bytes, got "
                f"{transform!r}"
            )
        _Settings.transform = transform


if os.environ.get("COROUTINE_STATE_KEY"):
    configure(key=os.environ["COROUTINE_STATE_KEY"])


def key_for(key: bytes | str | None) -> bytes | None:
    """The MAC key to use: derived from `key` if given, else the configured one."""
    return _Settings.key if key is None else _derive(key)


def _hasher(key: bytes | None) -> Any:
    return blake2b(digest_size=TAG, key=key or b"", person=b"coroutine.state")


def _part(data: bytes, transform: Transform | None) -> bytes:
    """A header, position or events, as stored: sealed ("Z" + length) with a transform."""
    if transform is None:
        return data
    sealed = transform.seal(data)
    return b"Z" + _codec._uvarint(len(sealed)) + sealed


class Chain:
    """The writer's side of a state: the hash of every byte written so far, and the tag."""

    __slots__ = ("frames", "hasher", "tag")

    def __init__(self, hasher: Any, tag: bytes, frames: int) -> None:
        self.hasher, self.tag, self.frames = hasher, tag, frames

    @classmethod
    def full(
        cls, header: tuple[Any, ...], events: bytes, position: tuple[Any, ...]
    ) -> tuple[bytes, Chain]:
        key, transform = _Settings.key, _Settings.transform
        flags = (_KEYED if key else 0) | (_SEALED if transform is not None else 0)
        head = _part(_codec.encode(header), transform)
        data = MAGIC + bytes((FORMAT_VERSION, flags)) + b"F" + _codec._uvarint(len(head)) + head
        chain = cls(_hasher(key), b"", 0)
        return chain._close(data + _part(events, transform), position), chain

    def delta(self, events: bytes, position: tuple[Any, ...]) -> bytes:
        body = b"D" + self.tag[: _log._PREV] + _part(events, _Settings.transform)
        self.frames += 1
        return self._close(body, position)

    def _close(self, data: bytes, position: tuple[Any, ...]) -> bytes:
        pos = _part(_codec.encode((*position[:3], self.frames, *position[3:])), _Settings.transform)
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


_OPT = (bytes, type(None))
_HEADER = (str, bytes, str, bytes, (str, type(None)), bytes, int)
_POSITION = (int, int, int, int, _OPT, _OPT, _OPT, _OPT)


def read(b: bytes, key: bytes | None, budget: _decode.Budget) -> Snapshot:
    """Check the MAC (or checksum) of `b`, then decode its header and last position."""
    if len(b) < 8 + TAG or b[:4] != MAGIC:
        if b[:1] == b"D" and len(b) > 8 + TAG:
            raise bad(
                "these bytes are a MarshalDelta alone: a state is one full Marshal followed "
                "by its deltas; pass the full state, then the deltas, concatenated"
            )
        if len(b) >= 4 and b[:4] != MAGIC:
            raise bad(f"these bytes are not a coroutine state (they start with {b[:4]!r})")
        raise bad(f"{len(b)} bytes is too short to be a coroutine state (truncated?)")
    if b[4] != FORMAT_VERSION:
        raise bad(
            f"the state has format version {b[4]}, this library reads version "
            f"{FORMAT_VERSION}; unmarshal it with the library version that wrote it"
        )
    flags = b[5]
    if (flags & _KEYED) and key is None:
        raise bad(
            "the state is signed with a key, and none is set: set COROUTINE_STATE_KEY "
            "(or coroutine.durable.configure(key=...)) to the key that wrote it"
        )
    if key is not None and not flags & _KEYED:
        raise bad("the state is not signed, but a state key is set: unsigned states are refused")
    hasher = _hasher(key)
    hasher.update(memoryview(b)[:-TAG])
    if hasher.digest() != b[-TAG:]:
        raise bad(_why_not(b, key))
    hasher.update(b[-TAG:])
    if b[6] != 0x46:  # F
        raise bad("the state does not start with a full frame (a delta alone?)")
    transform = _Settings.transform if flags & _SEALED else None
    if flags & _SEALED and transform is None:
        raise bad("the state is sealed by a transform; configure the same transform to read it")
    size, start = _uvarint(b, 7)
    header = _fields(b[start : start + size], transform, _HEADER, budget)
    start += size
    n = int.from_bytes(b[-TAG - 4 : -TAG], "big")
    end = len(b) - TAG - 4 - n
    if end < start + 2:
        raise bad("the state is malformed: its last frame's tail is cut")
    position = _fields(b[end : -TAG - 4], transform, _POSITION, budget)
    end = _tail_start(b, end, n)
    kind, _, _, frame, pending, *_ = position
    if not 0 <= kind <= K_DONE or (pending is not None) != (kind == K_SUSPENDED):
        raise bad("the state is malformed: its position is inconsistent")
    buf = b
    if transform is not None:
        buf = _open_events(b, start, end, transform)
        start, end = 0, len(buf)
    chain = Chain(hasher, b[-TAG:], frame)
    return Snapshot._make((*header, *position, buf, start, end, chain))


def _clip(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


def load(b: bytes, sig: str, entry: Any, version: str | None) -> Snapshot:
    """Check `b` for a coroutine of `sig` running `entry` (an `_entry.Entry`) at `version`.

    Costs one hash over `b` and the decoding of its header and position (and, for a sealed
    state, opening its parts); the events are decoded by the replay.

    Raises:
        InvalidStateError: why `b` cannot be restored into that coroutine.
    """
    snap = read(b, key_for(None), _decode.budget_for(len(b)))
    desc = _clip(snap.desc)
    if snap.entry != entry.ref:
        raise bad(
            f"the state belongs to a coroutine of {desc}, but this one runs {entry.desc}; "
            "unmarshal it into a coroutine created with the same entry and arguments"
        )
    if snap.version != version:
        ours = "no version" if version is None else f"version={version!r}"
        theirs = "no version" if snap.version is None else f"version={_clip(snap.version)!r}"
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
        raise bad(f"the state is of a coroutine of {_clip(snap.sig)}, this one is {sig}")
    if snap.pending is not None:
        try:
            _, stop = _digest.read_digest(snap.pending, 0)
        except _codec.DecodeError:
            stop = -1
        if stop != len(snap.pending):
            raise bad("the state is malformed: its pending digest is")
    return snap


def value(encoded: bytes | None, what: str, check: Any, b: bytes) -> Any:
    """A value of the position (the pending Send, the result), decoded and checked."""
    if encoded is None:
        return None
    try:
        v = _decode.decode(encoded, budget=_decode.budget_for(len(b)))
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


def _fields(part: bytes, transform: Transform | None, types: tuple[Any, ...], budget: Any) -> Any:
    if transform is not None:
        part = _open(part, 0, len(part), transform)
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
    return fields


def _open(b: bytes, pos: int, end: int, transform: Transform) -> bytes:
    """The part sealed at `b[pos:end]` ("Z" uvarint(n) sealed), opened."""
    if pos >= end or b[pos] != 0x5A:
        raise bad("the state is malformed: a sealed part is missing")
    n, start = _uvarint(b, pos + 1)
    if start + n != end:
        raise bad("the state is malformed: a sealed part has the wrong length")
    try:
        return bytes(transform.open(b[start:end]))
    except Exception as exc:
        raise bad(f"the transform could not open the state: {_codec._short(exc)}") from None


def _open_events(b: bytes, pos: int, end: int, transform: Transform) -> bytes:
    """The events of every frame of a sealed state, opened and joined."""
    out: list[bytes] = []
    while pos < end:
        if b[pos] == _log.D:
            pos += 1 + _log._PREV
        elif b[pos] == _log.S:
            pos = _log._skip_record(b, pos, end)
        else:
            n, start = _uvarint(b, pos + 1)
            out.append(_open(b, pos, start + n, transform))
            pos = start + n
    return b"".join(out)


def _why_not(b: bytes, key: bytes | None) -> str:
    """Why the MAC of `b` does not match: a fork, a cut, or corruption (or another key)."""
    hasher = _hasher(key)
    pos, prev = 0, b""
    tails = _tails(b)
    for tail_end in tails:
        if b[pos : pos + 1] == b"D" and b[pos + 1 : pos + 1 + _log._PREV] != prev[: _log._PREV]:
            return (
                f"the delta at offset {pos} does not follow the frame before it: it was saved "
                "after another save of this coroutine. Either deltas are missing or out of "
                "order, or the state was resumed twice (two processes restored it and saved)"
            )
        hasher.update(b[pos : tail_end - TAG])
        if hasher.copy().digest() != b[tail_end - TAG : tail_end]:
            break
        prev = b[tail_end - TAG : tail_end]
        hasher.update(prev)
        pos = tail_end
    if key is not None:
        return "the MAC does not match: the state was tampered with, or signed with another key"
    return "the checksum does not match: the bytes are corrupt or truncated"


def _tails(b: bytes) -> list[int]:
    """Where the frames of `b` seem to end (best effort, for messages): after each tag."""
    out: list[int] = []
    pos = 0
    while True:
        found = b.find(b"S", pos)
        if found < 0:
            return out
        try:
            n, start = _uvarint(b, found + 1)
        except InvalidStateError:
            return out
        stop = start + n + 4 + TAG
        if stop <= len(b) and int.from_bytes(b[start + n : start + n + 4], "big") == n:
            out.append(stop)
            pos = stop
        else:
            pos = found + 1
