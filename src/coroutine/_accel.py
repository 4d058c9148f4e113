"""The compiled switch protocol (`coroutine._speedups`): whether it is used, and its wiring.

The extension is optional: `_speedups_c/*.c` compiles the hot paths of `_driver`, `_yield`,
`_coroutine`, `_new` and `_run`, which stay the readable reference and the fallback. It is
used unless ``COROUTINE_PURE=1`` is set at import, or it was not built (no compiler at install
time: installation still succeeds). Either way the library behaves the same, tracebacks
included (no library frame on either); only its speed differs.

Decision (see docs/explanation/decisions.md): a missing extension is reported once, and only
to those who ask: `coroutine.ACCELERATED` is False and `REASON` says why; with ``COROUTINE_DEBUG=1``
set, importing the package also issues one `RuntimeWarning`. Users who do not care see
nothing.

Wiring. This module sits above every other module of the core and is the only one that
knows the extension: importing it (the package does, before it takes any name from the core)
binds the extension to the runtime's objects (`setup`) and puts each compiled form in place
of the Python one:

    _driver.resume (and the name in its callers)    _speedups.resume
    Coroutine.Next, Recv, Send, __next__, send,     compiled methods, installed by setup
      __del__, throw, close, __exit__               (the last three call the Python ones)
    _new.create                                     _speedups.create
    _new._bind (functools.partial)                  _speedups.Factory
    _run.Run                                        _speedups.Run
    _yield.site_function                            a `_speedups.YieldSite` in front of the
                                                    Python yield function
    _yield.Yield                                    the table with `_speedups.YieldTable`'s
                                                    identity cache in front
    _new._Subscripted.__getitem__ (New[R, S] and    a `_speedups.Subscript`: the same identity
      NewWithReturn[R, S])                          cache in front of the Python method

The compiled code calls back into the Python functions for everything rare (a refusal, a
stop, a durable coroutine, an error to build). `PURE_METHODS`, `py_resume`, `py_create` and
`py_run` keep the references as written; each compiled function and method carries the
docstring and signature of the Python one it stands for (`docs`). Being C, the compiled entry
points add no frame to a traceback, and they take the library's out of an exception leaving
them (`_errors.trimmed`): the caller's line, then the body's frames.
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import _context, _coroutine, _driver, _errors, _new, _run, _worker, _yield
from ._coroutine import Coroutine
from ._signature import Signature

__all__ = [
    "ACCELERATED",
    "PURE_METHODS",
    "REASON",
    "docs",
    "py_create",
    "py_resume",
    "py_run",
    "speedups",
]

speedups: ModuleType | None = None
REASON = ""

if os.environ.get("COROUTINE_PURE", "") not in ("", "0"):
    REASON = "pure Python: COROUTINE_PURE is set"
else:
    try:
        speedups = importlib.import_module(f"{__package__}._speedups")
    except ImportError as exc:  # not built: a platform without a compiler
        REASON = f"pure Python: the C extension coroutine._speedups is not available ({exc})"
        if os.environ.get("COROUTINE_DEBUG", "") not in ("", "0"):
            warnings.warn(f"coroutine runs {REASON}", RuntimeWarning, stacklevel=2)
    else:
        REASON = "accelerated: coroutine._speedups is loaded"

ACCELERATED: bool = speedups is not None
"""True iff the compiled switch protocol is in use (`REASON` says why not)."""

py_resume = _driver.resume
"""The reference driver primitive, as written (`_speedups.resume` calls it back for rare
cases)."""
py_create = _new.create
"""The reference creation (`_speedups.create` calls it back for a durable coroutine)."""
py_run = _run.Run
"""The reference `Run` (`_speedups.Run` takes its place, its docstring and signature)."""
PURE_METHODS: dict[str, Callable[..., Any]] = {
    name: Coroutine.__dict__[name]
    for name in (
        "Next",
        "Recv",
        "Send",
        "__next__",
        "send",
        "__del__",
        "throw",
        "close",
        "__exit__",
    )
}
"""Coroutine's driving methods as written (tests compare them with the compiled ones)."""


def docs() -> dict[str, str]:
    """For each compiled function, the docstring of the Python one it stands for, after its
    text signature (how a C function carries ``__text_signature__``): annotations dropped,
    as a text signature cannot hold them."""
    texts = {}
    for name, fn in [*PURE_METHODS.items(), ("Run", py_run)]:
        sig = inspect.signature(fn)
        params = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
        text = str(sig.replace(parameters=params, return_annotation=sig.empty))
        if name in PURE_METHODS:
            text = text.replace("(self", "($self", 1)
        texts[name] = f"{name}{text}\n--\n\n{fn.__doc__}"
    return texts


