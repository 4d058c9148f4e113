"""Durable coroutines: what the core attaches, and the helpers bodies call.

The layer: `_entry` (how another process finds a body; its fingerprint), `_recorder` (the
recorder, its one `phase`, and the replay), `_state` (the bytes of a state: frames, MAC,
header, position), `_log` (the events, read lazily; recorded exceptions), `_core`
(the only code that touches the core's internals) and this façade, which the core imports:
`attach` makes a coroutine durable (its body `wrap`-ped), `DURABLE` is the default of
``durable=``, and bodies call `SideEffect` and `Patched`. The public tools (`inspect`,
`configure`, `ContinueAsNew`, `replay_elsewhere`) live in `coroutine.durable`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from .._context import Context, Durability
from .._errors import InvalidStateError, NotDurableError
from .._signature import Rule
from . import _codec
from ._core import switch_out
from ._entry import Refusal, entry
from ._log import E, P, X
from ._recorder import DIVERGED, LIVE, REPLAYING, Recorder
from ._state import FORMAT_VERSION

__all__ = ["DURABLE", "FORMAT_VERSION", "Patched", "SideEffect", "attach"]

T = TypeVar("T")

DURABLE: bool = os.environ.get("COROUTINE_DURABLE", "") == "1"
"""The default of ``durable=``: True iff COROUTINE_DURABLE=1 was set at import."""


# The durable recorders whose bodies enclose the running code, outermost first. Set by each
# durable body in its own contextvars context; inner coroutines inherit it, so a side effect
# in a volatile coroutine nested in a durable body is recorded by that body.
CHAIN: ContextVar[tuple[Recorder, ...]] = ContextVar("coroutine.durable_chain", default=())


def wrap(fn: Callable[[], Any], rec: Recorder) -> Callable[[], Any]:
    """The body a durable coroutine really runs: `fn` with the recorder around it."""

    def body() -> Any:
        CHAIN.set((*CHAIN.get(), rec))
        rec.start()
        try:
            result = fn()
        except Exception as exc:
            escaped = rec.escaped(exc)  # an exception the replay raised, unhandled: refused
            if escaped is not None:
                raise escaped from exc
            phase = rec.phase
            if phase is DIVERGED and isinstance(exc, InvalidStateError):
                raise
            if isinstance(exc, (MemoryError, RecursionError)):
                raise  # a fault of this process, not a divergence of the body
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


# -- attaching: the core's entry point --------------------------------------------------------


def attach(
    fn: Callable[[], Any], sig: Any, *, explicit: bool, version: str | None = None
) -> tuple[Durability, Callable[[], Any]]:
    """The durability hooks of a coroutine with entry `fn` and signature `sig`, and the body
    it runs: `fn` wrapped by the recorder; or, for an entry that cannot be recorded when
    durability is only the default, hooks that say why, and `fn` itself.

    Raises:
        NotDurableError: `explicit` and the entry cannot be recorded.
        TypeError: `version` is not a str.
    """
    if version is not None and not isinstance(version, str):
        raise TypeError(f"version= takes a str naming the program's version, got {version!r}")
    try:
        found = entry(fn)
    except Refusal as why:
        reason = (
            f"its entry {fn!r} cannot be recorded: {why}. Durable entries are module-level "
            "functions, or functools.partial of one with encodable arguments"
        )
        if explicit:
            raise NotDurableError(f"New(..., durable=True): {reason}") from None
        return _Refused(reason), fn
    rec = Recorder(repr(sig), found, version)
    return rec, wrap(fn, rec)


class _Refused:
    """The durability hooks of a coroutine left volatile by the default: remembers why."""

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

    def marshal_delta(self, ctx: Context[Any, Any]) -> bytes:
        raise self._refuse("MarshalDelta")

    def unmarshal(self, ctx: Context[Any, Any], b: bytes) -> None:
        raise self._refuse("Unmarshal")

    def on_yield(self, ctx: Context[Any, Any], value: object, rule: Rule) -> Any:
        return switch_out(ctx, value, rule)

    def status(self, state: str) -> str:
        return state

    def replays_stop(self) -> bool:
        return False


# -- what bodies call ----------------------------------------------------------------------------


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
        BaseException: what `fn` raised (an `Exception` is rebuilt from its class and
            ``args`` on replay).
        InvalidStateError: on replay, the recorded run did something else here.
        NotDurableError: `fn` yielded.
    """
    chain = CHAIN.get()
    if not chain:
        return fn()
    outcome: tuple[bool, Any] | None = None  # (raised, what fn returned or raised)
    for rec in _replaying(chain):
        kind, _, payload = rec.next_event(bytes((E, X)), "called SideEffect")
        got = (kind == X, payload)  # the value returned, or the exception rebuilt
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
    for rec in chain:
        if rec.phase is LIVE:
            rec.record_effect(*outcome)
    value: Any = outcome[1]
    if outcome[0]:
        raise value
    return value  # type: ignore[no-any-return]


def _replaying(chain: tuple[Recorder, ...]) -> list[Recorder]:
    """The recorders of `chain` replaying now (raising if one of them diverged)."""
    out = []
    for rec in chain:
        if rec.phase is DIVERGED:
            raise InvalidStateError("replay diverged: this coroutine is ending")
        if rec.phase is REPLAYING:
            out.append(rec)
    return out


def Patched(change_id: str, /) -> bool:
    """Whether the code guarded by `change_id` runs: True in new executions, False when
    replaying a history recorded before the change (Temporal's ``workflow.patched``).

    A durable coroutine created with ``version="..."`` resumes its states whatever its
    code has become since; a change that would make an old history replay differently is
    written as ``if Patched("change-id"): new code  else: old code``. The first call for an
    id in a run decides, and is recorded when it returns True (a marker in the state);
    later calls for that id in the same run return the same answer. Replaying a history
    recorded with the marker returns True there; without it, False. A replay that meets a
    recorded marker where the body does not call `Patched` diverges (`InvalidStateError`):
    keep a `Patched` call until no state recorded before it remains, then remove the old
    branch, the call last.

    Outside a durable coroutine, and in a volatile one, it returns True (the new code).

    >>> from coroutine import Patched
    >>> Patched("use-new-tax-rule")
    True

    Raises:
        TypeError: `change_id` is not a non-empty str.
        InvalidStateError: the replay of this coroutine diverged.
    """
    if not isinstance(change_id, str) or not change_id:
        raise TypeError(f"Patched takes a non-empty str naming the change, got {change_id!r}")
    chain = CHAIN.get()
    if not chain:
        return True
    answer: bool | None = None
    for rec in chain:
        known = rec.patches.get(change_id)
        if known is not None:
            answer = known if answer is None else answer
        elif rec.phase is REPLAYING:
            event = rec.peek()
            hit = event is not None and event[0] == P and event[2] == change_id
            if hit:
                rec.next_event(bytes((P,)), f"passed Patched({change_id!r})")
            answer = hit if answer is None else answer
        elif rec.phase is DIVERGED:
            raise InvalidStateError("replay diverged: this coroutine is ending")
    if answer is None:
        answer = True
    for rec in chain:
        if change_id not in rec.patches:
            rec.patches[change_id] = answer
            if answer and rec.phase is LIVE:
                rec.append_value(b"P", change_id, "a Patched marker")
    return answer
