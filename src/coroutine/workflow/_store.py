"""The store contract: what every backend (SQLite, PostgreSQL, Redis) must do atomically.

Theory of operation. A workflow is one row plus its states, kept append-only: a full state
followed by one delta per commit, concatenated in order to restore (``Unmarshal(full + delta1
+ ...)``), with a checksum over the chain (`chain`) kept in the row, so a lost, altered or
reordered state is noticed when the states are read (`StoreDamagedError`).

A running row is *due* at a time: it may be claimed from then on. A free row is due since it
became ready (so claims take rows in that order, through an index on ``due``); a claimed row
is due when its claim's lease ends. Every change of a row is one atomic operation:

* `create` writes a new row (running, step 0, due now) with its initial state, unless its id
  is taken (then it returns the row holding it: `Engine.start_as`).
* `claim` gives one worker process (`owner`) the row with the earliest ``due`` that is not
  in the future (or a given row, if still at the given step), sets ``due = now + lease``, and
  increments the row's ``fence``. The pair (owner, fence) names the claim: it is current
  until the next claim, a release, a cancel or the end of the workflow.
* `commit`, `renew` and `release` apply only if the claim they name is current: so a worker
  that stalled past its lease and was replaced commits nothing, and its heartbeat's refused
  `renew` tells it to stop. `commit` sets the new step and status, appends the state and
  moves the checksum, and keeps the claim (``due`` = `keep_until`) or frees it (due now).
* `join` makes this process a worker whose claims are freed as soon as it is gone (a lock the
  operating system or the database server drops with the process, or a short lease its
  heartbeat keeps alive: see each backend), and `reap` frees the claims of workers that are
  gone (``due = 0``: first in line). The lease stays the bound for a worker that hangs.
* `cancel` fails a running row; `stale` hands the Celery supervisor the rows nobody has taken
  for a while (whose step message may be lost), touching them so each is handed once a period.

New kinds of waiting (durable timers, messages, child workflows, queues) fit the same shape:
a row waiting for something is free with ``due`` at its wake-up time (or unset until an event
sets it), and every change to it is fenced by the claim that made it.

The backends (`_sql` with its `_dialects`, `_redis`) implement this contract; `_url` opens
one by URL. This module imports none of them.
"""

from __future__ import annotations

import abc
import builtins
import dataclasses
import zlib
from typing import NamedTuple

from ._records import Row, Status

__all__ = ["Claim", "Commit", "Store", "StoreURL", "chain"]


@dataclasses.dataclass(frozen=True)
class StoreURL:
    """A parsed store URL (`_url.parse_url`): the backend, what to reach, the prefix."""

    kind: str  # "sqlite", "redis" or "postgresql"
    target: str  # SQLite: the file path; otherwise the URL without `prefix`
    prefix: str  # names the tables or keys of one engine
    url: str  # as given: what workers are told (Celery messages carry it)


class Claim(NamedTuple):
    """One worker's claim on one workflow at one step: current while (owner, fence) are the
    row's."""

    id: str
    entry: str
    args: str
    step: int
    owner: str
    fence: int
    chain: bytes  # the checksum of the states so far
    queue: str = ""  # its queue (`_queues`): the claim holds one of the queue's slots
    deadline: float = 0.0  # its time limit (`_queues`), 0 for none


class Commit(NamedTuple):
    """One step's outcome, applied by `Store.commit` only while `claim` is current."""

    claim: Claim
    step: int  # the new step number
    status: Status
    state: bytes | None  # the delta to append; None when the workflow failed with nothing new
    chain: bytes  # the checksum once `state` is appended
    error: str = ""
    keep_until: float = 0.0  # keep the claim until then (a batch goes on), or 0: free it
    steps: str = ""  # the activity calls this commit answers, for `Engine.steps`


def chain(previous: bytes, state: bytes) -> bytes:
    """The checksum of a workflow's states once `state` is appended (`previous`: before, or
    ``b""``): CRC-32 run over the states in order, as a 4-byte string. It catches accidents
    (a lost, altered, repeated or reordered state), not tampering: the store is trusted."""
    return zlib.crc32(state, int.from_bytes(previous or b"\0\0\0\0", "big")).to_bytes(4, "big")


