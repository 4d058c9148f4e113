"""Whether this process runs under coverage: its tracer changes when greenlet code runs and
what memory grows, so a few tests relax what they assert about order or growth then."""

from __future__ import annotations

import sys


def measured() -> bool:
    """True under a tracer or a started coverage measurement (under pytest-xdist, the thread
    running the tests may show no tracer while coverage measures the process)."""
    if sys.gettrace() is not None:
        return True
    coverage = sys.modules.get("coverage")
    return coverage is not None and coverage.Coverage.current() is not None
