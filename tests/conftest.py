"""Shared fixtures: every test must leave no suspended coroutine behind; the services summary."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator

import pytest
import services

from coroutine import Coroutine


def _suspended_coroutines() -> list[Coroutine[object, object]]:
    return [o for o in gc.get_objects() if isinstance(o, Coroutine) and o.status == "suspended"]


@pytest.fixture(autouse=True)
def no_coroutine_outlives_its_test() -> Iterator[None]:
    before = {id(c) for c in _suspended_coroutines()}
    yield
    gc.collect()
    leaked = [c for c in _suspended_coroutines() if id(c) not in before]
    assert not leaked, f"suspended coroutines outlived the test: {leaked}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each skip reason once with its count (pyproject's -r flags leave skips out, so that
    the tests skipped for a missing service make one line, not one line each)."""
    reasons: Counter[str] = Counter()
    every: list[str] = []
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else "skipped"
        every.append(reason)
        if not services.is_service_skip(reason):
            reasons[reason.removeprefix("Skipped: ")] += 1
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"skipped {count}: {reason}")
    line = services.summary(every)
    if line is not None:
        terminalreporter.write_line(line, yellow=True)
