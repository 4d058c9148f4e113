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
    "decode_value",
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
    error: str  # encode_error(...) when failed, else ""


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


def encode_error(exc: BaseException) -> str:
    """Record a workflow's exception: class name, arguments and traceback."""
    cls = type(exc)
    try:
        args = encode_value(exc.args)
    except TypeError:
        args = encode_value(tuple(repr(a) for a in exc.args))
    tb = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
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
