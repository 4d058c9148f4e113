"""The durable layer's side of the core's interface: the only code of `_entry`, `_replay`,
`_state`, `_log` and `_durable` that reads or writes a `Context`'s private fields, or
switches greenlets.

When the core's switch protocol lands (issue 10), these become calls of
``_context.switch_out``, ``end_from_body``, ``restore`` and ``user_site``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

from greenlet import GreenletExit

from ._context import DONE, NOTHING, Context
from ._errors import CoroutineExit

__all__ = ["end_from_body", "restore", "take_sent", "user_site"]


def take_sent(ctx: Context[Any, Any]) -> Any:
    """The Send pending for the yield the replay resumes at, cleared as a yield clears it."""
    sent = ctx._sent
    ctx._sent = NOTHING
    return sent


def end_from_body(ctx: Context[Any, Any], err: BaseException) -> NoReturn:
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


def restore(ctx: Context[Any, Any], *, done: bool, sent: Any = NOTHING, result: Any = None) -> None:
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
