"""The recorder of a durable coroutine, and its replay.

Theory of operation. A durable coroutine keeps a `Recorder` (the core's durability hooks)
that logs, in order, one event per thing the body could not compute by itself: each yield
(a digest of the value yielded, and what the driver answered), each `SideEffect` (what it
returned) and each `Patched` that returned True (see `_state` for the events). The body must
be deterministic given those answers, so the log, plus the entry, is the whole state.
`Unmarshal` loads a log into a fresh coroutine; its first `Next` runs the body from the start
and answers its yields and side effects from the log, without switching to the driver
(*replay*), checking each yielded value against its recorded digest. The yield that was
pending when `Marshal` ran is the *boundary*: there the replay delivers the driver's pending
`Send` as a live resume would, and the body goes on live to its next yield.

The recorder's `phase` says where it is in that story (one field, one transition each):

    FRESH      --start-->            LIVE           a new coroutine, or one restored as created
    FRESH      --Unmarshal-->        RESTORED       a suspended or running state was loaded
    RESTORED   --start-->            REPLAYING      (LIVE at once if the log is empty)
    REPLAYING  --boundary/end of log--> LIVE
    REPLAYING  --divergence-->       DIVERGED       the body is ended; no state any more
    LIVE       --unencodable value--> BROKEN        runs on volatile; Marshal says why

Only the functions under "the core's interface" touch the core's `Context` internals.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NoReturn

from greenlet import GreenletExit

from . import _codec, _state
from ._context import CREATED, DONE, NOTHING, SUSPENDED, Context
from ._entry import Entry
from ._errors import (
    CoroutineExit,
    InvalidStateError,
    NotDurableError,
    NotInCoroutineError,
    ResumeError,
    YieldTypeError,
)
from ._signature import Rule
from ._state import K_CREATED, K_DONE, K_RUNNING, K_SUSPENDED, E, N, P, T, X, Y

__all__ = ["CHAIN", "Recorder", "wrap"]

FRESH, RESTORED, REPLAYING, LIVE, BROKEN, DIVERGED = (
    "fresh", "restored", "replaying", "live", "broken", "diverged"
)  # fmt: skip

# The durable recorders whose bodies enclose the running code, outermost first. Set by each
# durable body in its own contextvars context; inner coroutines inherit it, so a side effect
# in a volatile coroutine nested in a durable body is recorded by that body.
CHAIN: ContextVar[tuple[Recorder, ...]] = ContextVar("coroutine.durable_chain", default=())


# -- the core's interface: the only code that reads or writes a Context's private fields ------


def _take_sent(ctx: Context[Any, Any]) -> Any:
    """The Send pending for the yield the replay resumes at, cleared as a yield clears it."""
    sent = ctx._sent
    ctx._sent = NOTHING
    return sent


def _end_body(ctx: Context[Any, Any], err: BaseException) -> NoReturn:
    """End the running body: its driver's operation raises `err`; the body never resumes."""
    if ctx._driver is None or ctx._state is DONE:
        raise err
    ctx._state = DONE
    ctx._exc = err
    try:
        ctx._driver.switch(None)
    except GreenletExit:  # the abandoned body is collected: unwind it as a stop
        raise CoroutineExit from None
    raise err


def _restore(ctx: Context[Any, Any], *, done: bool, sent: Any, result: Any) -> None:
    """Load a restored position into a created coroutine."""
    ctx._recv = None
    ctx._sent = sent
    if done:
        coro = ctx._coro()
        ctx._result = result if coro is not None and coro._with_return else None
        ctx._state = DONE
        ctx._vars = None


_PACKAGE = os.path.dirname(__file__) + os.sep


def user_site() -> str | None:
    """``file:line`` of the innermost frame outside this package."""
    frame: Any = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    return None if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


# -- the body ----------------------------------------------------------------------------------


def wrap(fn: Callable[[], Any], rec: Recorder) -> Callable[[], Any]:
    """The body a durable coroutine really runs: `fn` with the recorder around it."""

    def body() -> Any:
        CHAIN.set((*CHAIN.get(), rec))
        rec.start()
        try:
            result = fn()
        except Exception as exc:
            phase = rec.phase
            if phase is DIVERGED and isinstance(exc, InvalidStateError):
                raise
            if phase is REPLAYING or phase is DIVERGED:
                raise InvalidStateError(
                    f"replay diverged: the body raised {_codec._short(exc)} after {rec.nyield} "
                    f"yields, before reaching the recorded position ({rec.where()}); the body "
                    "is not deterministic given what it receives"
                ) from exc
            raise
        if rec.phase is REPLAYING:
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


