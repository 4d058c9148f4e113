"""`inspect`: what a durable state holds, read without running anything; and `configure`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import InvalidStateError
from . import _codec, _decode, _state

__all__ = ["StateInfo", "configure", "inspect"]


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
        lines = [
            f"entry     {self.entry}",
            f"types     {self.signature}",
            f"version   {'(none: bound to the code)' if self.version is None else self.version}",
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


def inspect(b: bytes, /, *, key: bytes | str | None = None) -> StateInfo:
    """Decode a durable state (a full state, optionally followed by its deltas) without
    running anything: no entry is looked up, no registered type's code runs.

    The MAC is checked first, with `key` or the configured key (`configure`,
    ``COROUTINE_STATE_KEY``). The pending value is decoded if it holds builtins only.

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
            or it is signed and no key is set (the message says which).
    """
    if not isinstance(b, (bytes, bytearray, memoryview)):
        raise TypeError(f"inspect takes the bytes Marshal returned, got {type(b).__name__}")
    b = bytes(b)
    budget = _decode.budget_for(len(b))
    try:
        snap = _state.read(b, _state.key_for(key), budget)
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


def configure(
    *, key: bytes | str | None = _state._UNSET, transform: _state.Transform | None = _state._UNSET
) -> None:
    """Set, for this process, the key that signs durable states and the transform that seals them.

    Args:
        key: signs every state written from now on with a keyed MAC (BLAKE2b), checked
            before anything in a state is decoded; then unsigned states, and states signed
            with another key, are refused. None: no key (states carry a checksum, which
            catches accidents, not forgeries). Default: ``COROUTINE_STATE_KEY`` if set.
        transform: an object with ``seal(bytes) -> bytes`` and ``open(bytes) -> bytes``
            (encryption, say) applied to every state's body, so that sent values and
            results are not stored in clear. The MAC covers the sealed bytes.

    Omitted arguments keep their setting. The key only authenticates: without a transform,
    a state's values are readable by whoever holds its bytes.

    Raises:
        TypeError: `transform` lacks ``seal`` or ``open``.
        ValueError: `key` is empty.
    """
    _state.configure(key=key, transform=transform)


def _doc_body() -> None:
    from coroutine import Yield

    Yield[dict[str, Any], Any]({"charge": 42})
