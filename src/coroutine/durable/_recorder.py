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

Only `_core` touches the core's `Context` internals; this module reads a few.
"""

from __future__ import annotations

from typing import Any, NoReturn

from .._context import CREATED, DONE, SUSPENDED, Context
from .._errors import (
    CoroutineExit,
    InvalidStateError,
    NotDurableError,
    NotInCoroutineError,
    ResumeError,
    YieldTypeError,
)
from .._signature import Rule
from . import _codec, _decode, _digest, _log, _state
from ._core import (
    NOTHING,
    end_from_body,
    nothing_sent,
    pending_send,
    restore,
    switch_out,
)
from ._entry import Entry
from ._log import E, N, P, T, X, Y
from ._state import K_CREATED, K_DONE, K_RUNNING, K_SUSPENDED

__all__ = ["BROKEN", "DIVERGED", "FRESH", "LIVE", "REPLAYING", "RESTORED", "Recorder"]

FRESH, RESTORED, REPLAYING, LIVE, BROKEN, DIVERGED = (
    "fresh", "restored", "replaying", "live", "broken", "diverged"
)  # fmt: skip


class Recorder:
    """The log of one durable coroutine, and its replay."""

    __slots__ = (
        "ahead", "base", "broken", "chain", "entry", "events", "in_effect", "kind", "log",
        "nevents", "nyield", "nyields", "origin", "patches", "pending", "pending_raw", "phase",
        "resumes", "saved", "sig", "thrown", "version",
    )  # fmt: skip

    # Invariants:
    # phase is one of the phases above (see the module's docstring for its transitions).
    # nevents events were recorded in all, nyields of them yields: those of base (the
    #   events region of the state restored: (buf, start, end, joined), joined if it holds
    #   no S/D records between its events; None for a new coroutine)
    #   followed by log (recorded in this process); log[:saved] is in the frames written
    #   (chain: the hash and tag of those frames; None before the first).
    # pending/pending_raw are the digest and canonical encoding of the yield the body is
    #   suspended at (live), or of the yield a restored state was suspended at until the
    #   replay passes it; None otherwise.
    # events reads base's events while RESTORED or REPLAYING, else None; ahead is the next
    #   event, read (by `peek`) but not replayed; kind is the K_* Unmarshal loaded meanwhile.
    # broken is why this coroutine can no longer be marshalled (phase BROKEN), else None.
    # in_effect counts SideEffect functions running live in this body (no yield there).
    # nyield counts the yields since the body started (for messages).
    # patches maps each change-id Patched decided in this run to its answer.
    # origin/resumes: the tag of the state this run was restored from and how many restores
    #   its history went through (both as loaded until the replay passes the boundary).
    # thrown is the exception the replay last raised into the body (a thrown-in or SideEffect
    #   exception read from the state, or the YieldTypeError of a yield resumed with nothing
    #   sent) until the body records or marshals something after it, else None. If it leaves
    #   the body meanwhile, the body never reached the recorded position: `escaped` makes
    #   that a divergence, not the body's own exception.
    base: tuple[bytes, int, int, bool] | None
    chain: _state.Chain | None
    pending: bytes | None
    pending_raw: bytes | None
    events: _log.Events | None
    ahead: _log.Event | None
    thrown: BaseException | None
    broken: str | None
    patches: dict[str, bool]

    def __init__(self, sig: str, entry: Entry, version: str | None) -> None:
        self.sig = sig
        self.entry = entry
        self.version = version
        self.phase: str = FRESH
        self.log = bytearray()
        self.base = self.chain = self.pending = self.pending_raw = self.broken = None
        self.events = self.ahead = self.thrown = None
        self.nevents = self.nyields = self.saved = 0
        self.in_effect = self.nyield = self.resumes = 0
        self.kind = K_CREATED
        self.patches = {}
        self.origin = b""

    # -- hooks the core calls --------------------------------------------------------------

    def status(self, state: str) -> str:
        return SUSPENDED if self.phase is RESTORED else state

    def replays_stop(self) -> bool:
        """Whether a `Stop` before the first `Next` must still replay the body, to unwind it
        from the restored yield."""
        return self.phase is RESTORED and self.kind == K_SUSPENDED

    def start(self) -> None:
        if self.phase is FRESH:
            self.phase = LIVE
        elif self.phase is RESTORED:
            self.phase = REPLAYING
            if self.peek() is None and self.pending is None:
                self._end_replay()

    def on_yield(self, ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
        phase = self.phase
        if phase is REPLAYING:
            return self._replay_yield(ctx, value, rule)
        if self.in_effect:
            raise NotDurableError(
                "Yield inside a SideEffect function: the side effect's result is recorded, "
                "not what happens inside it, so its yields could not be replayed; yield "
                "before or after SideEffect(fn) instead"
            )
        if phase is DIVERGED:  # the body caught the divergence raised by SideEffect or Patched
            self._diverge(ctx, "the body went on after it")
        if phase is not LIVE or ctx._stopping:
            return switch_out(ctx, value, rule)  # nothing to record (or it refuses)
        try:
            d, raw = _digest.digest_and_canonical(value)
        except _codec.EncodeError as exc:
            self._break(f"yield {self.nyield} yielded a value that {exc}")
            return switch_out(ctx, value, rule)
        self.nyield += 1
        self.pending = d
        self.pending_raw = raw
        try:
            sent = switch_out(ctx, value, rule)
        except YieldTypeError:  # resumed with nothing sent, and S does not admit None
            self._append(b"N" + d, 1)
            raise
        except (CoroutineExit, NotInCoroutineError, ResumeError):
            raise  # a stop unwinds the body; the others happen before any switch
        except BaseException as exc:  # thrown in by the driver
            self._append_exc(b"T" + d, exc, "thrown at yield", 1)
            raise
        else:
            self.append_value(b"Y" + d, sent, f"the value sent to yield {self.nyield - 1}", 1)
            return sent
        finally:
            self.pending = self.pending_raw = None

    # -- replay ----------------------------------------------------------------------------

    def _replay_yield(self, ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
        n = self.nyield
        self.nyield = n + 1
        event = self.ahead  # `peek()` and consume, inlined: this is the replay's hot path
        if event is None and self.events is not None:
            try:
                event = self.events.next()
            except InvalidStateError as err:
                self.phase = DIVERGED
                end_from_body(ctx, err)
        self.ahead = None
        if event is not None:
            kind, recorded, payload = event
            if recorded is None or not self._matches(ctx, n, value, recorded):
                if kind == Y or kind == N or kind == T:
                    self._diverge(
                        ctx,
                        f"yield {n} differs: the body yielded {_codec._short(value)}, the "
                        f"recorded run yielded {_digest.describe_digest(recorded)}",
                    )
                self._diverge(ctx, f"the body made yield {n} ({_codec._short(value)}) where "
                              f"the recorded run {_did(kind, payload)}")  # fmt: skip
            if self.pending is None and self.peek() is None:
                self._end_replay()
            if kind == Y:
                return payload
            raised = nothing_sent(ctx) if kind == N else payload
            self.thrown = raised
            raise raised
        # The boundary: the yield the marshalled coroutine was suspended at.
        if not self._matches(ctx, n, value, self.pending or b"\0"):
            self._diverge(
                ctx,
                f"yield {n} differs: the body yielded {_codec._short(value)}, the recorded run "
                f"was suspended at {_digest.describe_digest(self.pending or b'')}",
            )
        self._end_replay()
        if ctx._stopping:  # stopped after Unmarshal: unwind from the recorded yield
            raise CoroutineExit
        d = _digest.digest(value)
        sent = pending_send(ctx)
        if sent is NOTHING:
            if not rule.none_ok:
                self._append(b"N" + d, 1)
                raise nothing_sent(ctx)
            sent = None
        self.append_value(b"Y" + d, sent, f"the value sent to yield {n}", 1)
        return sent

    def _matches(self, ctx: Context[Any, Any], n: int, value: object, recorded: bytes) -> bool:
        try:
            return _digest.matches(value, recorded)
        except _codec.EncodeError as exc:
            self._diverge(ctx, f"yield {n} yielded a value that the recorded run did not: {exc}")

    def peek(self) -> _log.Event | None:
        """The next recorded event to replay, without replaying it; None past the last.

        Raises InvalidStateError (and the replay diverges) if it is malformed."""
        if self.ahead is None and self.events is not None:
            try:
                self.ahead = self.events.next()
            except InvalidStateError:
                self.phase = DIVERGED
                raise
        return self.ahead

    def next_event(self, kinds: bytes, what: str) -> _log.Event:
        """The recorded event the replaying body must meet now, one of `kinds`; else the
        replay diverges (raised at the call: SideEffect and Patched run in the body)."""
        event = self.peek()
        if event is None or event[0] not in kinds:
            found = "reached the end of its record" if event is None else _did(event[0], event[2])
            self.phase = DIVERGED
            raise InvalidStateError(
                f"replay diverged: the body {what} where the recorded run {found}; the body "
                "is not deterministic given what it receives"
            )
        self.ahead = None
        if self.pending is None and self.peek() is None:
            self._end_replay()
        if event[0] == X:
            self.thrown = event[2]
        return event

    def escaped(self, exc: BaseException) -> InvalidStateError | None:
        """The error to raise instead of `exc` leaving the body, if `exc` is an exception the
        replay raised and the body has not reached the recorded position since (a forged
        thrown-in exception, or a nondeterministic body); else None."""
        if exc is not self.thrown:
            return None
        self.thrown = None
        self.phase = DIVERGED
        return InvalidStateError(
            f"replay diverged: the recorded exception {_codec._short(exc)} left the body "
            f"after {self.nyield} yields, before it reached the recorded position "
            f"({self.where()}); the state is forged, or the body is not deterministic "
            "given what it receives"
        )

    def _end_replay(self) -> None:
        self.phase = LIVE
        self.events = self.ahead = None
        self.pending = self.pending_raw = None
        if self.chain is not None:  # a new history branches off the state restored
            self.origin = self.chain.tag
            self.resumes += 1

    def _diverge(self, ctx: Context[Any, Any], what: str) -> NoReturn:
        """End the body: the driver's `Next` raises InvalidStateError (the body cannot catch it)."""
        self.phase = DIVERGED
        end_from_body(
            ctx,
            InvalidStateError(
                f"replay diverged: {what}. The body is not deterministic given what it "
                "receives (or it changed); route time, randomness and I/O through Yield or "
                "SideEffect, and guard changed code with Patched"
            ),
        )

    def where(self) -> str:
        return f"{self.nyields} yields in all were recorded"

    # -- recording -------------------------------------------------------------------------

    def _append(self, event: bytes, yields: int = 0) -> None:
        self.thrown = None
        self.log += event
        self.nevents += 1
        self.nyields += yields

    def append_value(self, head: bytes, value: object, what: str, yields: int = 0) -> None:
        if self.phase is not LIVE:
            return
        try:
            self._append(head + _codec.encode(value), yields)
        except _codec.EncodeError as exc:
            self._break(f"{what}: {exc}")

    def _append_exc(self, head: bytes, exc: BaseException, what: str, yields: int = 0) -> None:
        if self.phase is not LIVE:
            return
        try:
            self._append(head + _codec.encode(_log.exc_spec(exc)), yields)
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
        return self._frame(ctx, "MarshalDelta", delta=self.chain is not None)

    def _frame(self, ctx: Context[Any, Any], op: str, delta: bool) -> bytes:
        if self.phase is BROKEN:
            raise NotDurableError(
                f"{op}: this durable coroutine stopped recording when {self.broken}"
            )
        if self.phase is DIVERGED:
            raise NotDurableError(f"{op}: this coroutine's replay diverged; it has no state")
        self.thrown = None
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
        pending = (self.pending, self.pending_raw) if suspended else (None, None)
        position = (kind, self.nevents, self.nyields, *pending, sent, result)
        if delta:
            assert self.chain is not None
            events = b"" if done else bytes(self.log[self.saved :])
            b = self.chain.delta(events, position, self.resumes)
        else:
            events = b"" if done else self._events()
            header = (self.sig, self.entry.ref, self.entry.desc, self.entry.fp, self.version,
                      self.origin, self.resumes)  # fmt: skip
            b, self.chain = _state.Chain.full(header, events, position)
        self.saved = len(self.log)
        return b

    def _events(self) -> bytes:
        """Every event recorded, for a full state."""
        if self.base is None:
            return bytes(self.log)
        buf, start, end, joined = self.base
        if joined:
            return buf[start:end] + self.log
        try:
            events = _log.strip(buf, start, end, _decode.budget_for(end - start))
        except _codec.DecodeError as exc:
            raise InvalidStateError(
                f"Marshal: the state this coroutine was restored from is malformed: {exc}"
            ) from None
        return events + self.log

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
        if ctx._state is not CREATED or self.phase is not FRESH:
            raise ResumeError(
                "Unmarshal restores state into a coroutine that has not started; this one "
                f"is {ctx._state}: create a new one with New(..., durable=True) for the state"
            )
        b = bytes(b)
        snap = _state.load(b, self.sig, self.entry, self.version)
        check = ctx._sig.check_s
        sent = _state.value(snap.sent, "the pending Send", check, snap.budget)
        result = _state.value(snap.result, "the result", None, snap.budget)
        # Validated: now apply, all at once.
        self.base = (snap.buf, snap.start, snap.end, snap.joined)
        self.nevents, self.nyields = snap.nevents, snap.nyields
        self.chain, self.origin, self.resumes = snap.chain, snap.origin, snap.resumes
        self.kind = snap.kind
        self.pending, self.pending_raw = snap.pending, snap.pending_value
        if snap.kind == K_SUSPENDED or snap.kind == K_RUNNING:
            self.events = _log.Events(
                snap.buf, snap.start, snap.end, snap.nevents, snap.budget, check
            )
            self.phase = RESTORED
        restore(ctx, done=snap.kind == K_DONE, sent=NOTHING if snap.sent is None else sent,
                result=result)  # fmt: skip


def _did(kind: int, payload: Any) -> str:
    if kind == E or kind == X:
        return "called SideEffect"
    if kind == P:
        return f"passed Patched({_codec._short(payload)})"
    return "made a yield"
