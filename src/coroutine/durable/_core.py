"""The durable layer's side of the core's interface (issue 10's switch protocol).

The only code of `_entry`, `_recorder`, `_state`, `_log` and `_attach` that changes a
`Context` or switches greenlets goes through these: the core's primitives `switch_out` (a
live yield), `end_from_body` (a replay that diverged), `restore` (`Unmarshal`) and
`user_site` (where a replayed yield's error points). The layer reads, and never writes,
``ctx._state``, ``ctx._stopping``, ``ctx._sent``, ``ctx._result``, ``ctx._sig`` and
``ctx._coro``.
"""

from __future__ import annotations

from typing import Any

from .._context import NOTHING, Context, end_from_body, nothing_sent, restore, switch_out
from .._errors import user_site

__all__ = [
    "NOTHING",
    "end_from_body",
    "nothing_sent",
    "pending_send",
    "restore",
    "switch_out",
    "user_site",
]


def pending_send(ctx: Context[Any, Any]) -> Any:
    """The Send pending for the yield a replay resumes at (the boundary), or NOTHING.

    Not cleared here: the body's next live yield clears it, as every yield does.
    """
    return ctx._sent
