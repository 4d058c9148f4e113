"""`inspect`: what a durable state holds, read without running anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidStateError
from . import _codec, _decode, _keys, _show, _state

__all__ = ["StateInfo", "inspect"]


@dataclass(frozen=True)
class StateInfo:
    """What a durable state says about its coroutine (see `inspect`)."""

    entry: str  #: the entry, as messages name it: ``module.function``, or a partial of one
    signature: str  #: the coroutine's ``[R, S]``
    version: str | None  #: the ``version=`` it was created with
    status: str  #: "created", "suspended", "running" (marshalled inside its body) or "done"
    steps: int  #: the yields it made (the pending one included)
    events: int  #: the events recorded: yields answered, side effects, Patched markers
    pending: Any  #: the value yielded at the pending yield (what work is waiting), or None
    pending_note: str | None  #: why `pending` is None although a yield is pending, if so
    has_pending_send: bool  #: whether an answer to the pending yield was sent before saving
    frames: int  #: 1 for a full state, plus one per delta appended
    size: int  #: bytes
    resumes: int  #: how many times this coroutine's history was restored and went on
    tag: str  #: the last frame's tag (hex): equal tags, equal states

    def __str__(self) -> str:
        """One field a line; the strings the state holds are escaped (no terminal control)."""
        version = "(none: bound to the code)" if self.version is None else self.version
        lines = [
            f"entry     {_show.shown(self.entry, None)}",
            f"types     {_show.shown(self.signature, None)}",
            f"version   {_show.shown(version, None)}",
            f"status    {self.status}",
            f"steps     {self.steps} yields ({self.events} events recorded)",
        ]
        if self.status == "suspended":
            shown = _codec._short(self.pending) if self.pending_note is None else self.pending_note
            send = "; an answer was sent" if self.has_pending_send else ""
            lines.append(f"pending   {shown}{send}")
        lines.append(f"frames    {self.frames} ({self.size:,} bytes), resumed {self.resumes} times")
        lines.append(f"tag       {self.tag}")
        return "\n".join(lines)


def inspect(b: bytes, /, *, key: bytes | str | Sequence[bytes | str] | None = None) -> StateInfo:
    """Decode a durable state (a full state, optionally followed by its deltas) without
    running anything: no entry is looked up, no registered type's code runs.

    The MAC is checked first, with `key` alone if given (a key, or a list of keys any of
    which may verify), else with the configured keys (`configure`, ``COROUTINE_STATE_KEY``).
    The state is opened with the configured transform. The pending value is decoded if it
    holds builtins only. Decoding is bounded as `Unmarshal`'s is (one memory budget for the
    whole state), and runs no code.

    >>> from typing import Any
    >>> from coroutine import New
    >>> from coroutine.durable import inspect
    >>> from coroutine.durable._inspect import _doc_body
    >>> c = New[dict[str, Any], Any](_doc_body, durable=True)
    >>> c.Next()
    True
    >>> info = inspect(c.Context().Marshal())
    >>> info.status, info.steps, info.pending
    ('suspended', 1, {'charge': 42})
    >>> c.close()

    Raises:
        InvalidStateError: the bytes are not a state, or its MAC or checksum does not match,
            or it is signed and no key is set, or unsealed while a transform is set, or
            malformed (the message says which).
        ValueError: `key` is shorter than 16 bytes.
        TypeError: `b` is not bytes, or `key` is not a key or a list of keys.
    """
    if not isinstance(b, (bytes, bytearray, memoryview)):
        raise TypeError(f"inspect takes the bytes Marshal returned, got {type(b).__name__}")
    b = bytes(b)
    keys = _keys.keys_for(key)
    budget = _decode.budget_for(len(b))
    try:
        snap = _state.read(b, keys, budget, events=False)
    except InvalidStateError as exc:
        raise InvalidStateError(str(exc).replace("cannot Unmarshal", "cannot inspect", 1)) from None
    pending, note = None, None
    if snap.pending_value is not None:
        try:
            pending = _decode.decode(snap.pending_value, registry=False, budget=budget)
        except _codec.DecodeError as exc:
            note = f"(not decoded: {exc})"
    return StateInfo(
        entry=snap.desc,
        signature=snap.sig,
        version=snap.version,
        status=_state.KINDS[snap.kind],
        steps=snap.nyields + (snap.kind == _state.K_SUSPENDED),
        events=snap.nevents,
        pending=pending,
        pending_note=note,
        has_pending_send=snap.sent is not None,
        frames=snap.frame + 1,
        size=len(b),
        resumes=snap.resumes,
        tag=snap.chain.tag.hex(),
    )


def _doc_body() -> None:
    from coroutine import Yield

    Yield[dict[str, Any], Any]({"charge": 42})
