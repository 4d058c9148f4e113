"""Durable coroutines: what the core attaches, and what bodies call.

The layer: `_entry` (how another process finds a body; its fingerprint), `_recorder` (the
recorder, its one `phase`, and the replay), `_state` (the bytes of a state: frames, MAC,
header, position), `_log` (the events, read lazily; recorded exceptions), `_core`
(the only code that touches the core's internals) and this façade. The core does not import
the layer: `coroutine._durability.attach`, the core's hook, imports this module when the first
durable coroutine is made and calls `attach`, which makes a coroutine durable (its body
`wrap`-ped, its `Durability` a `Recorder`); `coroutine.SideEffect` and `coroutine.Patched`
call `side_effect` and `patched` once it is loaded. The public tools (`inspect`, `configure`,
`ContinueAsNew`, `replay_elsewhere`) live in `coroutine.durable`.
"""

from __future__ import annotations

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

__all__ = ["FORMAT_VERSION", "attach", "patched", "side_effect"]

T = TypeVar("T")


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


def side_effect(fn: Callable[[], T], /) -> T:
    """`coroutine.SideEffect` once the layer is loaded (its docstring says what it does)."""
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


def patched(change_id: str, /) -> bool:
    """`coroutine.Patched` once the layer is loaded, for a `change_id` it checked."""
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
