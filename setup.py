"""Build the optional C accelerator `coroutine._speedups` (everything else is in pyproject.toml).

The extension is optional: without a compiler (or with COROUTINE_PURE_BUILD=1) the build
skips it and the package installs as pure Python, which `coroutine.ACCELERATED` reports.
It compiles against greenlet's public C API, whose header greenlet ships in its package.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup


def _greenlet_include() -> list[str]:
    try:
        import greenlet
    except ImportError:  # no greenlet at build time: the optional build fails, pure Python
        return []
    return [os.path.dirname(greenlet.__file__)]


_SRC = "src/coroutine/_speedups_c"
# One file per concern, in reading order (the comment at the top of speedups.h).
_CONCERNS = ("compat", "driver", "methods", "run", "yieldsite", "table", "decode", "module")
_AIO = ("aio", "aio_await", "aio_iter")  # coroutine.aio's driver (aio.h)

ext_modules = []
if os.environ.get("COROUTINE_PURE_BUILD", "") in ("", "0"):
    ext_modules.append(
        Extension(
            "coroutine._speedups",
            sources=[f"{_SRC}/{name}.c" for name in _CONCERNS + _AIO],
            depends=[f"{_SRC}/speedups.h", f"{_SRC}/aio.h"],
            include_dirs=_greenlet_include(),
            optional=True,
        )
    )

setup(ext_modules=ext_modules)
