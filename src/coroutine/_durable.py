"""Durable coroutines: record what a body receives, so that another process can rebuild it.

Theory of operation. A durable coroutine keeps a *recorder* (`_Recorder`, in
``ctx._durable``) that logs, in order, one event per thing the body could not compute by
itself: each yield (a digest of the value yielded, and what the driver answered) and each
`SideEffect` (what it returned). The body must be deterministic given those answers, so the
log, plus the entry function, is the whole state. `Unmarshal` loads a log into a fresh
coroutine; its first `Next` runs the body from the start and answers its yields and side
effects from the log, without switching to the driver (*replay*), checking each yielded
value against its recorded digest. The yield that was pending when `Marshal` ran is the
*boundary*: there the replay delivers the driver's pending `Send` (restored from the bytes, or
sent after `Unmarshal`) as a live resume would, and the body goes on live to its next yield,
which switches to the driver, so that `Next` returns True with the next value.

Events (concatenated in `_Recorder.log`; values in the format of `_codec`):

    Y digest value   a yield, answered with value
    N digest         a yield resumed with nothing sent, which raised YieldTypeError
    T digest exc     a yield into which the driver threw exc (``throw``)
    E value          a side effect that returned value
    X exc            a side effect that raised exc

where exc is ``(module, qualname, args)`` of an exception, rebuilt on replay from a class
already imported (nothing is imported on the state's say-so).

State format, version 1: ``b"CoRo"``, the version byte, the body (one `_codec` tuple of
builtins, decoded with no registered types), then 16 bytes of BLAKE2b over everything
before. The body is ``(signature, entry, entry description, fingerprint, kind, log, number
of events, pending digest, pending Send, result)``; see `_Recorder.marshal`.

A digest is `_codec.digest` of the value's canonical encoding. The fingerprint is BLAKE2b of
the entry function's code: bytecode, names, constants (recursively), defaults; not line
numbers, so moving a function in its file keeps old states valid, while editing it (or
changing Python's minor version, which changes bytecode) invalidates them.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Callable
from contextvars import ContextVar
from hashlib import blake2b
from typing import Any, NoReturn, TypeVar

from . import _codec
from ._context import (
    CREATED,
    DONE,
    NOTHING,
    SUSPENDED,
    Context,
    Durability,
    end_from_body,
    restore,
    switch_out,
    user_site,
)
from ._errors import (
    CoroutineExit,
    InvalidStateError,
    NotDurableError,
    NotInCoroutineError,
    ResumeError,
    YieldTypeError,
)
from ._signature import Rule

__all__ = ["DURABLE", "FORMAT_VERSION", "SideEffect", "attach"]

T = TypeVar("T")

DURABLE: bool = os.environ.get("COROUTINE_DURABLE", "") == "1"
"""The default of ``durable=``: True iff COROUTINE_DURABLE=1 was set at import."""

FORMAT_VERSION = 1
_MAGIC = b"CoRo"
_SUM = 16  # checksum bytes

# What a state says the coroutine was doing when marshalled.
_K_CREATED, _K_SUSPENDED, _K_RUNNING, _K_DONE = range(4)

# The durable recorders whose bodies enclose the running code, outermost first. Set by each
# durable body in its own contextvars context; inner coroutines inherit it, so a side effect
# in a volatile coroutine nested in a durable body is recorded by that body.
_CHAIN: ContextVar[tuple[_Recorder, ...]] = ContextVar("coroutine.durable_chain", default=())


class _Refusal(Exception):
    """Why an entry cannot be recorded."""


# -- the entry and the program's fingerprint -------------------------------------------------


def _resolve(fn: Any) -> str:
    """`module.qualname` of a module-level function (or a class's), or `_Refusal`."""
    if not isinstance(fn, types.FunctionType):
        kind = type(fn).__qualname__
        raise _Refusal(f"it is a {kind}, not a Python function defined at module level")
    qual = fn.__qualname__
    if "<lambda>" in qual:
        raise _Refusal("it is a lambda, which has no name to find it by in another process")
    if "<locals>" in qual:
        outer = qual.split(".<locals>", 1)[0]
        raise _Refusal(
            f"it is defined inside {outer}() (a closure or nested function), so another "
            "process cannot find it, nor its captured variables"
        )
    obj: Any = sys.modules.get(fn.__module__)
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if obj is not fn:
        raise _Refusal(
            f"the name {fn.__module__}.{qual} does not lead back to it (was it replaced?)"
        )
    return f"{fn.__module__}.{qual}"


def _encodable(what: str, value: object) -> bytes:
    try:
        return _codec.canonical(value)
    except _codec.EncodeError as exc:
        raise _Refusal(f"{what} cannot be encoded: {exc}") from None


def _entry(fn: Any) -> tuple[bytes, str, Any]:
    """(reference bytes, description, the function whose code is fingerprinted)."""
    if isinstance(fn, functools.partial):
        name = _resolve(fn.func)
        bound = _encodable("a partial's arguments", (fn.args, fn.keywords))
        args = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in fn.keywords.items()]
        ref = b"p\0" + name.encode() + b"\0" + bound
        return ref, f"functools.partial({name}, {', '.join(args)})", fn.func
    if isinstance(fn, types.MethodType):
        name = _resolve(fn.__func__)
        owner = fn.__self__
        if isinstance(owner, type):  # a classmethod: found again by its name
            if getattr(owner, fn.__name__, None) != fn:
                raise _Refusal(f"the classmethod {name} is not found on {owner.__qualname__}")
            return b"c\0" + name.encode(), name, fn.__func__
        what = f"it is a method bound to a {type(owner).__qualname__} object, which"
        ref = b"m\0" + name.encode() + b"\0" + _encodable(what, owner)
        return ref, f"{name} of {owner!r}", fn.__func__
    name = _resolve(fn)
    return b"f\0" + name.encode(), name, fn


