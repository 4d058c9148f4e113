"""What a store keeps beside the coroutine's state: rows, arguments and failures.

The coroutine's own state (its full state and deltas, `MarshalDelta`) records what the body was
sent; what it does not record, and a store must, is how to rebuild the entry: the workflow
function's name and its arguments (a `functools.partial` of it is the durable entry). Those
are kept here as JSON with a tag per non-JSON type, so that reading a row runs no code and
imports nothing, like the durable codec itself. Failures are kept as the exception's class
name, its arguments (the same encoding, or their ``repr`` when that fails) and the worker's
traceback; `rebuild_error` turns them back into the exception only from a class already
loaded in the reading process.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
import traceback
from typing import Any, Literal

from ._errors import WorkflowCancelledError, WorkflowFailedError

__all__ = [
    "Row",
    "Status",
    "StepInfo",
    "WorkflowInfo",
    "decode_value",
    "describe_error",
    "encode_error",
    "encode_value",
    "rebuild_error",
]

Status = Literal["running", "done", "failed"]

# A cancelled workflow is stored as "failed", with the error `cancelled_error()` returns.


@dataclasses.dataclass(frozen=True)
class Row:
    """One workflow as the store holds it (apart from its state bytes)."""

    id: str
    entry: str  # "module:QualName" of the workflow function
    args: str  # encode_value((args, kwargs))
    status: Status
    step: int  # how many of the body's yields have been answered and committed
    error: str = ""  # encode_error(...) when failed, else ""
    created: float = 0.0
    updated: float = 0.0  # the last time its status or step changed
    last_error: str = ""  # why workers could not move it on lately, "" once a step commits
    owner: str = ""  # the worker process holding its claim, "" when none does
    # Queues and timeouts (`_queues`): set at creation, from the `workflow` decorator.
    queue: str = ""  # the queue whose concurrency limit it runs under, "" for none
    deadline: float = 0.0  # Unix time after which its next step fails it, 0 for none


@dataclasses.dataclass(frozen=True)
class WorkflowInfo:
    """What `Engine.info` and `Engine.list` tell of one workflow.

    `entry` is the workflow function's ``module:QualName`` and `args`/`kwargs` its
    arguments; `step` counts the activity calls answered and committed; `error` is
    ``"module.Type: message"`` for a failed workflow; `created` and `updated` (the last
    change of status or step) are Unix times; `last_error` says why workers could not move
    a running workflow on lately (its module does not import there, a store error), and is
    cleared by its next step; `owner` names the worker process holding it (``""``: none).
    """

    id: str
    entry: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    status: Status
    step: int
    error: str
    created: float
    updated: float
    last_error: str
    owner: str

    @classmethod
    def of(cls, row: Row) -> WorkflowInfo:
        """The public view of a stored row."""
        args, kwargs = decode_value(row.args)
        error = describe_error(row.error) if row.error else ""
        return cls(row.id, row.entry, tuple(args), dict(kwargs), row.status, row.step, error,
                   row.created, row.updated, row.last_error, row.owner)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """One activity call of a workflow, as `Engine.steps` tells it.

    `step` is its number (its idempotency key is ``"<workflow id>:<step>"``), `activity`
    the activity's ``module:QualName``; `args`, `kwargs` and `result` are the values, or
    their ``repr`` (a str) when that is not a Python literal; `error` is ``"module.Type:
    message"`` when the call failed for good (and `result` is None); `started` and
    `finished` are Unix times of its last attempt's run.
    """

    step: int
    activity: str
    args: tuple[Any, ...] | str
    kwargs: dict[str, Any] | str
    result: Any
    error: str
    started: float
    finished: float


def _tag(v: Any) -> Any:
    t = type(v)
    if v is None or t in (bool, int, str):
        return v
    if t is float:
        return v if v == v and v not in (float("inf"), float("-inf")) else {"$f": repr(v)}
    if t is list:
        return [_tag(x) for x in v]
    if t is tuple:
        return {"$t": [_tag(x) for x in v]}
    if t is bytes:
        return {"$b": base64.b64encode(v).decode("ascii")}
    if t is dict:
        return {"$d": [[_tag(k), _tag(x)] for k, x in v.items()]}
    if t in (set, frozenset):
        return {"$s" if t is set else "$fs": [_tag(x) for x in v]}
    raise TypeError(
        f"workflow arguments and recorded values must be None, bool, int, float, str, bytes, "
        f"list, tuple, dict, set or frozenset (got {v!r} that is a {t!r}); pass plain data "
        "and build richer objects inside the workflow"
    )


def _untag(v: Any) -> Any:
    if isinstance(v, list):
        return [_untag(x) for x in v]
    if not isinstance(v, dict):
        return v
    ((tag, body),) = v.items()
    if tag == "$t":
        return tuple(_untag(x) for x in body)
    if tag == "$b":
        return base64.b64decode(body)
    if tag == "$d":
        return {_untag(k): _untag(x) for k, x in body}
    if tag == "$s":
        return {_untag(x) for x in body}
    if tag == "$fs":
        return frozenset(_untag(x) for x in body)
    if tag == "$f":
        return float(body)
    raise ValueError(f"unknown tag {tag!r} in a stored workflow value")


def encode_value(value: Any) -> str:
    """Encode builtin data (exact types only) as tagged JSON; raise TypeError otherwise."""
    return json.dumps(_tag(value), separators=(",", ":"))


def decode_value(text: str) -> Any:
    """Decode what `encode_value` wrote; runs no code beyond building builtins."""
    return _untag(json.loads(text))


def describe_error(error: str) -> str:
    """``"module.Type: message"`` of an error recorded by `encode_error`."""
    d = json.loads(error)
    return f"{d['type'].replace(':', '.')}: {d['str']}"


def encode_error(exc: BaseException, origin: str = "") -> str:
    """Record a workflow's exception: class name, arguments and traceback (after `origin`,
    the traceback of the activity that raised it first, if any)."""
    cls = type(exc)
    try:
        args = encode_value(exc.args)
    except TypeError:
        args = encode_value(tuple(repr(a) for a in exc.args))
    tb = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
    if origin:
        tb = f"{origin}\nThrown into the workflow body at the activity's call:\n\n{tb}"
    return json.dumps(
        {"type": f"{cls.__module__}:{cls.__qualname__}", "args": args, "str": str(exc), "tb": tb}
    )


def rebuild_error(error: str) -> BaseException:
    """The recorded exception, rebuilt from its class if that class is loaded here.

    The store never causes an import: a class whose module is not in `sys.modules` (or an
    exception that will not rebuild from its arguments) comes back as `WorkflowFailedError`
    carrying the type name, message and remote traceback.
    """
    d = json.loads(error)
    module, _, qualname = d["type"].partition(":")
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and issubclass(obj, Exception):
        try:
            exc: BaseException = obj(*decode_value(d["args"]))
        except Exception:
            pass
        else:
            if isinstance(exc, WorkflowCancelledError) or str(exc) == d["str"]:
                return exc
    return WorkflowFailedError(d["type"].replace(":", "."), d["str"], d["tb"])


def cancelled_error() -> str:
    """The recorded error of a workflow stopped by `Engine.cancel`."""
    return encode_error(WorkflowCancelledError("cancelled by Engine.cancel"))
