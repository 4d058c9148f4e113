"""Retrofit: a synchronous data-access layer served from an asyncio web handler.

`OrderRepository` and `checkout` below are an existing synchronous layer written against
DB-API (`sqlite3`): blocking calls, business rules, a transaction rolled back on error. To
serve them from an asyncio HTTP server without rewriting every function as ``async def``,
only the bottom changes: `BridgedConnection` offers the same small DB-API surface the
repository uses (``cursor``, ``execute``, ``fetchone``, ``commit``...), and answers each call
by `await_`-ing an async driver (`AsyncSQLite`, a stand-in for asyncpg or aiosqlite: each
connection runs its blocking calls in a thread of its own). The handler awaits
``run_sync(checkout, ...)``; between the body's database calls the event loop serves other
requests, and a request that times out unwinds the body: its ``except`` rolls back.

Run it: ``python examples/retrofit_repository.py`` (a server on a free loopback port, twelve
concurrent clients, one of them impatient).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from coroutine.aio import await_, run_sync

T = TypeVar("T")

# -- the existing synchronous layer: unchanged by the retrofit ---------------------------------


class Cursor(Protocol):
    """The part of a DB-API cursor the repository uses."""

    rowcount: int
    lastrowid: int | None

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...
    def fetchone(self) -> Any: ...


class Connection(Protocol):
    """The part of a DB-API connection the repository uses."""

    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class OutOfStock(Exception):
    """A checkout asked for more than the stock holds."""


@dataclass
class Receipt:
    order_id: int
    customer: str
    total_cents: int


class OrderRepository:
    """Orders and stock over a DB-API connection (written for sqlite3, years ago)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def price_cents(self, sku: str) -> int:
        cur: Cursor = self.conn.cursor()
        cur.execute("SELECT price_cents FROM product WHERE sku = ?", (sku,))
        row = cur.fetchone()
        if row is None:
            raise KeyError(sku)
        return int(row[0])

    def take_stock(self, sku: str, qty: int) -> None:
        cur: Cursor = self.conn.cursor()
        cur.execute(
            "UPDATE product SET stock = stock - ? WHERE sku = ? AND stock >= ?", (qty, sku, qty)
        )
        if cur.rowcount != 1:
            raise OutOfStock(f"not {qty} of {sku} left")

    def add_order(self, customer: str, total_cents: int) -> int:
        cur: Cursor = self.conn.cursor()
        cur.execute(
            "INSERT INTO orders (customer, total_cents) VALUES (?, ?)", (customer, total_cents)
        )
        assert cur.lastrowid is not None
        return cur.lastrowid


def checkout(repo: OrderRepository, customer: str, items: dict[str, int]) -> Receipt:
    """The business rule: price the basket, take the stock, record the order; all or nothing."""
    try:
        total = sum(repo.price_cents(sku) * qty for sku, qty in items.items())
        for sku, qty in sorted(items.items()):
            repo.take_stock(sku, qty)
        order_id = repo.add_order(customer, total)
        repo.conn.commit()
        return Receipt(order_id, customer, total)
    except BaseException:
        repo.conn.rollback()  # a cancelled request lands here too
        raise


SCHEMA = """
CREATE TABLE IF NOT EXISTS product (sku TEXT PRIMARY KEY, price_cents INTEGER, stock INTEGER);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT, total_cents INTEGER);
"""


