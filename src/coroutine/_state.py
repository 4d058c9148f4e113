"""The bytes of a durable state: frames, their MACs, and what they hold.

Theory of operation. `Marshal` writes one *full* frame; `MarshalDelta` writes a *delta* frame
holding only the events recorded since the previous frame and the coroutine's position now.
A stored state is a full frame followed by its deltas, in order. A frame is

    b"CoRo"  version (2)  flags  kind ("F" or "D")  [prev: 16 bytes, deltas only]
    uvarint length  body  tag: 16 bytes

where the tag is keyed BLAKE2b (key: `COROUTINE_STATE_KEY` or `configure(key=...)`, flag bit
0) or plain BLAKE2b (a checksum) over everything before it, and ``prev`` is the tag of the
frame the delta follows. Every tag is checked before any body is decoded; a delta whose
``prev`` is not the tag before it was appended to another save (the state was resumed twice,
or deltas are missing or out of order). With a `Transform` (flag bit 1) the body is stored
as ``transform.seal(body)``: encrypt-then-MAC.

A full body is the `_codec` tuple ``(signature, entry, description, fingerprint, version,
kind, log, number of events, pending digest, pending value, pending Send, result, origin,
resumes)``; a delta body is ``(events before, kind, log, number of events, pending digest,
pending value, pending Send, result)``. The log is a concatenation of events:

    Y digest value   a yield, answered with value
    N digest         a yield resumed with nothing sent, which raised YieldTypeError
    T digest exc     a yield into which the driver threw exc (``throw``)
    E value          a side effect that returned value
    X exc            a side effect that raised exc
    P change-id      `Patched(change-id)` returned True here

where exc is ``(module, qualname, args)``, rebuilt from an `Exception` class already imported
(nothing is imported, no module ``__getattr__`` runs, no ``__init__`` is called). The pending
value is the canonical encoding of the value yielded at the pending yield, for `inspect`.
"""

from __future__ import annotations

import os
import sys
import types
from hashlib import blake2b
from typing import Any, NamedTuple, Protocol

from . import _codec
from ._errors import InvalidStateError

__all__ = ["FORMAT_VERSION", "Snapshot", "Transform", "configure", "frame", "read"]

FORMAT_VERSION = 2
MAGIC = b"CoRo"
TAG = 16
FULL, DELTA = 0x46, 0x44  # F D
_KEYED, _SEALED = 1, 2

# What a state says the coroutine was doing when marshalled.
K_CREATED, K_SUSPENDED, K_RUNNING, K_DONE = range(4)
KINDS = ("created", "suspended", "running", "done")


class Transform(Protocol):
    """Seals the bodies of states (encryption), and opens them again.

    `open(seal(b)) == b`; `open` raises any exception for bytes it cannot open.
    """

    def seal(self, data: bytes, /) -> bytes: ...

    def open(self, data: bytes, /) -> bytes: ...


class _Settings:
    # key is the MAC key derived from the user's key, or None (states carry a checksum).
    key: bytes | None = None
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
    """The MAC key to use: `key` if given, else the configured one."""
    return _Settings.key if key is None else _derive(key)


def _tag(key: bytes | None, data: bytes) -> bytes:
    return blake2b(data, digest_size=TAG, key=key or b"", person=b"coroutine.state").digest()


def frame(kind: int, fields: tuple[Any, ...], prev: bytes | None) -> tuple[bytes, bytes]:
    """The frame of `fields` (builtins only) after the frame tagged `prev`; (frame, its tag)."""
    key, transform = _Settings.key, _Settings.transform
    body = _codec.encode(fields)
    if transform is not None:
        body = transform.seal(body)
    flags = (_KEYED if key else 0) | (_SEALED if transform is not None else 0)
    head = MAGIC + bytes((FORMAT_VERSION, flags, kind)) + (prev or b"")
    data = head + _codec._uvarint(len(body)) + body
    tag = _tag(key, data)
    return data + tag, tag


