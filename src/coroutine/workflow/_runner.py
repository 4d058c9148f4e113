"""One step of a workflow, as a worker runs it; and the worker's cache of live coroutines.

Theory of operation. A workflow is a durable coroutine whose entry is
``functools.partial(fn, *args, **kwargs)`` and whose every yield is an activity call. One
*step* takes a workflow from one committed state to the next:

1. get the coroutine at the committed step: from this worker's cache if it holds that very
   step (sticky), else rebuilt from the store (``Unmarshal(full + deltas)``; its next
   `Next()` replays the body from the record);
2. `Next()` runs the body to its next yield: an `ActivityCall`;
3. run the activity (retried per its policy) with the step's idempotency key, while a
   heartbeat thread renews the claim's lease; `Send` its result; or, if it failed for good,
   `throw` its exception in at the yield and, when the body catches it and calls another
   activity, run that one too, in the same step;
4. save the state (`save_state`: the one place that marshals) and `Store.commit` it with
   the step number as compare-and-set. Only one commit per step number can succeed; a
   worker whose commit fails drops its copy of the coroutine.

The committed state holds the answer to the last yield as its pending `Send`, so the next
step always begins with a plain `Next()`, on a live coroutine or a restored one alike.
Activities run before the commit: a worker that dies between the two leaves the step to be
run again (at least once); the commit itself happens once.
"""

from __future__ import annotations

import collections
import functools
import importlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from coroutine import Coroutine, InvalidStateError, NewWithReturn

from ._activity import _WORKFLOWS, ActivityCall, run_activity
from ._records import Status, decode_value, encode_error
from ._store import Claim, Commit, Store
from ._url import open_store

__all__ = ["Runner", "entry_of", "new_workflow", "save_state"]

if TYPE_CHECKING:
    from typing import TypeAlias

    Workflow: TypeAlias = Coroutine[ActivityCall, Any, Any]

# The attribute `workflow(version=...)` sets on a workflow function.
VERSION_ATTR = "__workflow_version__"

_log = logging.getLogger("coroutine.workflow")


def save_state(coro: Workflow) -> bytes:
    """What to append to the workflow's stored state: the coroutine's record since its last
    save (or since it was restored from the store); the full state on its first save.

    Every state the engine stores goes through here. `Context().MarshalDelta()` chains each
    delta to the frame it follows, so ``Unmarshal(full + delta1 + ...)`` notices a missing,
    reordered or forked delta (InvalidStateError) instead of resuming a wrong history.
    """
    return coro.Context().MarshalDelta()


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def entry_of(entry: str, args: str) -> functools.partial[Any]:
    """Rebuild the durable entry ``partial(fn, *args, **kwargs)`` from a stored row."""
    module, _, qualname = entry.partition(":")
    obj: Any = importlib.import_module(module)  # the store is trusted input, as states are
    for part in qualname.split("."):
        obj = getattr(obj, part)
    a, kw = decode_value(args)
    return functools.partial(obj, *a, **kw)


def new_workflow(entry: functools.partial[Any]) -> Workflow:
    version = getattr(entry.func, VERSION_ATTR, None)
    # NewWithReturn[R, S] at run time (T is fn's return type); the class mypy reads in src/
    # has all three parameters, which only the stubs hide.
    make = NewWithReturn[ActivityCall, Any]  # type: ignore[type-arg]
    coro: Workflow = make(entry, durable=True, version=version)
    _WORKFLOWS.add(coro)
    return coro


class _Heartbeat:
    """Renews the lease of the step in hand every third of a lease while it runs, so that
    an activity longer than the lease is not taken over by another worker.

    A daemon thread with its own store connection (a SQLite connection belongs to the
    thread that opened it), started on the first step; `close` ends it.
    """

    def __init__(self, url: str, worker: str, lease: float) -> None:
        self.url, self.worker, self.lease = url, worker, lease
        self.slot: tuple[str, int] | None = None  # (id, step) of the step in hand, or None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # None until the first step

    def hold(self, id: str, step: int) -> None:
        self.slot = (id, step)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="workflow-lease", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        store: Store | None = None
        try:
            while not self._stop.wait(self.lease / 3):
                slot = self.slot
                if slot is None:
                    continue
                store = store or open_store(self.url)
                store.renew(slot[0], slot[1], self.worker, time.time() + self.lease)
        except Exception:  # the lease then lapses, as if this worker had died
            _log.exception("lease heartbeat stopped")
        finally:
            if store is not None:
                store.close()

    def close(self) -> None:
        self._stop.set()