def _wire(ext: ModuleType) -> None:
    """Bind the extension to the runtime's objects, and put the compiled forms in place."""
    ext.setup(
        {
            "CREATED": _context.CREATED,
            "SUSPENDED": _context.SUSPENDED,
            "RUNNING": _context.RUNNING,
            "DONE": _context.DONE,
            "NOTHING": _context.NOTHING,
            "THROWN": _context.THROWN,
            "ABANDONED": _context.ABANDONED,
            "PARKED": _worker.PARKED,
            "CURRENT": _context.CURRENT,
            "recover": _driver.recover,
            "ended": _driver.ended,
            "adopt": _driver.adopt,
            "signalled": _context.signalled,
            "killed": _context.killed,
            "resume": py_resume,
            "create": py_create,
            "del": PURE_METHODS["__del__"],
            "check_entry": _new._check_entry,
            "acquire": _worker.acquire,
            "bad_send": _coroutine.bad_send,
            "run_refused": _run.refused,
            "run_stopped": _run.stopped,
            "flags": vars(_new),  # the DURABLE default, read at each creation
            "local": _worker._local,
            "POOL_CAP": _worker.POOL_CAP,
            "Coroutine": Coroutine,
            "Context": _context.Context,
            "Signature": Signature,
            "Signal": _context._Signal,
            "as_reported": _worker._as_reported,
            "CoroutineExit": _errors.CoroutineExit,
            "worker_main": _worker_main(ext),
            "trimmed": _errors.trimmed,
            "throw": PURE_METHODS["throw"],
            "close": PURE_METHODS["close"],
            "exit": PURE_METHODS["__exit__"],
            "docs": docs(),
        }
    )
    for module in (_driver, _coroutine, _run):
        module.resume = ext.resume  # type: ignore[attr-defined]
    _new.create = ext.create
    _new._bind = ext.Factory
    _run.Run = ext.Run

    def site_function(site: Signature) -> Callable[[Any], Any]:
        # The compiled site runs the common case (B1, B2 as in `switch_out`) and calls the
        # Python function for the rest.
        fn = _yield.make_yield(site)
        return ext.YieldSite(site, site.r, site.self_rule, fn, fn.__qualname__)  # type: ignore[no-any-return]

    class Table(ext.YieldTable, _yield.YieldTable):  # type: ignore[misc, name-defined]
        __doc__ = _yield.YieldTable.__doc__
        __slots__ = ()

    _yield.site_function = site_function
    _yield.Yield = Table()
    _new._Subscripted.__getitem__ = ext.Subscript(_new._Subscripted.__getitem__)  # type: ignore[method-assign]


def _worker_main(ext: ModuleType) -> Callable[[_worker.Task], None]:
    """What a worker made by the compiled `acquire` runs: `_worker._worker_main`'s loop, with
    `run_body`'s steps and the parking switch compiled (`_speedups.worker_*`, driver.c).

    The loop stays a Python frame, and the body is called from it: so the body's frames run
    in the same C evaluation as the loop, as under the pure `_worker_main` (a body called
    from C would put a second evaluation frame on every worker's stack, about 200 bytes per
    suspended coroutine); and a parked worker has a Python frame on top (greenlet takes a
    suspended greenlet without one for a greenlet running in another thread).
    `_worker.is_parked` knows this frame, which lives as long as the worker: like
    `_worker_main`'s, it keeps nothing of a finished body (the first task comes as the
    argument: `start_worker` in driver.c takes it out of what greenlet keeps).
    """
    begin, failed, done, park = (
        ext.worker_begin,
        ext.worker_failed,
        ext.worker_done,
        ext.worker_park,
    )

    def worker_main(task: _worker.Task) -> None:
        fn = begin(task)  # ctx._vars = None; CURRENT.set(ctx); the body
        while True:
            try:
                driver = done(task, fn())  # run_body's end (it raises nothing)
            except BaseException as exc:
                driver = failed(task, exc)  # run_body's except branch (or raise)
            del task, fn  # a parked worker keeps nothing of the finished body
            task = park(driver)  # driver.switch(PARKED), then begin: the next task
            del driver
            if task is None:
                return  # abandoned (no driver: this worker dies), or dropped
            fn = task[1]

    _worker.PARKING.add(worker_main.__code__)
    return worker_main


if speedups is not None:
    _wire(speedups)