def _code_digest(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    shape = (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)
    names = (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)
    h.update(repr((shape, names)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(const, h)
        else:
            _const_digest(const, h)


def _const_digest(const: object, h: Any) -> None:
    try:
        h.update(_codec.canonical(const))
    except _codec.EncodeError:
        h.update(f"{type(const).__qualname__}:{const!r}".encode())


def fingerprint(fn: types.FunctionType) -> bytes:
    """The entry's fingerprint: a digest of its code, constants and defaults."""
    h = blake2b(digest_size=16)
    _code_digest(fn.__code__, h)
    for default in (fn.__defaults__ or ()) + tuple((fn.__kwdefaults__ or {}).items()):
        _const_digest(default, h)
    return h.digest()


# -- attaching -------------------------------------------------------------------------------


def attach(
    fn: Callable[[], Any], sig: Any, *, explicit: bool, version: str | None = None
) -> tuple[Durability, Callable[[], Any]]:
    """The durability of a coroutine with entry `fn`, and the body it runs.

    Raises:
        NotDurableError: `explicit` and the entry cannot be recorded.
    """
    try:
        ref, desc, code_fn = _entry(fn)
    except _Refusal as why:
        reason = (
            f"its entry {fn!r} cannot be recorded: {why}. Durable entries are module-level "
            "functions, or functools.partial of one with encodable arguments"
        )
        if explicit:
            raise NotDurableError(f"New(..., durable=True): {reason}") from None
        return _Refused(reason), fn
    rec = _Recorder(repr(sig), ref, desc, fingerprint(code_fn))
    return rec, _wrap(fn, rec)


def _wrap(fn: Callable[[], Any], rec: _Recorder) -> Callable[[], Any]:
    """The body a durable coroutine really runs: `fn` with the recorder around it."""

    def body() -> Any:
        _CHAIN.set((*_CHAIN.get(), rec))
        rec.start()
        try:
            result = fn()
        except Exception as exc:
            if rec.failed and isinstance(exc, InvalidStateError):
                raise
            if isinstance(exc, (MemoryError, RecursionError)):
                raise  # a fault of this process, not a divergence of the body
            if rec.replaying or rec.failed:
                raise InvalidStateError(
                    f"replay diverged: the body raised {exc!r} after {rec.nyield} yields, "
                    f"before reaching the recorded position ({rec.where()}); "
                    "the body is not deterministic given what it receives"
                ) from exc
            raise
        if rec.replaying:
            raise InvalidStateError(
                f"replay diverged: the body returned after {rec.nyield} yields, before "
                f"reaching the recorded position ({rec.where()}); the body is not "
                "deterministic given what it receives"
            )
        return result

    body.__qualname__ = getattr(fn, "__qualname__", None) or repr(fn)
    body.__module__ = getattr(fn, "__module__", None) or ""
    body.__wrapped__ = fn  # type: ignore[attr-defined]
    return body


class _Refused:
    """The `_durable` of a coroutine left volatile by the default: remembers why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def _refuse(self, op: str) -> NotDurableError:
        why = self.reason
        return NotDurableError(
            f"{op}: this coroutine is volatile although COROUTINE_DURABLE=1, because {why}"
        )

    def marshal(self, ctx: Context[Any, Any]) -> bytes:
        raise self._refuse("Marshal")

    def unmarshal(self, ctx: Context[Any, Any], b: bytes) -> None:
        raise self._refuse("Unmarshal")

    def marshal_delta(self, ctx: Context[Any, Any]) -> bytes:
        raise self._refuse("MarshalDelta")

    def on_yield(self, ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
        return switch_out(ctx, value, rule)

    def status(self, state: str) -> str:
        return state

    def replays_stop(self) -> bool:
        return False


# -- the recorder ----------------------------------------------------------------------------

_Event = tuple[str, Any, Any]  # (kind letter, digest or None, value or exception spec)


class _Recorder:
    """The log of one durable coroutine, and its replay."""

    __slots__ = (
        "broken",
        "cursor",
        "desc",
        "entry",
        "events",
        "failed",
        "fp",
        "in_effect",
        "log",
        "nevents",
        "nyield",
        "pending",
        "replaying",
        "restored",
        "sig",
        "started",
    )

    # Invariants:
    # log holds nevents complete events, in the order the body met them.
    # pending is the digest of the yield the body is suspended at (live), or of the yield a
    #   restored state was suspended at until the replay passes it; None otherwise.
    # events is the decoded log to replay while restored and not past the boundary, else None;
    #   cursor indexes the next event to replay in it.
    # restored is the kind (_K_*) loaded by Unmarshal until the replay passes the boundary.
    # replaying is True from the body's start until it passes the boundary (or the end of
    #   events when nothing was pending); yields and side effects are then answered from
    #   events.
    # failed: the replay diverged; the body is being ended and must not go on.
    # broken is why this coroutine can no longer be marshalled (it met an unencodable value);
    #   it then runs volatile, recording nothing more.
    # in_effect counts SideEffect functions running live in this body (a yield there is an
    #   error: it could not be replayed).
    # nyield counts the yields the body has made since it started (for messages).
    sig: str
    entry: bytes
    desc: str
    fp: bytes
    log: bytearray
    nevents: int
    pending: bytes | None
    events: list[_Event] | None
    cursor: int
    restored: int | None
    replaying: bool
    failed: bool
    broken: str | None
    in_effect: int
    nyield: int
    started: bool

    def __init__(self, sig: str, entry: bytes, desc: str, fp: bytes) -> None:
        self.sig = sig
        self.entry = entry
        self.desc = desc
        self.fp = fp
        self.log = bytearray()
        self.nevents = 0
        self.pending = None
        self.events = None
        self.cursor = 0
        self.restored = None
        self.replaying = False
        self.failed = False
        self.broken = None
        self.in_effect = 0
        self.nyield = 0
        self.started = False

    # -- hooks the core calls ------------------------------------------------------------

    def status(self, state: str) -> str:
        if self.restored in (_K_SUSPENDED, _K_RUNNING):
            return SUSPENDED
        return state

    def replays_stop(self) -> bool:
        """Whether a `Stop` before the first `Next` must still replay the body, to unwind it
        from the restored yield (not yet asked by the core: see docs/durable.md, Limits)."""
        return self.restored == _K_SUSPENDED and not self.started

    def start(self) -> None:
        self.started = True
        self.cursor = 0
        self.replaying = self.events is not None and bool(self.events or self.pending)
        if not self.replaying:  # nothing to replay (restored from a created state)
            self.restored = None
            self.events = None

    def on_yield(self, ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
        if self.replaying:
            return self._replay_yield(ctx, value, rule)
        if self.in_effect:
            raise NotDurableError(
                "Yield inside a SideEffect function: the side effect's result is recorded, "
                "not what happens inside it, so its yields could not be replayed; yield "
                "before or after SideEffect(fn) instead"
            )
        if self.broken is not None or ctx._stopping or self.failed:
            return switch_out(ctx, value, rule)  # nothing to record (or it refuses)
        try:
            d = _codec.digest(value)
        except _codec.EncodeError as exc:
            self._break(f"yield {self.nyield} yielded a value that {exc}")
            return switch_out(ctx, value, rule)
        self.nyield += 1
        self.pending = d
        try:
            sent = switch_out(ctx, value, rule)
        except YieldTypeError:  # resumed with nothing sent, and S does not admit None
            self._append(b"N" + d)
            raise
        except (CoroutineExit, NotInCoroutineError, ResumeError):
            raise  # a stop unwinds the body; the others happen before any switch
        except BaseException as exc:  # thrown in by the driver
            self._append_exc(b"T" + d, exc, "thrown at yield")
            raise
        else:
            self._append_value(b"Y" + d, sent, self.nyield - 1)
            return sent
        finally:
            self.pending = None

    def _replay_yield(self, ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
        n = self.nyield
        self.nyield += 1
        try:
            d = _codec.digest(value)
        except _codec.EncodeError as exc:
            self._diverge(ctx, f"yield {n} yielded a value that the recorded run did not: {exc}")
        events = self.events
        assert events is not None
        i = self.cursor
        if i < len(events):
            kind, recorded, payload = events[i]
            if kind in "EX":
                self._diverge(
                    ctx,
                    f"the body made yield {n} ({_codec._short(value)}) where the recorded "
                    "run called SideEffect",
                )
            if recorded != d:
                self._diverge(
                    ctx,
                    f"yield {n} differs: the body yielded {_codec._short(value)}, the recorded "
                    f"run yielded {_codec.describe_digest(recorded)}",
                )
            self.cursor = i + 1
            self._maybe_done()
            if kind == "Y":
                return payload
            if kind == "N":
                raise _nothing_sent(ctx)
            raise _rebuild(payload)
        # The boundary: the yield the marshalled coroutine was suspended at.
        if self.pending != d:
            self._diverge(
                ctx,
                f"yield {n} differs: the body yielded {_codec._short(value)}, the recorded run "
                f"was suspended at {_codec.describe_digest(self.pending or b'')}",
            )
        self._end_replay()
        if ctx._stopping:  # stopped after Unmarshal: unwind from the recorded yield
            raise CoroutineExit
        sent = ctx._sent  # the next live yield clears it
        if sent is NOTHING:
            if not rule.none_ok:
                self._append(b"N" + d)
                raise _nothing_sent(ctx)
            sent = None
        self._append_value(b"Y" + d, sent, n)
        return sent

    def _maybe_done(self) -> None:
        events = self.events
        if events is not None and self.cursor == len(events) and self.pending is None:
            self._end_replay()

    def _end_replay(self) -> None:
        self.replaying = False
        self.events = None
        self.restored = None
        self.pending = None

    def _diverge(self, ctx: Context[Any, Any], what: str) -> NoReturn:
        """End the body: the driver's `Next` raises InvalidStateError (the body cannot catch it)."""
        self.failed = True
        self.replaying = False
        err = InvalidStateError(
            f"replay diverged: {what}. The body is not deterministic given what it receives "
            "(or it changed); route time, randomness and I/O through Yield or SideEffect"
        )
        if ctx._driver is None or ctx._state is DONE:
            raise err
        end_from_body(ctx, err)

    def where(self) -> str:
        total = sum(1 for e in self.events or () if e[0] in "YNT") + (self.pending is not None)
        return f"{total} yields in all were recorded"

    # -- recording -------------------------------------------------------------------------

    def _append(self, event: bytes) -> None:
        self.log += event
        self.nevents += 1

    def _append_value(self, head: bytes, value: object, index: int) -> None:
        """Log the value sent to yield `index` (or a side effect's result if -1)."""
        if self.broken is not None:
            return
        try:
            self.log += head + _codec.encode(value)
            self.nevents += 1
        except _codec.EncodeError as exc:
            what = f"the value sent to yield {index}" if index >= 0 else "a SideEffect's result"
            self._break(f"{what}: {exc}")

    def _append_exc(self, head: bytes, exc: BaseException, what: str) -> None:
        if self.broken is not None:
            return
        try:
            self._append(head + _exc_spec(exc))
        except _codec.EncodeError as err:
            self._break(f"the exception {exc!r} {what}: {err}")

    def _break(self, reason: str) -> None:
        self.broken = reason

    # -- side effects ----------------------------------------------------------------------

    def replay_effect(self) -> tuple[bool, Any]:
        """The recorded outcome of the side effect the body is calling: (raised, value)."""
        events = self.events
        assert events is not None
        i = self.cursor
        if i >= len(events) or events[i][0] not in "EX":
            found = "the end of the record" if i >= len(events) else f"yield {self.nyield}"
            self.failed = True
            self.replaying = False
            raise InvalidStateError(
                f"replay diverged: the body called SideEffect where the recorded run made "
                f"{found}; the body is not deterministic given what it receives"
            )
        kind, _, payload = events[i]
        self.cursor = i + 1
        self._maybe_done()
        if kind == "E":
            return False, payload
        return True, _rebuild(payload)

    def record_effect(self, raised: bool, value: Any) -> None:
        if raised:
            self._append_exc(b"X", value, "raised by a SideEffect")
        else:
            self._append_value(b"E", value, -1)

    # -- the state -------------------------------------------------------------------------

    def marshal_delta(self, ctx: Context[Any, Any]) -> bytes:
        raise NotDurableError("MarshalDelta is not available in this format version: use Marshal")

    def marshal(self, ctx: Context[Any, Any]) -> bytes:
        if self.broken is not None:
            raise NotDurableError(
                f"Marshal: this durable coroutine stopped recording when {self.broken}"
            )
        if self.failed:
            raise NotDurableError("Marshal: this coroutine's replay diverged; it has no state")
        state = ctx._state
        if state is DONE:
            kind = _K_DONE
        elif self.restored is not None:  # restored, replay not yet past the boundary
            kind = self.restored
        elif state is CREATED:
            kind = _K_CREATED
        elif state is SUSPENDED:
            kind = _K_SUSPENDED
        else:
            kind = _K_RUNNING  # marshalled from inside the body: resumes after the last event
        pending = self.pending if kind == _K_SUSPENDED else None
        sent = result = None
        try:
            if kind == _K_SUSPENDED and ctx._sent is not NOTHING:
                sent = _codec.encode(ctx._sent)
            if kind == _K_DONE and ctx._result is not None:
                result = _codec.encode(ctx._result)
        except _codec.EncodeError as exc:
            what = "the pending Send" if kind == _K_SUSPENDED else "the result"
            raise NotDurableError(f"Marshal: {what} cannot be encoded: {exc}") from None
        log = bytes(self.log) if kind != _K_DONE else b""
        nevents = self.nevents if kind != _K_DONE else 0
        body = _codec.encode(
            (self.sig, self.entry, self.desc, self.fp, kind, log, nevents, pending, sent, result)
        )
        head = _MAGIC + bytes((FORMAT_VERSION,)) + body
        return head + blake2b(head, digest_size=_SUM).digest()

    def unmarshal(self, ctx: Context[Any, Any], b: bytes) -> None:
        if not isinstance(b, (bytes, bytearray, memoryview)):
            raise TypeError(f"Unmarshal takes the bytes Marshal returned, got {type(b).__name__}")
        if ctx._state is not CREATED or self.started:
            raise ResumeError(
                "Unmarshal restores state into a coroutine that has not started; this one "
                f"is {ctx._state}: create a new one with New(..., durable=True) for the state"
            )
        st = _parse(bytes(b), self)
        # Validated: now apply, all at once.
        kind, log, nevents, events, pending, sent, result = st
        self.log = bytearray(log)
        self.nevents = nevents
        self.events = events
        self.pending = pending
        self.restored = kind
        self.nyield = 0
        restore(ctx, done=kind == _K_DONE, sent=NOTHING if sent is _NONE else sent, result=result)
        if kind == _K_DONE:
            self.restored = None
            self.events = None


_NONE: Any = object()


def _bad(why: str) -> InvalidStateError:
    return InvalidStateError(f"cannot Unmarshal: {why}")


_State = tuple[int, bytes, int, list[_Event], "bytes | None", Any, Any]


def _parse(b: bytes, rec: _Recorder) -> _State:
    """Check and decode a state for `rec`'s coroutine; InvalidStateError saying why not."""
    if len(b) < len(_MAGIC) + 1 + _SUM:
        raise _bad(f"{len(b)} bytes is too short to be a coroutine state (truncated?)")
    if b[:4] != _MAGIC:
        raise _bad(f"these bytes are not a coroutine state (they start with {b[:4]!r})")
    if b[4] != FORMAT_VERSION:
        raise _bad(
            f"the state has format version {b[4]}, this library reads version "
            f"{FORMAT_VERSION}; unmarshal it with the library version that wrote it"
        )
    head, checksum = b[:-_SUM], b[-_SUM:]
    if blake2b(head, digest_size=_SUM).digest() != checksum:
        raise _bad("the checksum does not match: the bytes are corrupt or truncated")
    try:
        body = _codec.decode(head[5:], registry=False)
    except _codec.DecodeError as exc:
        raise _bad(f"the state is malformed: {exc}") from None
    if not (isinstance(body, tuple) and len(body) == 10):
        raise _bad("the state is malformed: unexpected layout")
    sig, entry, desc, fp, kind, log, nevents, pending, sent, result = body
    types_ok = (
        isinstance(sig, str) and isinstance(entry, bytes) and isinstance(desc, str)
        and isinstance(fp, bytes) and type(kind) is int and 0 <= kind <= _K_DONE
        and isinstance(log, bytes) and type(nevents) is int
        and (pending is None or isinstance(pending, bytes))
        and (sent is None or isinstance(sent, bytes))
        and (result is None or isinstance(result, bytes))
    )  # fmt: skip
    if not types_ok:
        raise _bad("the state is malformed: a field has the wrong type")
    if entry != rec.entry:
        raise _bad(
            f"the state belongs to a coroutine of {desc}, but this one runs {rec.desc}; "
            "unmarshal it into a coroutine created with the same entry and arguments"
        )
    if fp != rec.fp:
        raise _bad(
            f"the state was recorded by another version of {desc}: its code has changed "
            "since (or the Python version has; bytecode differs between minor versions). "
            "States are bound to the program that wrote them; finish old coroutines with "
            "the old program"
        )
    if sig != rec.sig:
        raise _bad(f"the state is of a coroutine of {sig}, this one is {rec.sig}")
    if (pending is not None) != (kind == _K_SUSPENDED):
        raise _bad("the state is malformed: a pending yield does not match its kind")
    try:
        events = _parse_log(log, nevents)
        if pending is not None:
            _, end = _codec.read_digest(pending, 0)
            if end != len(pending):
                raise _codec.DecodeError("a pending digest has trailing bytes")
        sent_value = _NONE if sent is None else _codec.decode(sent)
        result_value = None if result is None else _codec.decode(result)
    except _codec.DecodeError as exc:
        raise _bad(f"the state is malformed: {exc}") from None
    return kind, log, nevents, events, pending, sent_value, result_value


def _parse_log(log: bytes, nevents: int) -> list[_Event]:
    events: list[_Event] = []
    pos = 0
    end = len(log)
    while pos < end:
        kind = chr(log[pos])
        pos += 1
        d = None
        if kind in "YNT":
            d, pos = _codec.read_digest(log, pos)
        if kind in "YE":
            value, pos = _codec.decode_from(log, pos)
        elif kind in "TX":
            value, pos = _codec.decode_from(log, pos)
            if not (
                isinstance(value, tuple) and len(value) == 3
                and isinstance(value[0], str) and isinstance(value[1], str)
                and isinstance(value[2], tuple)
            ):  # fmt: skip
                raise _codec.DecodeError("a recorded exception is malformed")
        elif kind == "N":
            value = None
        else:
            raise _codec.DecodeError(f"unknown event {kind!r} at offset {pos - 1} of the log")
        events.append((kind, d, value))
    if len(events) != nevents:
        raise _codec.DecodeError(f"the log holds {len(events)} events, the state says {nevents}")
    return events


# -- exceptions in the log -------------------------------------------------------------------


def _exc_spec(exc: BaseException) -> bytes:
    t = type(exc)
    if "<locals>" in t.__qualname__:
        raise _codec.EncodeError("its class is defined inside a function", exc)
    return _codec.encode((t.__module__, t.__qualname__, exc.args))


def _rebuild(spec: tuple[str, str, tuple[Any, ...]]) -> BaseException:
    """The recorded exception, from a class already imported (nothing is imported here)."""
    module, qual, args = spec
    obj: Any = sys.modules.get(module)
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, BaseException)):
        return InvalidStateError(
            f"replay cannot rebuild the recorded exception {module}.{qual}{args!r}: no such "
            "exception class is imported in this process"
        )
    try:
        return obj(*args)
    except Exception as exc:
        return InvalidStateError(f"replay cannot rebuild {module}.{qual}{args!r}: {exc!r}")


def _nothing_sent(ctx: Context[Any, Any]) -> YieldTypeError:
    return YieldTypeError(
        f"the coroutine {ctx._sig} resumed without a value, but this yield's send type does "
        "not admit None; call Send before Next (or declare the yield's S as Optional)",
        expected=ctx._sig.s,
        got=None,
        site=user_site(),
    )


# -- the public side-effect helper -----------------------------------------------------------


def SideEffect(fn: Callable[[], T], /) -> T:
    """Run `fn()` once in a durable coroutine's life, and return its result.

    The result (or the exception `fn` raised) is recorded; when the coroutine is rebuilt by
    replay, `SideEffect` returns (or raises) the recorded outcome instead of calling `fn`
    again. Use it for what the body may not compute twice: the time, random numbers, ids,
    reads and writes of the outside world. Outside a durable coroutine it just calls `fn`.

    "Once" holds across a `Marshal`: an effect run after the last `Marshal` that was saved
    runs again if the process dies before the next one, as with any durable workflow;
    make such effects idempotent. `fn` may not `Yield` (its yields could not be replayed).

    In a module (durable entries must be module-level functions):

    .. code-block:: python

        def roll() -> int:
            return SideEffect(lambda: random.randint(1, 6))  # the same number on replay

    Outside a durable coroutine it is a plain call:

    >>> from coroutine import SideEffect
    >>> SideEffect(lambda: 6 * 7)
    42

    Returns:
        What `fn` returned, now or in the recorded run; it must be encodable (see
        `coroutine.types.Register`), or the coroutine can no longer be marshalled.

    Raises:
        BaseException: what `fn` raised (rebuilt from its class and ``args`` on replay).
        InvalidStateError: on replay, the recorded run did something else here.
        NotDurableError: `fn` yielded.
    """
    chain = _CHAIN.get()
    if not chain:
        return fn()
    live = [rec for rec in chain if not rec.replaying and rec.broken is None and not rec.failed]
    outcome: tuple[bool, Any] | None = None
    for rec in chain:
        if rec.failed:
            raise InvalidStateError("replay diverged: this coroutine is ending")
        if rec.replaying:
            got = rec.replay_effect()
            outcome = outcome or got
    if outcome is None:
        for rec in chain:
            rec.in_effect += 1
        try:
            outcome = False, fn()
        except Exception as exc:
            outcome = True, exc
        finally:
            for rec in chain:
                rec.in_effect -= 1
    for rec in live:
        rec.record_effect(*outcome)
    return _outcome(outcome)  # type: ignore[no-any-return]


def _outcome(outcome: tuple[bool, Any]) -> Any:
    if outcome[0]:
        raise outcome[1]
    return outcome[1]
