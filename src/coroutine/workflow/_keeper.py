"""The claims a worker process holds: kept alive while it works, given up when it loses them.

Theory of operation. A claim (`_store.Claim`) is valid in the store until its lease ends, and
current until another claim, a release or a cancel replaces it; the store refuses every write
of a claim that is not current (fencing). This module keeps the two in step for one `Engine`:

* A daemon thread (started when the engine first works as a worker) renews the lease of
  every claim in hand every third of a lease, and keeps the process alive in stores whose
  liveness is a short lease (Redis: `Store.alive_every`). A refused renewal marks the claim
  lost.
* Before each activity (and each retry) a runner calls `Held.check`: a lost claim raises
  `ClaimLost`, so a worker that was replaced stops before running anything more; and if the
  lease, by this process's own clock, may have run out (the process was stopped, or starved
  past its heartbeat), the claim is renewed first, in that thread, and refused means lost.

So a worker that stalls past its lease and wakes up runs at most the activity it was in (its
commit is then refused), whichever moment the stall began.
"""

from __future__ import annotations

import logging
import threading
import time

from ._store import Claim, Store

__all__ = ["ClaimLost", "Held", "Keeper"]

_log = logging.getLogger("coroutine.workflow")


class ClaimLost(Exception):
    """Raised in a runner when its claim is no longer current: another worker has the step."""


class Held:
    """One claim in hand. `claim` is its latest form (a batch moves its step on)."""

    def __init__(self, keeper: Keeper, claim: Claim) -> None:
        self.keeper = keeper
        self.claim = claim
        self.lost = False  # set once the store refused it
        # Monotonic time until which the lease certainly holds (renewed from its start).
        self.valid_until = time.monotonic() + keeper.lease

    def confirm(self, since: float) -> None:
        """The store accepted a write of this claim sent at monotonic time `since`."""
        self.valid_until = max(self.valid_until, since + self.keeper.lease)

    def renew(self) -> bool:
        """Renew the lease now; False (and lost) if the store refused."""
        since = time.monotonic()
        if self.keeper.store.renew(self.claim, time.time() + self.keeper.lease):
            self.confirm(since)
            return True
        self.lost = True
        return False

    def check(self) -> None:
        """Before an activity: raise `ClaimLost` unless this claim is surely still current."""
        if not self.lost and time.monotonic() > self.valid_until - self.keeper.lease / 3:
            self.renew()  # the heartbeat is late: this process was stopped or starved
        if self.lost:
            raise ClaimLost(
                f"the claim on workflow {self.claim.id!r} at step {self.claim.step} was "
                "taken over by another worker (this one stalled past its lease)"
            )


class Keeper:
    """The heartbeat of one engine's claims, and its process's liveness in the store."""

    def __init__(self, store: Store, owner: str, lease: float) -> None:
        self.store, self.owner, self.lease = store, owner, lease
        self._held: set[Held] = set()
        self._lock = threading.Lock()  # guards _held and the start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # None until `start`

    def start(self) -> None:
        """Join the store as a worker and start the heartbeat (once)."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self.store.join(self.owner)
                self._thread = threading.Thread(target=self._run, name="workflow-heartbeat")
                self._thread.daemon = True
                self._thread.start()

    def hold(self, claim: Claim) -> Held:
        held = Held(self, claim)
        with self._lock:
            self._held.add(held)
        return held

    def drop(self, held: Held) -> None:
        with self._lock:
            self._held.discard(held)

    def _run(self) -> None:
        every = min(self.lease / 3, self.store.alive_every or self.lease)
        next_renew = time.monotonic() + self.lease / 3
        while not self._stop.wait(every):
            try:
                self.store.keep_alive()
                if time.monotonic() < next_renew:
                    continue
                next_renew = time.monotonic() + self.lease / 3
                with self._lock:
                    held = list(self._held)
                for h in held:
                    if not h.lost and not h.renew():
                        _log.warning(
                            "workflow %s: claim lost at step %d (another worker took it after "
                            "this one stalled past its lease); stopping before its next "
                            "activity",
                            h.claim.id,
                            h.claim.step,
                        )
            except Exception:  # the store is unreachable: the claims lapse, as if we had died
                _log.exception("workflow heartbeat failed; the claims in hand may lapse")

    def close(self) -> None:
        self._stop.set()
