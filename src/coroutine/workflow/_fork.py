"""`Engine.fork`: a new workflow made of a prefix of another's history.

A workflow's states are its full state and one delta per commit; restoring the first ``j``
of them is exactly what a worker did to run the commit after them. Each commit stores the
steps it answered (`_steps`), so the states that end at step ``n`` are found by counting.
The fork is a new row at that step whose first state is those states joined: a worker
restoring it replays the old answers and runs the body live from step ``n``. It runs in the
original's queue, under its time limit (counted from the fork), as a new start would.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from ._records import Row

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["fork"]


def fork(store: Store, row: Row, step: int) -> str:
    """Create the fork of `row` at `step` in `store`; its id (the caller submits it to an
    executor, if there is one)."""
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"fork() takes an int step (got {step!r})")
    history = store.history(row.id)
    at, ends = 0, [0]  # the step each prefix of states ends at
    for n, (_, steps) in enumerate(history[1:], 1):
        lines = steps.splitlines()
        if lines and lines[-1].strip():
            at = int(lines[-1].split("\t", 1)[0]) + 1
        if n < len(history) - 1 or row.status == "running":
            ends.append(at)  # (a final commit's state is not one to run on from)
    if step not in ends:
        raise ValueError(
            f"workflow {row.id} has no committed state at step {step}; fork it at one of "
            f"{sorted(set(ends))}"
        )
    j = ends.index(step) + 1  # the number of states to keep (the first that ends there)
    state = b"".join(b for b, _ in history[:j])
    steps = "\n".join(s for _, s in history[:j] if s.strip())
    new, now = uuid.uuid4().hex, time.time()
    # In the original's queue, with its time limit counted from now: a fork is a new run,
    # and made without importing the workflow's code (the CLI's `fork` may not have it).
    deadline = now + (row.deadline - row.created) if row.deadline else 0.0
    fork = Row(new, row.entry, row.args, "running", step, queue=row.queue, deadline=deadline)
    store.create(fork, state, now, steps)
    return new
