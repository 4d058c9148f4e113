"""A workflow's coroutine: made from its entry, rebuilt from its stored row, saved.

The one place that knows how a workflow function becomes a durable coroutine (`new_workflow`),
how a stored row names it again (`entry_of`), and how its state is taken for the store
(`save_state`): the engine, the runner, child workflows and schedules all go through here.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any

from coroutine import Coroutine, NewWithReturn

from ._activity import _WORKFLOWS, ActivityCall
from ._records import decode_value

__all__ = [
    "QUEUE_ATTR",
    "TIMEOUT_ATTR",
    "VERSION_ATTR",
    "Workflow",
    "entry_of",
    "limits",
    "new_workflow",
    "save_state",
]

if TYPE_CHECKING:
    from typing import TypeAlias

    Workflow: TypeAlias = Coroutine[ActivityCall, Any, Any]

# The attributes `workflow(version=..., queue=..., timeout=...)` sets on a workflow function.
VERSION_ATTR = "__workflow_version__"
QUEUE_ATTR = "__workflow_queue__"
TIMEOUT_ATTR = "__workflow_timeout__"


def save_state(coro: Workflow) -> bytes:
    """What to append to the workflow's stored state: the coroutine's record since its last
    save (or since it was restored from the store); the full state on its first save.

    Every state the engine stores goes through here. `Context().MarshalDelta()` chains each
    delta to the frame it follows, so ``Unmarshal(full + delta1 + ...)`` notices a missing,
    reordered or forked delta (InvalidStateError) instead of resuming a wrong history.
    """
    return coro.Context().MarshalDelta()


def entry_of(entry: str, args: str) -> functools.partial[Any]:
    """Rebuild the durable entry ``partial(fn, *args, **kwargs)`` from a stored row."""
    module, _, qualname = entry.partition(":")
    obj: Any = importlib.import_module(module)  # the store is trusted input, as states are
    for part in qualname.split("."):
        obj = getattr(obj, part)
    a, kw = decode_value(args)
    return functools.partial(obj, *a, **kw)


def new_workflow(entry: functools.partial[Any]) -> Workflow:
    version = getattr(entry.func, VERSION_ATTR, None)
    # NewWithReturn[R, S] at run time (T is fn's return type); the class mypy reads in src/
    # has all three parameters, which only the stubs hide.
    make = NewWithReturn[ActivityCall, Any]  # type: ignore[type-arg]
    coro: Workflow = make(entry, durable=True, version=version)
    _WORKFLOWS.add(coro)
    return coro


def limits(fn: Any, now: float) -> tuple[str, float]:
    """The queue and the deadline (0.0 for none) of a workflow of `fn` started at `now`, as
    its ``workflow(queue=, timeout=)`` decorator set them: for a start and a child alike."""
    timeout = getattr(fn, TIMEOUT_ATTR, None)
    return getattr(fn, QUEUE_ATTR, ""), now + timeout if timeout else 0.0
