"""Tools for durable states: read them, sign or seal them, and move a coroutine on.

``coroutine.durable.inspect(b)`` says what a state holds without running anything;
``python -m coroutine.durable FILE`` prints it. `configure` sets the keys that sign states
and the transform that seals them (`FernetTransform` encrypts them, with the ``crypto``
extra). `ContinueAsNew` ends a long-lived coroutine and starts
its successor. `replay_elsewhere` replays a state in a fresh interpreter with another
``PYTHONHASHSEED``, to find nondeterminism before it resumes a state wrongly.
"""

from __future__ import annotations

from ._continue import ContinueAsNew
from ._fernet import FernetTransform
from ._inspect import StateInfo, inspect
from ._keys import Transform, configure
from ._replay_check import Divergence, replay_elsewhere

__all__ = [
    "ContinueAsNew",
    "Divergence",
    "FernetTransform",
    "StateInfo",
    "Transform",
    "configure",
    "inspect",
    "replay_elsewhere",
]
