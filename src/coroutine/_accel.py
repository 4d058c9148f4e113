"""Whether the compiled switch protocol (`coroutine._speedups`) is in use, and why not.

The extension is optional: `_speedups_c/*.c` compiles the hot paths of `_context`, `_yield`,
`_coroutine` and `_run`, which stay the readable reference and the fallback. It is used
unless ``COROUTINE_PURE=1`` is set at import, or it was not built (no compiler at install
time: installation still succeeds). Either way the library behaves the same; only its speed
and its tracebacks (no library frames with the extension) differ.

Decision (see docs/decisions.md): a missing extension is reported once, and only to those
who ask: `coroutine.ACCELERATED` is False and `REASON` says why; with ``COROUTINE_DEBUG=1``
set, importing the package also issues one `RuntimeWarning`. Users who do not care see
nothing.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

__all__ = ["ACCELERATED", "REASON", "speedups"]

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
