"""What `Engine.start` checks before it saves anything: the workflow function and the
arguments it is given.

The function must be one every worker can find by name (a module-level function, not an
`@activity`, not in ``__main__`` when other processes run the steps); the arguments are
bound to its signature (so a call that would fail at the first step fails here, and
``f(1)`` and ``f(n=1)`` are recorded alike, which `Engine.start_as` compares).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ._activity import Activity
from ._records import decode_value

__all__ = ["bind", "call_text", "entry_name"]


def call_text(entry: str, args: str) -> str:
    a, kw = decode_value(args)
    parts = [repr(x) for x in a] + [f"{k}={v!r}" for k, v in kw.items()]
    text = f"{entry}({', '.join(parts)})"
    return text if len(text) <= 200 else text[:197] + "..."


def entry_name(fn: Callable[..., Any], in_main_ok: bool) -> str:
    """``module:QualName`` of a workflow function, or TypeError saying what to pass instead."""
    if isinstance(fn, Activity):
        raise TypeError(
            f"{fn.name} is an @activity, a step of a workflow, not a workflow; start a "
            f"function that calls it (def flow(...): return {fn.fn.__name__}(...))"
        )
    qualname = getattr(fn, "__qualname__", "<?>")
    if not callable(fn) or "<" in qualname or not hasattr(fn, "__module__"):
        raise TypeError(
            f"a workflow must be a module-level function (got {fn!r}); define it with def "
            "at the top level of a module that every worker imports"
        )
    if fn.__module__ == "__main__" and not in_main_ok:
        raise TypeError(
            f"{qualname} is defined in __main__, which the executor's workers cannot "
            "import; move it to a module, or import this script by its module name"
        )
    return f"{fn.__module__}:{qualname}"


def bind(fn: Callable[..., Any], entry: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
    """The arguments as `fn` takes them (keywords sorted), or TypeError saying why not."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to check: taken as given
        return tuple(args), dict(sorted(kwargs.items()))
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(
            f"{entry}{sig} cannot be called with these arguments: {exc}; pass the workflow's "
            "own arguments (to choose its id, use Engine.start_as(id, fn, ...))"
        ) from None
    return bound.args, dict(sorted(bound.kwargs.items()))
