"""The store contract: what every backend (SQLite, Redis, PostgreSQL) must do atomically.

Theory of operation. A workflow is one row plus its state, kept append-only: a full state
followed by zero or more delta records, concatenated in order to restore (``Unmarshal(full +
delta1 + ...)``). Every change of a row is one atomic operation of the backend:

* `create` writes a new row (status ``"running"``, step 0) with its initial full state.
* `claim` gives a worker a lease on one running row whose lease has expired (or on a given
  row, if its step is still the expected one): ``lease_until = now + lease``. A worker that
  dies leaves its lease to expire, and the next `claim` after that hands the row to another.
* `commit` is the compare-and-set that makes a step happen once: it applies only if the row
  is still ``"running"`` at step `old_step`; then it sets the new step and status, appends
  (or, for a full state, replaces) the state, and keeps or drops the lease, all at once. A
  duplicate, late or cancelled step commits nothing and returns False.
* `renew` extends a lease its worker still holds (the heartbeat of a long activity).
* `cancel` marks a running row failed (a late commit then fails its compare-and-set).

The backends (`_sql` with its `_dialects`, `_redis`) implement this contract; `_url` opens
one by URL. This module imports none of them.
"""

from __future__ import annotations

import abc
import builtins
import dataclasses

from ._records import Row, Status

__all__ = ["Claim", "Commit", "Store", "StoreURL"]


@dataclasses.dataclass(frozen=True)
class StoreURL:
    """A parsed store URL (`_url.parse_url`): the backend, what to reach, the prefix."""

    kind: str  # "sqlite", "redis" or "postgresql"
    target: str  # SQLite: the file path; otherwise the URL without `prefix`
    prefix: str  # names the tables or keys of one engine
    url: str  # as given: what workers are told (Celery messages carry it)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A lease on one workflow at one step, held by one worker until `lease_until`."""

    id: str
    entry: str
    args: str
    step: int


@dataclasses.dataclass(frozen=True)
class Commit:
    """One step's outcome, applied by `Store.commit` if the row is still at `old_step`."""

    id: str
    old_step: int
    new_step: int
    status: Status
    state: bytes | None  # a full state (replaces) or a delta (appends), as `full` says;
    # None when the step failed the workflow and there is no new state to keep
    full: bool
    error: str = ""
    lease_until: float = 0.0  # keep the lease until then (sticky), or 0 to release it


class Store(abc.ABC):
    """One workflow database; safe to share between threads of one process only if the
    backend says so (each worker process opens its own)."""

    url: str

    @abc.abstractmethod
    def create(self, row: Row, state: bytes, now: float) -> None:
        """Insert a new running workflow at step 0 with its full initial state."""

    @abc.abstractmethod
    def claim(
        self, worker: str, now: float, lease: float, id: str | None = None, step: int = -1
    ) -> Claim | None:
        """Lease one running workflow whose lease expired (or `id`, if at `step`)."""

    @abc.abstractmethod
    def commit(self, c: Commit, now: float) -> bool:
        """Apply `c` iff the row is running at `c.old_step`; True iff it applied."""

    @abc.abstractmethod
    def load_state(self, id: str) -> bytes:
        """The full state followed by its deltas, concatenated in order."""

    @abc.abstractmethod
    def get(self, id: str) -> Row | None:
        """The row of workflow `id`, or None."""

    @abc.abstractmethod
    def cancel(self, id: str, error: str, now: float) -> bool:
        """Mark a running workflow failed with `error`; False if it was not running."""

    @abc.abstractmethod
    def list(self) -> builtins.list[Row]:
        """Every workflow, oldest first."""

    @abc.abstractmethod
    def stale(self, now: float, older_than: float) -> builtins.list[tuple[str, int]]:
        """Running workflows untouched for `older_than` seconds with no live lease.

        Each one returned is touched (its update time set to `now`), so that callers
        polling this (the Celery executor's sweeper) resubmit a lost step once per period.
        """

    @abc.abstractmethod
    def renew(self, id: str, step: int, worker: str, lease_until: float) -> bool:
        """Extend `worker`'s lease on `id` at `step` to `lease_until`; False if it lost it."""

    @abc.abstractmethod
    def count_running(self) -> int:
        """How many workflows are running."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
