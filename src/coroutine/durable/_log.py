"""The log of a durable coroutine: its events, read lazily as the replay meets them.

Events (values in the format of `_codec`; a digest is `_digest.digest` of a yielded value):

    Y digest value   a yield, answered with value
    N digest         a yield resumed with nothing sent, which raised YieldTypeError
    T digest exc     a yield into which the driver threw exc (``throw``)
    E value          a side effect that returned value
    X exc            a side effect that raised exc
    P change-id      `Patched(change-id)` returned True here

exc is ``(module, qualname, args)``, rebuilt from an `Exception` subclass of a module already
imported, found and made without running any Python code (`rebuild`).

In a stored state the events of successive frames are interleaved with the frames' tails
(``S`` records) and delta heads (``D`` records, see `_state`); `Events` skips them. It decodes
one event at a time, when the replay asks for it, so `Unmarshal` does not pay for the whole
history, and decoded values do not pile up in memory.
"""

from __future__ import annotations

import sys
import types
from importlib.machinery import ModuleSpec
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
            value = rebuild(value)
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


# The base descriptors `_find` and `rebuild` read through: calling them runs no Python code,
# whatever the object's class defines (a property, a metaclass __getattribute__, __setattr__).
_MODULE_DICT = vars(types.ModuleType)["__dict__"]
_CLASS_DICT = vars(type)["__dict__"]
_SPEC_DICT = vars(ModuleSpec)["__dict__"]
_MRO = vars(type)["__mro__"]
_FLAGS = vars(type)["__flags__"]
_ARGS = vars(BaseException)["args"]


def _find(module: str, qual: str) -> object:
    """What `module.qual` names, or None, found without running any Python code.

    Only modules fully imported are searched: an object of exactly `types.ModuleType`
    (not a lazily loaded module that has not run yet, nor a module whose class was
    replaced) whose spec is not still initializing. Each step reads a module's or a class's
    own dict through the base descriptor, and an object is tested by its type, never by
    what it claims (``isinstance`` would read a ``__class__`` property).
    """
    modules = sys.modules
    obj = modules.get(module) if type(modules) is dict else None
    for part in qual.split("."):
        kind = type(obj)
        if kind is types.ModuleType:
            namespace = _MODULE_DICT.__get__(obj)
            if not _imported(namespace):
                return None
        elif issubclass(kind, type):
            namespace = _CLASS_DICT.__get__(obj)
        else:
            return None
        obj = namespace.get(part)
    return obj


def _imported(namespace: dict[str, Any]) -> bool:
    """Whether the module of `namespace` finished running (it is not still being imported)."""
    spec = namespace.get("__spec__")
    return type(spec) is not ModuleSpec or _SPEC_DICT.__get__(spec).get("_initializing") is not True


def rebuild(spec: Any) -> BaseException:
    """The recorded exception; `_codec.DecodeError` saying why if it cannot be rebuilt.

    The class is found by `_find` (no import, no module ``__getattr__``, no Python code at
    all); it must subclass `Exception`. The instance is made by its first builtin base's
    ``__new__``, and given the recorded args through `BaseException`'s own descriptor: no
    ``__init__``, ``__new__`` or ``__setattr__`` of the class (code the state could choose
    among the program's) runs. `InvalidStateError`, the replay's own error, is not rebuilt.
    """
    if not (
        type(spec) is tuple and len(spec) == 3 and type(spec[0]) is str
        and type(spec[1]) is str and type(spec[2]) is tuple
    ):  # fmt: skip
        raise _codec.DecodeError("a recorded exception is malformed")
    module, qual, args = spec
    cls: Any = _find(module, qual)
    name = _codec._short(f"{module}.{qual}")
    if not (issubclass(type(cls), type) and issubclass(cls, Exception)):
        raise _codec.DecodeError(
            f"replay cannot rebuild the recorded exception {name}{_codec._short(args)}: no "
            "such Exception subclass is imported in this process"
        )
    if issubclass(cls, InvalidStateError):
        raise _codec.DecodeError(f"replay does not rebuild {name}, the replay's own error")
    base = next(c for c in _MRO.__get__(cls) if not _FLAGS.__get__(c) & _HEAPTYPE)
    try:
        exc: BaseException = base.__new__(cls, *args)
        _ARGS.__set__(exc, args)
    except Exception as err:
        raise _codec.DecodeError(
            f"replay cannot rebuild {name}{_codec._short(args)}: {_codec._short(err)}"
        ) from None
    return exc