class Recorder:
    """The log of one durable coroutine, and its replay."""

    __slots__ = (
        "broken", "cursor", "entry", "events", "framed", "in_effect", "kind", "log", "nevents",
        "nyield", "origin", "patches", "pending", "pending_raw", "phase", "resumes", "saved",
        "sig", "tag", "version",
    )  # fmt: skip

    # Invariants:
    # phase is one of the phases above (see the module's docstring for its transitions).
    # log holds nevents complete events, in the order the body met them; saved is the
    #   (bytes, events) of it in the frames written so far (or loaded), framed what those
    #   frames hold (less when a done state dropped its log); tag is the last frame's tag,
    #   None before any frame.
    # pending/pending_raw are the digest and canonical encoding of the yield the body is
    #   suspended at (live), or of the yield a restored state was suspended at until the
    #   replay passes it; None otherwise.
    # events is the decoded log to replay while RESTORED or REPLAYING, else None; cursor
    #   indexes the next event to replay; kind is the K_* loaded by Unmarshal meanwhile.
    # broken is why this coroutine can no longer be marshalled (phase BROKEN), else None.
    # in_effect counts SideEffect functions running live in this body (no yield there).
    # nyield counts the yields since the body started (for messages).
    # patches maps each change-id Patched decided in this run to its answer.
    # origin/resumes: the tag of the state this run was restored from and how many restores
    #   its history went through (both as loaded until the replay passes the boundary).
    sig: str
    entry: Entry
    version: str | None
    phase: str
    log: bytearray
    nevents: int
    saved: tuple[int, int]
    framed: tuple[int, int]
    tag: bytes | None
    pending: bytes | None
    pending_raw: bytes | None
    events: list[_state.Event] | None
    cursor: int
    kind: int
    broken: str | None
    in_effect: int
    nyield: int
    patches: dict[str, bool]
    origin: bytes
    resumes: int

    def __init__(self, sig: str, entry: Entry, version: str | None) -> None:
        self.sig = sig
        self.entry = entry
        self.version = version
        self.phase = FRESH
        self.log = bytearray()
        self.nevents = 0
        self.saved = self.framed = (0, 0)
        self.tag = self.pending = self.pending_raw = self.events = self.broken = None
        self.cursor = self.in_effect = self.nyield = self.resumes = 0
        self.kind = K_CREATED
        self.patches = {}
        self.origin = b""

    # -- hooks the core calls --------------------------------------------------------------

    def status(self, state: str) -> str:
        return SUSPENDED if self.phase is RESTORED else state

    def before_start(self, ctx: Context[Any, Any]) -> None:
        pass  # the wrapped body starts the replay (`start`), in the body's own context

    def replays_stop(self) -> bool:
        """Whether a `Stop` before the first `Next` must still replay the body, to unwind it
        from the restored yield."""
        return self.phase is RESTORED and self.kind == K_SUSPENDED

    def start(self) -> None:
        if self.phase is FRESH:
            self.phase = LIVE
        elif self.phase is RESTORED:
            self.cursor = 0
            self.phase = REPLAYING
            if not self.events and self.pending is None:
                self._end_replay()

    def on_yield(self, ctx: Context[Any, Any], value: object, rule: Rule, switch: Any) -> Any:
        phase = self.phase
        if phase is REPLAYING:
            return self._replay_yield(ctx, value, rule)
        if self.in_effect:
            raise NotDurableError(
                "Yield inside a SideEffect function: the side effect's result is recorded, "
                "not what happens inside it, so its yields could not be replayed; yield "
                "before or after SideEffect(fn) instead"
            )
        if phase is not LIVE or ctx._stopping:
            return switch(ctx, value, rule)  # nothing to record (or switch refuses)
        try:
            d, raw = _codec.digest_and_canonical(value)
        except _codec.EncodeError as exc:
            self._break(f"yield {self.nyield} yielded a value that {exc}")
            return switch(ctx, value, rule)
        self.nyield += 1
        self.pending = d
        self.pending_raw = raw
        try:
            sent = switch(ctx, value, rule)
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
            self.pending = self.pending_raw = None

    # -- replay ----------------------------------------------------------------------------

    def _replay_yield(self, ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
        n = self.nyield
        self.nyield = n + 1
        try:
            d = _codec.digest(value)
        except _codec.EncodeError as exc:
            self._diverge(ctx, f"yield {n} yielded a value that the recorded run did not: {exc}")
        events = self.events
        assert events is not None
        i = self.cursor
        if i < len(events):
            kind, recorded, payload = events[i]
            if recorded != d:
                if kind == Y or kind == N or kind == T:
                    self._diverge(
                        ctx,
                        f"yield {n} differs: the body yielded {_codec._short(value)}, the "
                        f"recorded run yielded {_codec.describe_digest(recorded)}",
                    )
                self._diverge(ctx, f"the body made yield {n} ({_codec._short(value)}) where "
                              f"the recorded run {_did(kind, payload)}")  # fmt: skip
            self.cursor = i = i + 1
            if i == len(events) and self.pending is None:
                self._end_replay()
            if kind == Y:
                return payload
            if kind == N:
                raise _nothing_sent(ctx)
            raise _state.rebuild(payload)
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
        sent = _take_sent(ctx)
        if sent is NOTHING:
            if not rule.none_ok:
                self._append(b"N" + d)
                raise _nothing_sent(ctx)
            sent = None
        self._append_value(b"Y" + d, sent, n)
        return sent

    def _end_replay(self) -> None:
        self.phase = LIVE
        self.events = None
        self.pending = self.pending_raw = None
        if self.tag is not None:  # a new history branches off the state restored
            self.origin = self.tag
            self.resumes += 1

    def next_event(self, kinds: bytes, what: str) -> _state.Event:
        """The recorded event the replaying body must meet now, one of `kinds`; else the
        replay diverges (raised at the call: SideEffect and Patched run in the body)."""
        events = self.events
        assert events is not None
        i = self.cursor
        if i >= len(events) or events[i][0] not in kinds:
            found = "reached the end of its record" if i >= len(events) else _did(*events[i][::2])
            self.phase = DIVERGED
            raise InvalidStateError(
                f"replay diverged: the body {what} where the recorded run {found}; the body "
                "is not deterministic given what it receives"
            )
        self.cursor = i + 1
        if i + 1 == len(events) and self.pending is None:
            self._end_replay()
        return events[i]

    def peek(self) -> _state.Event | None:
        events = self.events
        return events[self.cursor] if events is not None and self.cursor < len(events) else None

    def _diverge(self, ctx: Context[Any, Any], what: str) -> NoReturn:
        """End the body: the driver's `Next` raises InvalidStateError (the body cannot catch it)."""
        self.phase = DIVERGED
        _end_body(
            ctx,
            InvalidStateError(
                f"replay diverged: {what}. The body is not deterministic given what it "
                "receives (or it changed); route time, randomness and I/O through Yield or "
                "SideEffect, and guard changed code with Patched"
            ),
        )

    def where(self) -> str:
        total = sum(1 for e in self.events or () if e[0] in b"YNT") + (self.pending is not None)
        return f"{total} yields in all were recorded"

    # -- recording -------------------------------------------------------------------------

    def _append(self, event: bytes) -> None:
        self.log += event
        self.nevents += 1

    def append_value(self, head: bytes, value: object, what: str) -> None:
        if self.phase is not LIVE:
            return
        try:
            self.log += head + _codec.encode(value)
            self.nevents += 1
        except _codec.EncodeError as exc:
            self._break(f"{what}: {exc}")

    def _append_value(self, head: bytes, value: object, index: int) -> None:
        self.append_value(head, value, f"the value sent to yield {index}")

    def _append_exc(self, head: bytes, exc: BaseException, what: str) -> None:
        if self.phase is not LIVE:
            return
        try:
            self._append(head + _codec.encode(_state.exc_spec(exc)))
        except _codec.EncodeError as err:
            self._break(f"the exception {_codec._short(exc)} {what}: {err}")

    def _break(self, reason: str) -> None:
        self.phase = BROKEN
        self.broken = reason

    def record_effect(self, raised: bool, value: Any) -> None:
        if raised:
            self._append_exc(b"X", value, "raised by a SideEffect")
        else:
            self.append_value(b"E", value, "a SideEffect's result")

    # -- the state -------------------------------------------------------------------------

    def marshal(self, ctx: Context[Any, Any]) -> bytes:
        return self._frame(ctx, "Marshal", delta=False)

    def marshal_delta(self, ctx: Context[Any, Any]) -> bytes:
        return self._frame(ctx, "MarshalDelta", delta=self.tag is not None)

    def _frame(self, ctx: Context[Any, Any], op: str, delta: bool) -> bytes:
        if self.phase is BROKEN:
            raise NotDurableError(
                f"{op}: this durable coroutine stopped recording when {self.broken}"
            )
        if self.phase is DIVERGED:
            raise NotDurableError(f"{op}: this coroutine's replay diverged; it has no state")
        kind = self._kind(ctx._state)
        suspended, done = kind == K_SUSPENDED, kind == K_DONE
        sent = result = None
        try:
            if suspended and ctx._sent is not NOTHING:
                sent = _codec.encode(ctx._sent)
            if done and ctx._result is not None:
                result = _codec.encode(ctx._result)
        except _codec.EncodeError as exc:
            what = "the pending Send" if suspended else "the result"
            raise NotDurableError(f"{op}: {what} cannot be encoded: {exc}") from None
        position = (kind, self.pending if suspended else None,
                    self.pending_raw if suspended else None, sent, result)  # fmt: skip
        log_at, events_at = self.saved
        if delta:
            chunk = b"" if done else bytes(self.log[log_at:])
            before, framed_events = self.framed
            framed_events += 0 if done else self.nevents - events_at
            fields: tuple[Any, ...] = (before, kind, chunk, framed_events, *position[1:])
            self.framed = (before + len(chunk), framed_events)
        else:
            log = b"" if done else bytes(self.log)
            nevents = 0 if done else self.nevents
            fields = (self.sig, self.entry.ref, self.entry.desc, self.entry.fp, self.version,
                      kind, log, nevents, *position[1:], self.origin, self.resumes)  # fmt: skip
            self.framed = (len(log), nevents)
        b, self.tag = _state.frame(_state.DELTA if delta else _state.FULL, fields,
                                   self.tag if delta else None)  # fmt: skip
        self.saved = (len(self.log), self.nevents)
        return b

    def _kind(self, state: str) -> int:
        if state is DONE:
            return K_DONE
        if self.phase is RESTORED or self.phase is REPLAYING:
            return self.kind  # restored, and the replay is not yet past the boundary
        if state is CREATED:
            return K_CREATED
        # Marshalled from inside the body (running): it resumes after the last event.
        return K_SUSPENDED if state is SUSPENDED else K_RUNNING

    def unmarshal(self, ctx: Context[Any, Any], b: bytes) -> None:
        if not isinstance(b, (bytes, bytearray, memoryview)):
            raise TypeError(f"Unmarshal takes the bytes Marshal returned, got {type(b).__name__}")
        if ctx._state is not CREATED or self.phase is not FRESH or self.tag is not None:
            raise ResumeError(
                "Unmarshal restores state into a coroutine that has not started; this one "
                f"is {ctx._state}: create a new one with New(..., durable=True) for the state"
            )
        got = _state.load(bytes(b), self.sig, self.entry, self.version, ctx._sig.check_s)
        snap = got.snap
        # Validated: now apply, all at once.
        self.log = bytearray(snap.log)
        self.nevents = snap.nevents
        self.saved = self.framed = (len(snap.log), snap.nevents)
        self.tag, self.origin, self.resumes = snap.tag, snap.origin, snap.resumes
        self.kind = snap.kind
        self.pending, self.pending_raw = snap.pending, snap.pending_value
        if snap.kind == K_SUSPENDED or snap.kind == K_RUNNING:
            self.events = got.events
            self.phase = RESTORED
        sent = NOTHING if got.sent is _state.NO_SEND else got.sent
        _restore(ctx, done=snap.kind == K_DONE, sent=sent, result=got.result)


def _did(kind: int, payload: Any) -> str:
    if kind == E or kind == X:
        return "called SideEffect"
    if kind == P:
        return f"passed Patched({_codec._short(payload)})"
    return "made a yield"


def _nothing_sent(ctx: Context[Any, Any]) -> YieldTypeError:
    return YieldTypeError(
        f"the coroutine {ctx._sig} resumed without a value, but this yield's send type does "
        "not admit None; call Send before Next (or declare the yield's S as Optional)",
        expected=ctx._sig.s,
        got=None,
        site=user_site(),
    )