class Runner:
    """Runs steps for one worker process, keeping live coroutines in a bounded LRU cache.

    `hits` counts steps resumed from the cache, `replays` steps rebuilt from the store.
    """

    def __init__(self, store: Store, *, lease: float, cache_size: int, sticky: bool) -> None:
        self.store = store
        self.worker = _worker_name()
        self.lease = lease
        self.sticky = sticky
        self.cache_size = cache_size
        # id -> (step, coroutine suspended with that step's answer pending); most recent last
        self._cache: collections.OrderedDict[str, tuple[int, Workflow]] = collections.OrderedDict()
        self.hits = 0
        self.replays = 0
        self._heartbeat = _Heartbeat(store.url, self.worker, lease)

    def _coroutine(self, claim: Claim) -> Workflow:
        hit = self._cache.pop(claim.id, None)
        if hit is not None and hit[0] == claim.step:
            self.hits += 1
            return hit[1]
        self.replays += 1
        coro = new_workflow(entry_of(claim.entry, claim.args))
        coro.Context().Unmarshal(self.store.load_state(claim.id))
        return coro

    def _advance(self, claim: Claim, coro: Workflow) -> tuple[Status, int, str]:
        """Steps 2 and 3 above: the new status, step number and error."""
        step = claim.step
        try:
            more = coro.Next()
            while more:
                key = f"{claim.id}:{step}"
                step += 1
                try:
                    value = run_activity(coro.Recv(), key)
                except Exception as exc:
                    try:
                        coro.throw(exc)
                    except StopIteration:
                        more = False
                    continue
                coro.Send(value)
                return "running", step, ""
            return "done", step, ""
        except Exception as exc:
            return "failed", step, encode_error(exc)

    def step(self, claim: Claim, *, keep_lease: bool = False) -> int | None:
        """Run one step of a claimed workflow and commit it.

        Returns the new step number if the workflow is still running and the commit
        applied; None if it finished, failed, or the commit was rejected (stale step).
        """
        try:
            coro = self._coroutine(claim)
        except InvalidStateError as exc:  # a state this code cannot resume: final
            return self._commit(claim, "failed", claim.step, encode_error(exc), None, False)
        except Exception:  # this worker cannot load the workflow (its code is missing or
            # broken here): leave the step leased, so that it is retried after the lease,
            # here or by a worker that can.
            _log.exception(
                "cannot resume workflow %s (%s); retry after the lease", claim.id, claim.entry
            )
            return None
        self._heartbeat.hold(claim.id, claim.step)
        try:
            status, step, error = self._advance(claim, coro)
        finally:
            self._heartbeat.slot = None
        state: bytes | None = None
        if status != "failed":
            try:
                state = save_state(coro)
            except Exception as exc:  # a value that cannot be recorded: NotDurableError
                status, error = "failed", encode_error(exc)
        new = self._commit(claim, status, step, error, state, keep_lease)
        if new is not None and self.sticky:
            self._cache[claim.id] = (step, coro)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return new

    def _commit(
        self,
        claim: Claim,
        status: Status,
        step: int,
        error: str,
        state: bytes | None,
        keep_lease: bool,
    ) -> int | None:
        """Step 4: the compare-and-set; the new step if it applied and the workflow runs."""
        now = time.time()
        lease_until = now + self.lease if keep_lease and status == "running" else 0.0
        commit = Commit(claim.id, claim.step, step, status, state, False, error, lease_until)
        if not self.store.commit(commit, now) or status != "running":
            return None
        return step

    def drop_cache(self) -> None:
        """Forget every live coroutine (they unwind as collected coroutines do)."""
        self._cache.clear()

    def close(self) -> None:
        """Drop the live coroutines and stop the lease heartbeat."""
        self.drop_cache()
        self._heartbeat.close()

    def run_claimed(self, claim: Claim, batch: int) -> int:
        """Run up to `batch` steps of one workflow while holding its lease; steps run."""
        steps = 0
        current: Claim | None = claim
        while current is not None and steps < batch:
            steps += 1
            new = self.step(current, keep_lease=steps < batch)
            current = None if new is None else Claim(claim.id, claim.entry, claim.args, new)
        return steps
