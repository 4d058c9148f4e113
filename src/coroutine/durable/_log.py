"""The log of a durable coroutine: its events, read lazily as the replay meets them.

Events (values in the format of `_codec`; a digest is `_digest.digest` of a yielded value):

    Y digest value   a yield, answered with value
    N digest         a yield resumed with nothing sent, which raised YieldTypeError
    T digest exc     a yield into which the driver threw exc (``throw``)
    E value          a side effect that returned value
    X exc            a side effect that raised exc
    P change-id      `Patched(change-id)` returned True here

exc is ``(module, qualname, args)``, rebuilt from an `Exception` subclass already imported:
nothing is imported, no module ``__getattr__`` runs, no ``__init__`` is called.

In a stored state the events of successive frames are interleaved with the frames' tails
(``S`` records) and delta heads (``D`` records, see `_state`); `Events` skips them. It decodes
one event at a time, when the replay asks for it, so `Unmarshal` does not pay for the whole
history, and decoded values do not pile up in memory.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .._errors import InvalidStateError
from . import _codec, _decode, _digest

__all__ = ["Event", "Events", "exc_spec", "rebuild"]

Y, N, T, E, X, P = b"YNTEXP"
S, D = b"SD"  # a frame's tail, a delta's head: skipped
_PREV = 8  # bytes of the previous tag a delta's head repeats

Event = tuple[int, Any, Any]  # (kind, digest or None, value, exception spec or change-id)

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python


class Events:
    """The events of a log, decoded one by one (`next`), checked as they come."""

    __slots__ = ("buf", "check_s", "count", "end", "nevents", "pos", "reader")

    # Invariant: buf[pos:end] holds the events not read yet (and S/D records); count events
    # were read; nevents is how many the state says there are in all.

    def __init__(
        self, buf: bytes, pos: int, end: int, nevents: int, budget: _decode.Budget, check_s: Any
    ) -> None:
        self.buf, self.pos, self.end, self.nevents = buf, pos, end, nevents
        self.reader = _decode._Decoder(buf, pos, True, budget)
        self.reader.end = end
        self.check_s = check_s
        self.count = 0

    def next(self) -> Event | None:
        """The next event, or None after the last; InvalidStateError if malformed."""
        index = self.count
        try:
            return self._next()
        except _codec.DecodeError as exc:
            raise InvalidStateError(
                f"the state is malformed at event {index}: {exc} (a forged state? sign "
                "states with a key to refuse them before anything is decoded)"
            ) from None

    def _next(self) -> Event | None:
        buf, pos, end = self.buf, self.pos, self.end
        while pos < end and (buf[pos] == S or buf[pos] == D):  # a delta's head, a frame's tail
            if buf[pos] == D:
                pos += 1 + _PREV
            elif pos + 1 < end and buf[pos + 1] < 0x80:  # the common, short tail
                pos += 2 + buf[pos + 1] + 4 + 16
            else:
                pos = _skip_record(buf, pos, end)
        if pos >= end:
            self.pos = pos
            if self.count != self.nevents:
                raise _codec.DecodeError(
                    f"the log ends after {self.count} of its {self.nevents} events"
                )
            return None
        if self.count >= self.nevents:
            raise _codec.DecodeError(f"the log holds more events than the {self.nevents} it says")
        k = buf[pos]
        digest = None
        if k == Y or k == N or k == T:
            n = buf[pos + 1] if pos + 1 < end else 0
            stop = pos + 2 + n if n <= 15 else pos + 1 + _digest.digest_size(n)
            if stop > end:
                raise _codec.DecodeError("truncated inside a digest")
            digest = buf[pos + 1 : stop]
            pos = stop
        elif k == E or k == X or k == P:
            pos += 1
        else:
            raise _codec.DecodeError(f"unknown event {k:#x} at offset {pos}")
        self.count += 1
        if k == N:
            self.pos = pos
            return k, digest, None
        value = self._value(pos)
        if k == Y:
            check = self.check_s
            if check is not None and not check(value):
                raise _codec.DecodeError(
                    f"it sends {_codec._short(value)}, not of the coroutine's S"
                )
        elif k == P:
            if type(value) is not str:
                raise _codec.DecodeError("a Patched marker is malformed")
        elif k != E:
            exc = rebuild(value)
            if isinstance(exc, InvalidStateError):
                raise _codec.DecodeError(str(exc))
            value = exc
        return k, digest, value

    def _value(self, pos: int) -> Any:
        buf = self.buf
        tag = buf[pos]
        if tag == 0x4E:  # None
            self.pos = pos + 1
            return None
        if tag == 0x69 and pos + 2 < self.end and 0 < buf[pos + 1] <= 8:  # a small int
            stop = pos + 2 + buf[pos + 1]
            if stop <= self.end:
                self.pos = stop
                return int.from_bytes(buf[pos + 2 : stop], "big", signed=True)
        reader = self.reader
        reader.pos = pos
        value = reader.dec()
        self.pos = reader.pos
        return value


def _skip_record(buf: bytes, pos: int, end: int) -> int:
    """The position after the S or D record at `pos` (a frame's tail, a delta's head)."""
    if buf[pos] == D:
        return pos + 1 + _PREV
    n = shift = 0
    i = pos + 1
    while i < end and buf[i] >= 0x80:
        n |= (buf[i] & 0x7F) << shift
        shift += 7
        i += 1
    if i >= end or shift > 63:
        raise _codec.DecodeError("a frame's tail is malformed")
    n |= buf[i] << shift
    return i + 1 + n + 4 + 16


def skip_value(buf: bytes, pos: int, end: int, budget: _decode.Budget) -> int:
    """The position after the event at `pos` (decoding its value, for `strip`)."""
    reader = Events(buf, pos, end, 1, budget, None)
    reader._next()
    return reader.pos


def strip(buf: bytes, pos: int, end: int, budget: _decode.Budget) -> bytes:
    """The events of `buf[pos:end]` without the S/D records between them."""
    out = bytearray()
    while pos < end:
        if buf[pos] == S or buf[pos] == D:
            pos = _skip_record(buf, pos, end)
            continue
        stop = skip_value(buf, pos, end, budget)
        out += buf[pos:stop]
        pos = stop
    return bytes(out)


# -- exceptions in the log ----------------------------------------------------------------------


def exc_spec(exc: BaseException) -> tuple[str, str, tuple[Any, ...]]:
    """What the log records of `exc`; `_codec.EncodeError` if it cannot be rebuilt."""
    t = type(exc)
    if not isinstance(exc, Exception):
        raise _codec.EncodeError("only Exception subclasses are recorded (and rebuilt)", exc)
    if "<locals>" in t.__qualname__:
        raise _codec.EncodeError("its class is defined inside a function", exc)
    _codec.encode(exc.args)
    return t.__module__, t.__qualname__, exc.args


def rebuild(spec: Any) -> BaseException:
    """The recorded exception, or an InvalidStateError saying why it cannot be rebuilt.

    The class is looked up in modules already imported, through their ``__dict__`` (no
    module ``__getattr__``, no import); it must subclass `Exception`. The instance is made by
    its first builtin base's ``__new__`` with the recorded args: its ``__init__`` (code the
    state could choose) is not called.
    """
    if not (
        type(spec) is tuple and len(spec) == 3 and type(spec[0]) is str
        and type(spec[1]) is str and type(spec[2]) is tuple
    ):  # fmt: skip
        return InvalidStateError("a recorded exception is malformed")
    module, qual, args = spec
    obj: Any = sys.modules.get(module)
    for part in qual.split("."):
        ok = isinstance(obj, (type, types.ModuleType))
        obj = obj.__dict__.get(part) if ok else None
    name = _codec._short(f"{module}.{qual}")
    if not (isinstance(obj, type) and issubclass(obj, Exception)):
        return InvalidStateError(
            f"replay cannot rebuild the recorded exception {name}{_codec._short(args)}: no "
            "such Exception subclass is imported in this process"
        )
    base = next(c for c in obj.__mro__ if not c.__flags__ & _HEAPTYPE)
    try:
        exc: BaseException = base.__new__(obj, *args)
        exc.args = args
    except Exception as err:
        return InvalidStateError(f"replay cannot rebuild {name}{_codec._short(args)}: {err!r}")
    return exc
