"""The durable layer as ``import coroutine`` shows it, without loading it.

The durable layer (`coroutine.durable`: its recorder, state format and codec) is loaded when
the first durable coroutine is made, not by ``import coroutine``: the core makes a coroutine
durable through its hook `_new.attach`, which the package sets to `attach` below, and `attach`
imports the layer. `SideEffect` and `Patched` are what durable bodies call; until the layer is
loaded no durable body can be running, so they do what they do outside one (call `fn`,
answer True) without loading it, and once it is loaded they are the layer's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._context import Durability
    from ._signature import Signature

__all__ = ["Patched", "SideEffect", "attach"]

T = TypeVar("T")

_LAYER = f"{__package__}.durable._attach"


def attach(
    fn: Callable[[], Any], sig: Signature, *, explicit: bool, version: str | None
) -> tuple[Durability, Callable[[], Any]]:
    """The core's hook `_new.attach`: load the durable layer, and make a coroutine durable."""
    from .durable._attach import attach

    return attach(fn, sig, explicit=explicit, version=version)


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
    layer = sys.modules.get(_LAYER)
    if layer is None:  # no durable coroutine was ever made: none encloses this call
        return fn()
    return layer.side_effect(fn)  # type: ignore[no-any-return]


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
    layer = sys.modules.get(_LAYER)
    if layer is None:  # no durable coroutine was ever made: none encloses this call
        return True
    return layer.patched(change_id)  # type: ignore[no-any-return]