def create_store(path: str, stock: dict[str, tuple[int, int]]) -> None:
    """The database: {sku: (price in cents, stock)}."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO product VALUES (?, ?, ?)", [(s, p, q) for s, (p, q) in stock.items()]
        )


# -- the async driver: what the event loop awaits -----------------------------------------------


class AsyncSQLite:
    """An async driver: one sqlite3 connection, whose blocking calls run in its own thread."""

    def __init__(self, path: str, latency: float = 0.0) -> None:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self.latency = latency  # seconds each statement takes, as over a network
        self.conn: sqlite3.Connection = self.executor.submit(
            sqlite3.connect, path, timeout=10
        ).result()
        self.in_flight = 0

    async def run(self, fn: Callable[[], T]) -> T:
        self.in_flight += 1
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn)
        finally:
            self.in_flight -= 1

    async def execute(self, sql: str, params: Sequence[Any]) -> tuple[list[Any], int, int | None]:
        def call() -> tuple[list[Any], int, int | None]:
            cur = self.conn.execute(sql, params)
            return cur.fetchall(), cur.rowcount, cur.lastrowid

        return await self.run(call)

    async def commit(self) -> None:
        await self.run(self.conn.commit)

    async def rollback(self) -> None:
        await self.run(self.conn.rollback)

    def close(self) -> None:
        self.executor.submit(self.conn.close).result()
        self.executor.shutdown()


# -- the retrofit: the bottom of the synchronous layer awaits the driver -------------------------


class BridgedCursor:
    """A DB-API cursor whose `execute` waits for the async driver (inside run_sync)."""

    def __init__(self, driver: AsyncSQLite) -> None:
        self.driver = driver
        self.rows: list[Any] = []
        self.rowcount = -1
        self.lastrowid: int | None = None

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> BridgedCursor:
        self.rows, self.rowcount, self.lastrowid = await_(self.driver.execute(sql, params))
        return self

    def fetchone(self) -> Any:
        return self.rows.pop(0) if self.rows else None


class BridgedConnection:
    """A DB-API connection over the async driver: what the repository is given instead."""

    def __init__(self, driver: AsyncSQLite) -> None:
        self.driver = driver

    def cursor(self) -> BridgedCursor:
        return BridgedCursor(self.driver)

    def commit(self) -> None:
        await_(self.driver.commit())

    def rollback(self) -> None:
        # Shielded: a cancelled request must still roll back before its connection is reused.
        await_(asyncio.shield(self.driver.rollback()))


# -- the asyncio web server ------------------------------------------------------------------------


class Pool:
    """Connections shared by the requests: each checkout has one to itself."""

    def __init__(self, path: str, size: int, latency: float) -> None:
        self.drivers = [AsyncSQLite(path, latency) for _ in range(size)]
        self.free: asyncio.Queue[AsyncSQLite] = asyncio.Queue()
        for d in self.drivers:
            self.free.put_nowait(d)
        self.most_in_flight = 0

    def busy(self) -> int:
        return sum(d.in_flight for d in self.drivers)

    def close(self) -> None:
        for d in self.drivers:
            d.close()


async def handle(pool: Pool, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /checkout {"customer": ..., "items": {sku: qty}, "timeout": seconds}."""
    driver = await pool.free.get()
    try:
        repo = OrderRepository(BridgedConnection(driver))
        call = run_sync(checkout, repo, request["customer"], request["items"])
        receipt = await asyncio.wait_for(call, request.get("timeout"))
        return 200, {"order": receipt.order_id, "total_cents": receipt.total_cents}
    except OutOfStock as exc:
        return 409, {"error": str(exc)}
    except asyncio.TimeoutError:
        return 504, {"error": "timed out; nothing was bought"}
    finally:
        pool.free.put_nowait(driver)


async def serve_client(
    pool: Pool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
    )
    status, body = await handle(pool, json.loads(await reader.readexactly(length)))
    data = json.dumps(body).encode()
    writer.write(b"HTTP/1.0 %d\r\nContent-Length: %d\r\n\r\n%s" % (status, len(data), data))
    await writer.drain()
    writer.close()


async def post(port: int, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(request).encode()
    writer.write(b"POST /checkout HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    reply = await reader.read()
    writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


REQUESTS = [
    {"customer": f"customer {i}", "items": {"tea": 2, "cup": 1} if i % 2 else {"cup": 3}}
    for i in range(11)
] + [{"customer": "impatient", "items": {"tea": 1}, "timeout": 0.001}]
STOCK = {"tea": (450, 10), "cup": (1200, 12)}
POOL_SIZE = 3


async def demo(path: str, latency: float = 0.01) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Serve REQUESTS concurrently; the replies (in request order) and the most statements
    that were in flight at once."""
    pool = Pool(path, size=POOL_SIZE, latency=latency)
    server = await asyncio.start_server(lambda r, w: serve_client(pool, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, pool.busy())
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(watch())
    try:
        replies = await asyncio.gather(*(post(port, r) for r in REQUESTS))
    finally:
        watcher.cancel()
        server.close()
        await server.wait_closed()
        pool.close()
    return list(replies), most


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "shop.db")
        create_store(path, STOCK)
        replies, most = asyncio.run(demo(path))
        for request, (status, body) in zip(REQUESTS, replies, strict=True):
            print(f"{request['customer']:>11}: {status} {json.dumps(body, sort_keys=True)}")
        with closing(sqlite3.connect(path)) as conn, conn:
            left = dict(conn.execute("SELECT sku, stock FROM product ORDER BY sku"))
            orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    sold = sum(1 for status, _ in replies if status == 200)
    print(f"orders: {orders} ({sold} receipts); stock left: {left}")
    print(f"statements in flight at once: up to {most}, on {POOL_SIZE} connections")


if __name__ == "__main__":
    main()
