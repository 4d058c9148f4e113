"""Stackful, typed coroutines with implicit context.

A coroutine is a plain function started with ``New[R, S](fn)``. Anywhere down its call
stack, ``Yield[R, S](value)`` suspends the whole coroutine and hands `value` to its driver,
which answers with an `S`. See the README for the tour, and docs/ for the reference.
"""

from . import _durability, _new
from ._accel import ACCELERATED  # before the names below: it wires the compiled protocol in
from ._async import RunAsync
from ._context import Context
from ._coroutine import Coroutine
from ._durability import Patched, SideEffect
from ._errors import (
    CoroutineError,
    CoroutineExit,
    InvalidStateError,
    NotDurableError,
    NotInCoroutineError,
    ResumeError,
    StoppedError,
    YieldTypeError,
)
from ._new import DURABLE as Durable
from ._new import New, NewWithReturn
from ._run import Run
from ._yield import Current, LoadContext, Yield

_new.attach = _durability.attach  # the core reaches the durable layer through this hook only

__version__ = "0.1.0"

__all__ = [
    "ACCELERATED",
    "Context",
    "Coroutine",
    "CoroutineError",
    "CoroutineExit",
    "Current",
    "Durable",
    "InvalidStateError",
    "LoadContext",
    "New",
    "NewWithReturn",
    "NotDurableError",
    "NotInCoroutineError",
    "Patched",
    "ResumeError",
    "Run",
    "RunAsync",
    "SideEffect",
    "StoppedError",
    "Yield",
    "YieldTypeError",
]
