"""An expense that waits for a manager's approval: a reminder when none came in time, a
refusal when none came at all, and a cooling-off timer before paying.

    python examples/approval_workflow.py                      # SQLite store, a worker here
    python examples/approval_workflow.py --store redis://127.0.0.1:6379/0

The workflow waits with `receive(topic, timeout=...)` and `sleep(...)`: while it waits no
worker holds it (stop the worker, start it tomorrow: the timers are in the store). The
program plays the manager: it sends a decision on the first expense at once, on the second
only after the reminder, and never on the third. The waits are short here (``--scale``
multiplies them; a real one would be days).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import threading
from typing import Any

from coroutine.workflow import Engine, activity, receive, set_event, sleep

LOG: list[str] = []  # what the "mail and payment systems" were asked to do


@activity
def notify(expense_id: str, text: str) -> None:
    LOG.append(f"{expense_id}: mail: {text}")


@activity
def pay(expense_id: str, amount: int) -> str:
    LOG.append(f"{expense_id}: paid {amount}")
    return f"payment-{expense_id}"


def expense(expense_id: str, amount: int, remind_after: float, give_up_after: float) -> str:
    """The workflow: ask, remind once, give up; pay approved expenses after a cooling-off."""
    notify(expense_id, f"please approve {amount}")
    set_event("status", "asked")
    try:
        decision: Any = receive("decision", timeout=remind_after)
    except TimeoutError:
        notify(expense_id, "reminder: an expense waits for you")
        set_event("status", "reminded")
        try:
            decision = receive("decision", timeout=give_up_after - remind_after)
        except TimeoutError:
            return f"{expense_id}: refused (no decision in time)"
    if not decision["approved"]:
        return f"{expense_id}: refused by {decision['by']}"
    sleep(remind_after / 2)  # cooling-off: a change of mind may still come
    return f"{expense_id}: approved by {decision['by']}, {pay(expense_id, amount)}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--store", default=f"sqlite:///{tempfile.mkdtemp()}/expenses.db")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every wait")
    args = p.parse_args(argv)
    # Workers find the workflow by its module's name, not as __main__.
    flow = importlib.import_module("approval_workflow")
    remind, give_up = 0.5 * args.scale, 1.5 * args.scale
    with Engine(args.store) as engine:
        worker = threading.Thread(target=engine.run, kwargs={"until_idle": False})
        worker.start()
        try:
            ids = [
                engine.start_as(e, flow.expense, e, amount, remind, give_up)
                for e, amount in (("E1", 40), ("E2", 900), ("E3", 15))
            ]
            engine.get_event("E1", "status", timeout=30)  # asked
            engine.send("E1", "decision", {"approved": True, "by": "ana"})
            while engine.get_event("E2", "status", timeout=30) != "reminded":
                threading.Event().wait(0.02)
            engine.send("E2", "decision", {"approved": True, "by": "bo"})
            for id in ids:
                while engine.status(id) == "running":
                    threading.Event().wait(0.02)
                print(engine.result(id))
        finally:
            engine.stop()
            worker.join()
    for line in sorted(flow.LOG):
        print(line)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    sys.exit(main())
