"""Tools for durable states: read them, sign or seal them, and move a coroutine on.

``coroutine.durable.inspect(b)`` says what a state holds without running anything;
``python -m coroutine.durable FILE`` prints it. `configure` sets the key that signs states
and the transform that seals them. `ContinueAsNew` ends a long-lived coroutine and starts
its successor. `replay_elsewhere` replays a state in a fresh interpreter with another
``PYTHONHASHSEED``, to find nondeterminism before it resumes a state wrongly.
"""

from __future__ import annotations

from ._continue import ContinueAsNew
from ._inspect import StateInfo, configure, inspect
from ._replay_check import Divergence, replay_elsewhere
from ._state import Transform

__all__ = [
    "ContinueAsNew",
    "Divergence",
    "StateInfo",
    "Transform",
    "configure",
    "inspect",
    "replay_elsewhere",
]
