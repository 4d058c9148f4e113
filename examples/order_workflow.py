"""An order workflow: reserve stock, charge the card, ship; refund and release if shipping fails.

    python examples/order_workflow.py                        # SQLite store, steps run here
    python examples/order_workflow.py --store sqlite:////tmp/orders.db

The SQLite run needs nothing but this package. With Celery (``pip install
'stackful-coroutines[workflow]'``), start workers that can import this file's module (so put
its directory on their PYTHONPATH), then run it with --celery:

    PYTHONPATH=examples python -m coroutine.workflow celery-worker redis://127.0.0.1:6379/0 &
    python examples/order_workflow.py --celery redis://127.0.0.1:6379/0 \\
        --store redis://127.0.0.1:6379/0

It prints one line per order, then what the "payment and warehouse systems" (a ledger file,
ORDER_LEDGER, default order_ledger.db in the temp directory) applied for each. The
activities write to the ledger under their idempotency key, so an activity that runs again
after a crash applies its effect once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
import tempfile

from coroutine.workflow import Engine, activity, idempotency_key

PRICES = {"tea": 3, "cake": 4, "mug": 12}


class OutOfStock(Exception):
    """Raised by reserve: not enough of an item."""


class ShippingError(Exception):
    """Raised by ship: the carrier cannot deliver there."""


def _ledger() -> sqlite3.Connection:
    path = os.environ.get("ORDER_LEDGER") or os.path.join(tempfile.gettempdir(), "order_ledger.db")
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.execute("CREATE TABLE IF NOT EXISTS ledger (key TEXT PRIMARY KEY, ord TEXT, what TEXT)")
    return db


def _apply(order_id: str, what: str) -> None:
    """Apply an external effect once per idempotency key (a retry or re-run is dropped)."""
    with _ledger() as db:
        db.execute(
            "INSERT OR IGNORE INTO ledger VALUES (?, ?, ?)", (idempotency_key(), order_id, what)
        )


@activity
def reserve(order_id: str, items: dict[str, int]) -> str:
    if items.get("mug", 0) > 2:
        raise OutOfStock(f"only 2 mugs left, {items['mug']} wanted")
    _apply(order_id, "reserve " + ", ".join(f"{n} {k}" for k, n in sorted(items.items())))
    return f"R-{order_id}"


@activity
def charge(order_id: str, amount: int) -> str:
    _apply(order_id, f"charge {amount}")
    return f"P-{order_id}"


@activity(attempts=2, backoff=0.05)
def ship(order_id: str, address: str) -> str:
    if address == "nowhere":
        raise ShippingError(f"no carrier delivers to {address!r}")
    _apply(order_id, f"ship to {address}")
    return f"T-{order_id}"


@activity
def refund(order_id: str, payment: str, amount: int) -> None:
    _apply(order_id, f"refund {amount} of {payment}")


@activity
def release(order_id: str, reservation: str) -> None:
    _apply(order_id, f"release {reservation}")


def place_order(order_id: str, items: dict[str, int], address: str) -> str:
    """The workflow: plain code; each activity call is a step recorded by the engine."""
    try:
        reservation = reserve(order_id, items)
    except OutOfStock as e:
        return f"order {order_id}: rejected ({e})"
    amount = sum(PRICES[item] * n for item, n in sorted(items.items()))
    payment = charge(order_id, amount)
    try:
        tracking = ship(order_id, address)
    except ShippingError as e:  # compensate, newest first
        refund(order_id, payment, amount)
        release(order_id, reservation)
        return f"order {order_id}: cancelled ({e}), refunded {amount}"
    return f"order {order_id}: shipped {tracking}, charged {amount}"


ORDERS = [
    ("A1", {"tea": 2, "cake": 1}, "1 High St"),
    ("B2", {"mug": 1}, "nowhere"),
    ("C3", {"mug": 5}, "2 Low Rd"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = os.path.join(tempfile.gettempdir(), "orders.db")
    parser.add_argument("--store", default=f"sqlite:///{default}")
    parser.add_argument("--celery", metavar="BROKER_URL", help="run steps on Celery workers")
    parser.add_argument("--queue", default="coroutine-workflow")
    args = parser.parse_args()
    executor = None
    if args.celery:  # imports celery: only when asked for
        from coroutine.workflow import CeleryExecutor

        executor = CeleryExecutor(args.celery, queue=args.queue)
    with Engine(args.store, executor) as engine:
        ids = [engine.start(place_order, *order) for order in ORDERS]
        engine.run()  # runs the steps here, or (with Celery) waits for the workers
        for id in ids:
            print(engine.result(id))
    if executor is not None:
        executor.close()
    with _ledger() as db:
        for (order_id, _, _), id in zip(ORDERS, ids, strict=True):
            rows = db.execute("SELECT key, what FROM ledger WHERE key LIKE ?", (f"{id}:%",))
            steps = sorted((int(key.rpartition(":")[2]), what) for key, what in rows)
            print(f"{order_id}: " + "; ".join(what for _, what in steps))


if __name__ == "__main__":
    # The workflow must be found by module name in every worker: use this file as the
    # module `order_workflow`, not as `__main__`.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    importlib.import_module("order_workflow").main()
