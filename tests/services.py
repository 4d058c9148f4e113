"""The real services some tests talk to, and what happens when one is not running.

The workflow tests use Redis, PostgreSQL and RabbitMQ over real connections (never mocks).
A test asks for one with `require("redis")`, which returns its URL. When the service is not
reachable:

- on a developer's machine, the test is skipped, and the run ends with one summary line
  naming each missing service and the command that starts it;
- under CI (``CI=true``, which `.ci/run` sets), the test fails, naming the service: a CI
  machine that lost a service must not pass by skipping what it was meant to test.

Each service's URL can be moved with an environment variable (``WORKFLOW_TEST_REDIS`` and so
on); reachability is a TCP connect to its host and port, checked once per run.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit


class Service(NamedTuple):
    name: str
    url: str
    start: str  # the command that starts it on a Debian-like machine

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 0


SERVICES = {
    "redis": Service(
        "Redis",
        os.environ.get("WORKFLOW_TEST_REDIS", "redis://127.0.0.1:6379/0"),
        "redis-server --daemonize yes --port 6379",
    ),
    "postgres": Service(
        "PostgreSQL",
        os.environ.get("WORKFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
        "(trust auth, a database named test)",
    ),
    "rabbitmq": Service(
        "RabbitMQ",
        os.environ.get("WORKFLOW_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//"),
        "rabbitmq-server -detached",
    ),
}

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_reachable: dict[str, bool] = {}


def reachable(key: str) -> bool:
    if key not in _reachable:
        try:
            socket.create_connection(SERVICES[key].address, timeout=2).close()
            _reachable[key] = True
        except OSError:
            _reachable[key] = False
    return _reachable[key]


def require(key: str) -> str:
    """The URL of service `key` ("redis", "postgres", "rabbitmq"); skip (fail under CI) the
    calling test when it is not reachable."""
    import pytest  # here: scripts/test.sh runs this file with a bare interpreter

    service = SERVICES[key]
    if reachable(key):
        return service.url
    host, port = service.address
    if CI:
        pytest.fail(
            f"{service.name} is not reachable at {host}:{port}, and CI=true requires it; "
            f"start it with: {service.start}",
            pytrace=False,
        )
    pytest.skip(f"{_SKIP} {service.name} at {host}:{port}, which is not running here")


_SKIP = "needs the service"


def is_service_skip(reason: str) -> bool:
    return _SKIP in reason


def summary(reasons: Iterable[str]) -> str | None:
    """One line naming each missing service, how many tests it cost, and how to start it,
    from the run's skip reasons (the reports, not this process's state: with pytest-xdist the
    tests run in other processes)."""
    missing: Counter[str] = Counter()
    for reason in reasons:
        if is_service_skip(reason):
            missing.update(key for key, s in SERVICES.items() if f" {s.name} at " in reason)
    if not missing:
        return None
    parts = []
    for key, count in missing.items():
        service = SERVICES[key]
        host, port = service.address
        parts.append(f"{service.name} {host}:{port} ({count} tests; start: {service.start})")
    return "skipped, services not running: " + "; ".join(parts)


if __name__ == "__main__":  # scripts/test.sh, under CI: fail at once, naming what is down
    import sys

    down = [key for key in SERVICES if not reachable(key)]
    for key in down:
        service = SERVICES[key]
        host, port = service.address
        print(f"{service.name} is not reachable at {host}:{port}; start it with: {service.start}")
    sys.exit(1 if down else 0)
