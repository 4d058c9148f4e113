"""examples/retrofit_repository.py: the synchronous layer served from asyncio agrees with the
same layer run on plain sqlite3, one checkout after another.

The example runs as a user runs it (a subprocess), and its pieces are imported: the
untouched synchronous layer is the reference, run directly on a `sqlite3` connection.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def example() -> Iterator[ModuleType]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("retrofit_repository")
    finally:
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop("retrofit_repository", None)


def stock_of(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as conn, conn:
        return dict(conn.execute("SELECT sku, stock FROM product"))


def reference(example: ModuleType, path: Path, requests: list[dict[str, Any]]) -> list[Any]:
    """The synchronous layer as it was: on sqlite3 itself, one checkout after another."""
    example.create_store(str(path), example.STOCK)
    receipts = []
    with closing(sqlite3.connect(path)) as conn, conn:
        repo = example.OrderRepository(conn)
        for r in requests:
            receipts.append(example.checkout(repo, r["customer"], r["items"]))
    return receipts


def test_the_example_runs_and_prints_what_it_promises(example: ModuleType) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "retrofit_repository.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and not out.stderr, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    replies = lines[: len(example.REQUESTS)]
    statuses = {line.split(":")[0].strip(): int(line.split(":")[1].split()[0]) for line in replies}
    assert statuses["impatient"] == 504
    assert set(statuses.values()) <= {200, 409, 504}
    sold = sum(1 for s in statuses.values() if s == 200)
    found = re.fullmatch(r"orders: (\d+) \((\d+) receipts\); stock left: (.*)", lines[-2])
    assert found and int(found[1]) == int(found[2]) == sold
    in_flight = re.fullmatch(
        r"statements in flight at once: up to (\d+), on 3 connections", lines[-1]
    )
    assert in_flight and int(in_flight[1]) > 1  # the requests' database calls overlapped


def test_concurrent_checkouts_agree_with_the_sequential_reference(
    example: ModuleType, tmp_path: Path
) -> None:
    served = tmp_path / "served.db"
    example.create_store(str(served), example.STOCK)
    replies, most = asyncio.run(example.demo(str(served), latency=0.002))
    assert most > 1
    done = [
        (r, body)
        for r, (status, body) in zip(example.REQUESTS, replies, strict=True)
        if status == 200
    ]
    refused = [r for r, (status, _) in zip(example.REQUESTS, replies, strict=True) if status == 409]
    assert done and refused  # the stock runs out: some succeed, some are refused
    # The receipts of the served run, replayed one after another on sqlite3 directly: each
    # succeeds again with the same total, and the stock ends the same.
    receipts = reference(example, tmp_path / "reference.db", [r for r, _ in done])
    assert [r.total_cents for r in receipts] == [body["total_cents"] for _, body in done]
    assert stock_of(served) == stock_of(tmp_path / "reference.db")
    with closing(sqlite3.connect(served)) as conn:
        orders = sorted(row[0] for row in conn.execute("SELECT customer FROM orders"))
    assert orders == sorted(r["customer"] for r, _ in done)


def test_a_request_cancelled_mid_transaction_rolls_back(
    example: ModuleType, tmp_path: Path
) -> None:
    """The stock is taken, then the request is cancelled before the order is written: the
    cancellation is raised at the body's next await_, and its `except` rolls back."""
    path = tmp_path / "shop.db"
    example.create_store(str(path), example.STOCK)
    steps: list[str] = []

    async def main() -> bool:
        taken = asyncio.Event()

        class Watched(example.OrderRepository):  # type: ignore[misc, name-defined]
            def take_stock(self, sku: str, qty: int) -> None:
                super().take_stock(sku, qty)
                steps.append("stock taken")
                taken.set()  # (synchronous code, on the event loop's thread)

        pool = example.Pool(str(path), size=1, latency=0.01)
        try:
            connection = example.BridgedConnection(await pool.free.get())
            task = asyncio.ensure_future(
                example.run_sync(example.checkout, Watched(connection), "x", {"tea": 3})
            )
            await taken.wait()  # the body now waits for its INSERT
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The next request on the same connection commits only its own work.
            repo = example.OrderRepository(connection)
            await example.run_sync(example.checkout, repo, "next", {"cup": 1})
            return task.cancelled()
        finally:
            pool.close()

    assert asyncio.run(main())
    assert steps == ["stock taken"]
    assert stock_of(path) == {"tea": 10, "cup": 11}


def test_the_synchronous_layer_still_runs_on_plain_sqlite3(
    example: ModuleType, tmp_path: Path
) -> None:
    receipts = reference(
        example, tmp_path / "shop.db", [{"customer": "x", "items": {"tea": 2, "cup": 1}}]
    )
    assert [(r.order_id, r.total_cents) for r in receipts] == [(1, 2 * 450 + 1200)]
    with pytest.raises(example.OutOfStock):
        reference(example, tmp_path / "other.db", [{"customer": "y", "items": {"tea": 11}}])
