"""Fixtures for the workflow tests: the real services, stores, and Celery workers.

The tests talk to the services the project's machines run: Redis 127.0.0.1:6379, PostgreSQL
127.0.0.1:5432 (database ``test``, trust auth) and RabbitMQ 127.0.0.1:5672 (guest/guest).
A test that needs a service that is not running is skipped, or fails under CI=true (see
tests/services.py). Each test gets its own SQLite file, Redis key prefix, PostgreSQL table
prefix and Celery queue, and removes them afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import require

sys.path.insert(0, str(Path(__file__).resolve().parent))  # as the worker processes see it

from wf_support import (
    POSTGRES,
    REDIS,
    REPORTS,
    SMALL,
    Procs,
    drop_postgres,
    drop_redis,
    unique,
)


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "effects.db")
    monkeypatch.setenv("WF_EFFECTS", path)
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/store.db"


@pytest.fixture
def redis_url() -> Iterator[str]:
    require("redis")
    prefix = unique("r")
    yield f"{REDIS}?prefix={prefix}"
    drop_redis(prefix)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    require("postgres")
    prefix = unique("p")
    yield f"{POSTGRES}?prefix={prefix}"
    drop_postgres(prefix)


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    logs = tmp_path / "logs"
    logs.mkdir()
    ps = Procs(logs)
    yield ps
    ps.stop_all()


@pytest.fixture
def queue(procs: Procs) -> Iterator[str]:
    """A Celery queue of this test alone, removed after the test's workers are stopped."""
    require("redis")  # the result backend and the queue's cleanup
    name = unique("q")
    yield name
    procs.stop_all()
    drop_redis(name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTS:
        scale = "small (WORKFLOW_TEST_SCALE=small)" if SMALL else "full"
        terminalreporter.section(f"workflow crash tests, {scale} size: at-least-once runs")
        for line in REPORTS:
            terminalreporter.write_line(line)