class Store(abc.ABC):
    """One workflow database. Safe to share between the threads of a process."""

    url: str
    # How often `keep_alive` must run while joined (seconds), or None: never.
    alive_every: float | None = None

    def keep_alive(self) -> None:  # noqa: B027 (only some backends need it)
        """Tell the store this joined process still lives (backends whose `join` is a
        short lease); raise if the store cannot be reached."""

    @abc.abstractmethod
    def create(self, row: Row, state: bytes, now: float, steps: str | None = None) -> Row | None:
        """Insert a new running workflow (at step ``row.step``, in ``row.queue``, with
        ``row.deadline``) and its first state; None, or the row that already has that id
        (then nothing is written). `steps`: a fork's (`Engine.fork`), the steps its first
        state holds already."""

    @abc.abstractmethod
    def discard(self, id: str) -> bool:
        """Delete a workflow no worker has claimed yet (`Engine.start` undoing itself)."""

    @abc.abstractmethod
    def claim(
        self, owner: str, now: float, lease: float, id: str | None = None, step: int = -1
    ) -> Claim | None:
        """Claim the running workflow due first (or `id`, if at `step` and due)."""

    @abc.abstractmethod
    def commit(self, c: Commit, now: float) -> bool:
        """Apply `c` iff its claim is current; True iff it applied."""

    @abc.abstractmethod
    def renew(self, claim: Claim, until: float) -> bool:
        """Extend a current claim's lease to `until`; False if the claim is not current."""

    @abc.abstractmethod
    def release(self, claim: Claim, due: float, last_error: str) -> bool:
        """Free a current claim without a step, due again at `due`, recording why."""

    @abc.abstractmethod
    def load_state(self, id: str) -> bytes:
        """The states, concatenated in order; `StoreDamagedError` if they fail the checksum."""

    @abc.abstractmethod
    def steps(self, id: str) -> builtins.list[str]:
        """The `Commit.steps` records of workflow `id`, in order."""

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
    def stale(self, now: float, older_than: float) -> builtins.list[tuple[str, int, str]]:
        """(id, step, last_error) of running workflows free for `older_than` seconds or
        whose lease ran out, freed and touched (due now), a bounded number per call."""

    @abc.abstractmethod
    def count_running(self) -> int:
        """How many workflows are running."""

    @abc.abstractmethod
    def join(self, owner: str) -> None:
        """Register this process as worker `owner`, whose claims `reap` frees once it is gone."""

    @abc.abstractmethod
    def reap(self, now: float) -> int:
        """Free the claims of workers that are gone; how many claims were freed."""

    # --- queues and schedules: each backend mixes in `_queues` and `_schedule` classes ---

    def set_queue(self, name: str, concurrency: int) -> None:
        """Record queue `name`'s concurrency limit (replacing any earlier one)."""
        raise NotImplementedError

    def queues(self) -> dict[str, int]:
        """Every queue given a limit, with it."""
        raise NotImplementedError

    def slot_retry(self, id: str, step: int, now: float, until: float) -> bool:
        """True iff workflow `id` is ready at `step` (due by `now`), unclaimed, and in a
        queue: then its due moves to `until`, so that until then it is not ready. The Celery
        executor asks this of a message whose claim failed, and only the message that gets
        True sends itself again: one retry loop per workflow, however many copies of its
        message the supervisor and the broker made (`_celery`)."""
        raise NotImplementedError

    def put_schedule(self, row: tuple[str, str, str, str, float]) -> None:
        """Add or replace the schedule (id, entry, args, cron, next); an unchanged cron keeps
        the stored next."""
        raise NotImplementedError

    def drop_schedule(self, id: str) -> bool:
        """Delete a schedule; True iff there was one."""
        raise NotImplementedError

    def schedules(self) -> builtins.list[tuple[str, str, str, str, float]]:
        """Every schedule (id, entry, args, cron, next), by id."""
        raise NotImplementedError

    def due_schedules(self, now: float) -> builtins.list[tuple[str, str, str, str, float]]:
        """The schedules whose next run is due at `now` (a bounded number)."""
        raise NotImplementedError

    def move_schedule(self, id: str, old: float, new: float) -> bool:
        """Set a schedule's next run to `new` iff it is still `old`."""
        raise NotImplementedError

    @abc.abstractmethod
    def close(self) -> None:
        """Leave (if joined) and release connections; the store is unusable afterwards."""

    # --- waits (timers, messages, events, children, fork: `_waits`) ---------------------
    # Every write a wait makes for a claimed workflow is fenced by that claim, as `commit` is.

    @abc.abstractmethod
    def suspend(self, claim: Claim, due: float, what: str, now: float) -> bool:
        """Free a current claim without a step, due again at `due`, waiting for `what`
        (``"sleep"``, ``"receive:TOPIC"``, ``"join:ID"``); due `now` instead if what it
        waits for is already there (a message it would take, the child's end). False if the
        claim is not current."""

    @abc.abstractmethod
    def take(self, claim: Claim, topic: str) -> tuple[bool, str | None]:
        """(claim current?, the oldest message on `topic` not taken by a step before
        ``claim.step``, now marked as taken by that step; or None)."""

    @abc.abstractmethod
    def send(self, id: str, topic: str, value: str, now: float) -> bool:
        """Queue a message for workflow `id` and wake it if it waits on `topic`; False if
        there is no workflow `id`."""

    @abc.abstractmethod
    def wake(self, id: str, what: str, now: float) -> bool:
        """Make workflow `id` due now if it is free and waiting for `what`."""

    @abc.abstractmethod
    def woken(self, now: float) -> builtins.list[tuple[str, int]]:
        """(id, step) of waiting workflows that are due and free, no longer marked waiting
        (the Celery supervisor submits each once)."""

    @abc.abstractmethod
    def set_event(self, claim: Claim, key: str, value: str) -> bool:
        """Set event `key` of the claimed workflow; False if the claim is not current."""

    @abc.abstractmethod
    def get_event(self, id: str, key: str) -> str | None:
        """The value of event `key` of workflow `id`, or None."""

    @abc.abstractmethod
    def history(self, id: str) -> builtins.list[tuple[bytes, str]]:
        """Each stored state of workflow `id` (checked) with the steps its commit answered."""