def bad(why: str) -> InvalidStateError:
    return InvalidStateError(f"cannot Unmarshal: {why}")


def _frames(b: bytes, key: bytes | None) -> list[tuple[int, int, bytes, bytes]]:
    """Split `b` into its frames, checking every tag: [(kind, flags, body, tag)]."""
    out: list[tuple[int, int, bytes, bytes]] = []
    pos, end = 0, len(b)
    prev = b""
    while pos < end:
        where = "the state" if not out else f"frame {len(out)} (a delta)"
        if end - pos < 8 + TAG:
            raise bad(f"{end - pos} bytes is too short to be {where} (truncated?)")
        if b[pos : pos + 4] != MAGIC:
            raise bad(f"{where} is not a coroutine state (it starts with {b[pos : pos + 4]!r})")
        if b[pos + 4] != FORMAT_VERSION:
            raise bad(
                f"{where} has format version {b[pos + 4]}, this library reads version "
                f"{FORMAT_VERSION}; unmarshal it with the library version that wrote it"
            )
        flags, kind = b[pos + 5], b[pos + 6]
        if kind != (DELTA if out else FULL):
            raise bad(f"{where} is of kind {kind:#x}: a state is one full frame, then deltas")
        cur = pos + 7 + (TAG if kind == DELTA else 0)
        length, cur = _length(b, cur)
        stop = cur + length + TAG
        if stop > end:
            raise bad(f"{where} is cut short: {stop - end} bytes are missing (truncated?)")
        if (flags & _KEYED) and key is None:
            raise bad(
                "the state is signed with a key, and none is set: set COROUTINE_STATE_KEY "
                "(or coroutine.durable.configure(key=...)) to the key that wrote it"
            )
        if key is not None and not flags & _KEYED:
            raise bad(
                "the state is not signed, but a state key is set: unsigned states are refused "
                "(sign them by marshalling with the key set)"
            )
        tag = b[stop - TAG : stop]
        if _tag(key, b[pos : stop - TAG]) != tag:
            if key is not None:
                raise bad(
                    f"the MAC of {where} does not match: tampered, or signed with another key"
                )
            raise bad(f"the checksum of {where} does not match: the bytes are corrupt or truncated")
        if kind == DELTA and b[pos + 7 : pos + 7 + TAG] != prev:
            raise bad(
                f"{where} does not follow the frame before it: it was saved after another "
                "save of this coroutine. Either deltas are missing or out of order, or the "
                "state was resumed twice (two processes restored it and both saved)"
            )
        out.append((kind, flags, b[cur : stop - TAG], tag))
        prev = tag
        pos = stop
    if not out:
        raise bad("0 bytes is too short to be a coroutine state (truncated?)")
    return out


