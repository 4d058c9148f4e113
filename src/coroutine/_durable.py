"""Durable coroutines: record what a body receives, so it can be rebuilt by replay.

Placeholder until durability lands: only the default flag and the refusal.
"""

from __future__ import annotations

import os
from typing import Any

from ._errors import NotDurableError

__all__ = ["DURABLE", "attach"]

DURABLE: bool = os.environ.get("COROUTINE_DURABLE", "") == "1"
"""The default of ``durable=``: True iff COROUTINE_DURABLE=1 was set at import."""


def attach(coro: Any, explicit: bool) -> None:
    """Make `coro` durable; refuse (explicit) or leave it volatile (default) otherwise."""
    if explicit:
        raise NotDurableError("durable coroutines are not implemented yet")
