"""Shared fixtures: every test must leave no suspended coroutine behind; the services summary."""

from __future__ import annotations

import gc
import os
import tempfile
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
    _workflow_reports(terminalreporter)
    line = services.summary(every)
    if line is not None:
        terminalreporter.write_line(line, yellow=True)


def pytest_configure(config: pytest.Config) -> None:
    # The workflow crash tests' figures (tests/workflow/wf_support.py REPORTS): under
    # pytest-xdist they are made in worker processes, which add them to this file for this
    # process, which alone prints the summary, to read back.
    if not os.environ.get("PYTEST_XDIST_WORKER") and "WORKFLOW_TEST_REPORTS" not in os.environ:
        fd, path = tempfile.mkstemp(prefix="workflow-reports-", suffix=".txt")
        os.close(fd)
        os.environ["WORKFLOW_TEST_REPORTS"] = path
        config.add_cleanup(lambda: (os.remove(path), os.environ.pop("WORKFLOW_TEST_REPORTS")))


def _workflow_reports(terminalreporter: pytest.TerminalReporter) -> None:
    path = os.environ.get("WORKFLOW_TEST_REPORTS", "")
    lines = []
    if os.path.exists(path):
        with open(path) as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    if lines:
        small = os.environ.get("WORKFLOW_TEST_SCALE", "full") == "small"
        scale = "small (WORKFLOW_TEST_SCALE=small)" if small else "full"
        terminalreporter.section(f"workflow crash tests, {scale} size: at-least-once runs")
        for line in lines:
            terminalreporter.write_line(line)