def _length(b: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    for i in range(pos, min(pos + 10, len(b))):
        n |= (b[i] & 0x7F) << shift
        if b[i] < 0x80:
            return n, i + 1
        shift += 7
    raise bad("a frame's length is malformed (truncated?)")


class Snapshot(NamedTuple):
    """A state's frames decoded (its values still encoded)."""

    sig: str
    entry: bytes
    desc: str
    fp: bytes
    version: str | None
    kind: int  # K_*
    log: bytes  # all frames' events, in order
    nevents: int
    pending: bytes | None  # digest of the value yielded at the pending yield
    pending_value: bytes | None  # its canonical encoding
    sent: bytes | None  # encoding of the pending Send
    result: bytes | None
    origin: bytes  # tag of the state this one was resumed from; b"" for a first run
    resumes: int  # how many times this coroutine's history was restored
    tag: bytes  # the last frame's tag
    frames: int


_OPT = (bytes, type(None))
_FULL_TYPES = (str, bytes, str, bytes, (str, type(None)), int, bytes, int, _OPT, _OPT, _OPT, _OPT,
               bytes, int)  # fmt: skip
_DELTA_TYPES = (int, int, bytes, int, *_FULL_TYPES[8:12])


def _fields(body: bytes, flags: int, types: tuple[Any, ...], budget: _codec.Budget) -> Any:
    if flags & _SEALED:
        transform = _Settings.transform
        if transform is None:
            raise bad("the state is sealed by a transform; configure the same transform to read it")
        try:
            body = transform.open(body)
        except Exception as exc:
            raise bad(f"the transform could not open the state: {_codec._short(exc)}") from None
    try:
        fields = _codec.decode(body, registry=False, budget=budget)
    except _codec.DecodeError as exc:
        raise bad(f"the state is malformed: {exc}") from None
    if not (
        type(fields) is tuple and len(fields) == len(types)
        and all(isinstance(f, t) and type(f) is not bool
                for f, t in zip(fields, types, strict=True))
    ):  # fmt: skip
        raise bad("the state is malformed: unexpected layout")
    return fields


def read(b: bytes, key: bytes | None, budget: _codec.Budget) -> Snapshot:
    """Check the tags of `b`, then decode its frames; InvalidStateError saying why not."""
    frames = _frames(b, key)
    _, flags, body, _ = frames[0]
    (sig, entry, desc, fp, version, kind, log, nevents, pending, value, sent, result, origin,
     resumes) = _fields(body, flags, _FULL_TYPES, budget)  # fmt: skip
    logs = [log]
    for _, flags, body, _ in frames[1:]:
        before, kind, log, nevents, pending, value, sent, result = _fields(
            body, flags, _DELTA_TYPES, budget
        )
        if before != sum(map(len, logs)):
            raise bad(
                f"a delta follows {before} bytes of events, but {sum(map(len, logs))} precede it"
            )
        logs.append(log)
    if not 0 <= kind <= K_DONE:
        raise bad(f"the state is malformed: unknown kind {kind}")
    if (pending is not None) != (kind == K_SUSPENDED):
        raise bad("the state is malformed: a pending yield does not match its kind")
    return Snapshot(sig, entry, desc, fp, version, kind, b"".join(logs), nevents, pending, value,
                    sent, result, origin, resumes, frames[-1][3], len(frames))  # fmt: skip


def _clip(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."


class Loaded(NamedTuple):
    """A state checked against the coroutine that loads it, its values decoded."""

    snap: Snapshot
    events: list[Event]
    sent: Any  # NO_SEND if nothing was pending
    result: Any


NO_SEND: Any = object()


def load(b: bytes, sig: str, entry: Any, version: str | None, check_s: Any) -> Loaded:
    """Check and decode `b` for a coroutine of `sig` running `entry`; InvalidStateError.

    Costs time linear in ``len(b)`` and at most `_codec.budget_for` it in memory.
    """
    budget = _codec.budget_for(len(b))
    snap = read(b, key_for(None), budget)
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
    try:
        events = [] if snap.kind == K_DONE else parse_log(snap.log, snap.nevents, budget)
        sent = NO_SEND if snap.sent is None else _codec.decode(snap.sent, budget=budget)
        result = None if snap.result is None else _codec.decode(snap.result, budget=budget)
        if snap.pending is not None:
            _, end = _codec.read_digest(snap.pending, 0)
            if end != len(snap.pending):
                raise _codec.DecodeError("a pending digest has trailing bytes")
    except _codec.DecodeError as exc:
        raise bad(f"the state is malformed: {exc}") from None
    _check(events, sent, check_s)
    return Loaded(snap, events, sent, result)


def _check(events: list[Event], sent: Any, check_s: Any) -> None:
    """Refuse sends that are not an S, and exceptions that cannot be rebuilt."""
    for i, (k, _, v) in enumerate(events):
        if k == Y and check_s is not None and not check_s(v):
            raise bad(f"event {i} sends {_codec._short(v)}, which is not of the coroutine's S")
        if (k == T or k == X) and isinstance(err := rebuild(v), InvalidStateError):
            raise bad(f"event {i}: {err}")
    if sent is not NO_SEND and check_s is not None and not check_s(sent):
        raise bad(f"the pending Send {_codec._short(sent)} is not of the coroutine's S")


# -- the log ------------------------------------------------------------------------------------

Y, N, T, E, X, P = b"YNTEXP"
Event = tuple[int, Any, Any]  # (kind, digest or None, value, exception spec or change-id)


def parse_log(
    log: bytes, nevents: int, budget: _codec.Budget, *, registry: bool = True
) -> list[Event]:
    """The events of `log`; `_codec.DecodeError` if it is malformed."""
    events: list[Event] = []
    append = events.append
    reader = _codec._Decoder(log, 0, registry, budget)
    read_value = reader.dec
    pos, end = 0, len(log)
    while pos < end:
        if len(events) >= nevents:
            raise _codec.DecodeError(f"the log holds more events than the {nevents} it says")
        k = log[pos]
        d = None
        if k == Y or k == N or k == T:
            n = log[pos + 1] if pos + 1 < end else 0
            size = 9 if n == 0xFF else n + 1
            if n > 15 and n != 0xFF:
                raise _codec.DecodeError(f"bad digest length byte {n:#x} at offset {pos + 1}")
            d = log[pos + 1 : pos + 1 + size]
            pos += 1 + size
        elif k != E and k != X and k != P:
            raise _codec.DecodeError(f"unknown event {k:#x} at offset {pos} of the log")
        else:
            pos += 1
        if pos > end:
            raise _codec.DecodeError("truncated inside a digest")
        if k == N:
            append((k, d, None))
            continue
        reader.pos = pos
        value = read_value()
        pos = reader.pos
        if (k == T or k == X) and not _is_spec(value):
            raise _codec.DecodeError("a recorded exception is malformed")
        if k == P and type(value) is not str:
            raise _codec.DecodeError("a Patched marker is malformed")
        append((k, d, value))
    budget.charge(120 * len(events))
    if len(events) != nevents:
        raise _codec.DecodeError(f"the log holds {len(events)} events, the state says {nevents}")
    return events


def _is_spec(v: Any) -> bool:
    return (
        type(v) is tuple and len(v) == 3 and type(v[0]) is str and type(v[1]) is str
        and type(v[2]) is tuple
    )  # fmt: skip


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python

# -- exceptions in the log ------------------------------------------------------------------------


def exc_spec(exc: BaseException) -> tuple[str, str, tuple[Any, ...]]:
    """What the log records of `exc`; `_codec.EncodeError` if it cannot be rebuilt."""
    t = type(exc)
    if not isinstance(exc, Exception):
        raise _codec.EncodeError("only Exception subclasses are recorded (and rebuilt)", exc)
    if "<locals>" in t.__qualname__:
        raise _codec.EncodeError("its class is defined inside a function", exc)
    _codec.encode(exc.args)
    return t.__module__, t.__qualname__, exc.args


def rebuild(spec: tuple[str, str, tuple[Any, ...]]) -> BaseException:
    """The recorded exception, or an InvalidStateError saying why it cannot be rebuilt.

    The class is looked up in modules already imported, through their ``__dict__`` (no
    module ``__getattr__``, no import); it must subclass `Exception`. The instance is made by
    its first builtin base's ``__new__`` with the recorded args: its ``__init__`` (code the
    state could choose) is not called.
    """
    module, qual, args = spec
    obj: Any = sys.modules.get(module)
    for part in qual.split("."):
        ok = isinstance(obj, (type, types.ModuleType))
        obj = obj.__dict__.get(part) if ok else None
    name = f"{module}.{qual}"
    if not (isinstance(obj, type) and issubclass(obj, Exception)):
        return InvalidStateError(
            f"replay cannot rebuild the recorded exception {_codec._short(name)}"
            f"{_codec._short(args)}: no such Exception subclass is imported in this process"
        )
    base = next(c for c in obj.__mro__ if not c.__flags__ & _HEAPTYPE)
    try:
        exc: BaseException = base.__new__(obj, *args)
        exc.args = args
    except Exception as err:
        return InvalidStateError(f"replay cannot rebuild {name}{_codec._short(args)}: {err!r}")
    return exc
