"""One step of a workflow, as a worker runs it; and the worker's cache of live coroutines.

Theory of operation. A workflow is a durable coroutine whose entry is
``functools.partial(fn, *args, **kwargs)`` and whose every yield is an activity call. One
*step* takes a workflow from one committed state to the next, under a claim (`_keeper`):

1. get the coroutine at the committed step: from this thread's cache if it holds that very
   step (sticky), else rebuilt from the store (``Unmarshal(full + deltas)``; its next
   `Next()` replays the body from the record). A worker that cannot rebuild it (the module
   does not import here) gives the claim back, recording why (`last_error`), so that the
   reason is visible and another worker may try;
2. `Next()` runs the body to its next yield: an `ActivityCall`;
3. run the activity (retried per its policy; the claim checked before each attempt) with the
   step's idempotency key; `Send` its result; or, if it failed for good, `throw` its
   exception (`_boundary.stand_in`: the same on every worker) in at the yield and, when the
   body catches it and calls another activity, run that one too, in the same step;
4. save the state (`save_state`: the one place that marshals) and `Store.commit` it under
   the claim. Only the current claim can commit; a worker whose commit is refused drops its
   copy of the coroutine.

A yield that is a wait (`_waits.Wait`: a timer, a receive, a child...) is answered by the
runner itself (`_waits.answer`) and committed like an activity's result; when it cannot be
answered yet, the claim is given back until it can (`Store.suspend`, fenced), nothing is
committed, and the coroutine is kept parked at that yield for this thread's next claim.

The committed state holds the answer to the last yield as its pending `Send`, so the next
step always begins with a plain `Next()`, on a live coroutine or a restored one alike.
Activities run before the commit: a worker that dies between the two leaves the step to be
run again (at least once); the commit itself happens once. Coroutines belong to the thread
that made them, so each thread of a worker has its own `Runner`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import time
import traceback
from typing import TYPE_CHECKING, Any

from coroutine import InvalidStateError

from . import _queues, _steps, _waits
from ._activity import ActivityCall, run_activity
from ._boundary import SCALARS, check_recordable, detach, stand_in
from ._errors import StoreDamagedError, WorkflowError
from ._keeper import ClaimLost, Held, Keeper
from ._records import Status, encode_error
from ._store import Claim, Commit, Store, chain
from ._workflows import entry_of, new_workflow, save_state

__all__ = ["Runner"]

if TYPE_CHECKING:
    from ._workflows import Workflow

# A workflow this worker cannot load is given back, to be tried again after this long.
RETRY_LOAD = 2.0

_log = logging.getLogger("coroutine.workflow")


class _Unanswered(Exception):
    """A wait could not be answered for a reason that is not the body's (a store error, a
    child's module that does not import on this worker): the claim is given back with the
    reason, as for a workflow that cannot be loaded here, and the step is tried again."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(cause)
        self.cause = cause


class Runner:
    """Runs steps for one thread of a worker process, keeping live coroutines in a bounded
    LRU cache. `hits` counts steps resumed from the cache, `replays` steps rebuilt."""

    def __init__(self, store: Store, keeper: Keeper, *, cache_size: int, sticky: bool) -> None:
        self.store = store
        self.keeper = keeper
        self.worker = keeper.owner
        self.lease = keeper.lease
        self.sticky = sticky
        self.cache_size = cache_size
        # id -> (step, coroutine suspended with that step's answer pending); most recent last
        self._cache: collections.OrderedDict[str, tuple[int, Workflow]] = collections.OrderedDict()
        self.hits = 0
        self.replays = 0
        self._reported: set[tuple[str, str]] = set()  # (id, reason) already logged
        # Waits (`_waits`): coroutines suspended at an unanswered wait, id -> (step,
        # coroutine, the wait); children started by the last step (Celery submits them).
        self._parked: collections.OrderedDict[str, tuple[int, Workflow, ActivityCall]] = (
            collections.OrderedDict()
        )
        self.spawned: list[str] = []

    def _coroutine(self, claim: Claim) -> Workflow:
        hit = self._cache.pop(claim.id, None)
        if hit is not None and hit[0] == claim.step:
            self.hits += 1
            return hit[1]
        self.replays += 1
        coro = new_workflow(entry_of(claim.entry, claim.args))
        coro.Context().Unmarshal(self.store.load_state(claim.id))
        return coro

    def _advance(
        self,
        claim: Claim,
        coro: Workflow,
        held: Held,
        calls: list[list[Any]],
        parked: ActivityCall | None = None,
    ) -> tuple[Status, int, str]:
        """Steps 2 and 3 above: the new status, step number and error. `parked`: the wait
        `coro` is suspended at (not yet answered), if any."""
        step = claim.step
        activity_tb: tuple[BaseException | None, str] = (None, "")  # the last thrown in
        try:
            more = parked is not None or coro.Next()
            while more:
                call = parked or coro.Recv()
                if isinstance(call, _waits.Wait):  # answered, or raises Suspend
                    try:
                        value = _waits.answer(self, claim, step, call)
                    except _waits.Suspend:
                        if not calls or call.kind not in _waits.ASKS_AGAIN:
                            raise
                        value = _waits.AGAIN  # commit the activities run: `_waits`
                    except (ClaimLost, StoreDamagedError, WorkflowError, TypeError):
                        raise  # (the last two: the body's own mistake, which fails it)
                    except Exception as exc:  # the store failed, a child's code is missing here
                        raise _Unanswered(exc) from exc
                    calls.append(_steps.started(step, call, time.time()))
                    _steps.answered(calls[-1], value)
                    coro.Send(value)
                    return "running", step + 1, ""
                calls.append(_steps.started(step, call, time.time()))
                step += 1
                try:
                    value = run_activity(call, f"{claim.id}:{step - 1}", held.check)
                    if type(value) not in SCALARS:
                        what = f"the result of activity {getattr(call, 'name', call)}"
                        check_recordable(value, what)
                except ClaimLost:
                    raise
                except Exception as exc:
                    thrown = stand_in(exc)
                    activity_tb = (thrown, "".join(traceback.format_exception(exc)))
                    detach(exc)
                    error = f"{type(exc).__module__}.{type(exc).__qualname__}: {thrown}"
                    _steps.failed(calls[-1], error, time.time())
                    try:
                        coro.throw(thrown)
                    except StopIteration:
                        more = False
                    continue
                _steps.answered(calls[-1], value)
                coro.Send(value)
                return "running", step, ""
            return "done", step, ""
        except (ClaimLost, _waits.Suspend, _Unanswered, StoreDamagedError):
            raise
        except Exception as exc:  # the body's own, or an activity's it did not catch
            return (
                "failed",
                step,
                encode_error(exc, activity_tb[1] if exc is activity_tb[0] else ""),
            )

    def step(self, claim: Claim, *, keep: bool = False, held: Held | None = None) -> Claim | None:
        """Run one step of a claimed workflow and commit it.

        Returns the workflow's claim at its new step if it is still running and the commit
        applied (still held if `keep`, else given back); None if it finished, failed, could
        not be loaded here, or the claim was lost (another worker has it).

        Raises:
            StoreDamagedError: the store is damaged (this worker should stop).
        """
        mine = held is None
        self.spawned.clear()
        held = held or self.keeper.hold(claim)
        try:
            return self._step(claim, held, keep)
        finally:
            if mine:
                self.keeper.drop(held)

    def _step(self, claim: Claim, held: Held, keep: bool) -> Claim | None:
        parked = self._parked.pop(claim.id, None)
        late = _queues.timed_out(claim, time.time())  # past its time limit: fails, runs nothing
        if late:
            return self._commit(claim, held, "failed", claim.step, late, b"", [])
        try:
            if parked is not None and parked[0] == claim.step:
                coro = parked[1]
            else:
                parked = None
                coro = self._coroutine(claim)
        except InvalidStateError as exc:  # a state this code cannot resume: final
            return self._commit(claim, held, "failed", claim.step, encode_error(exc), b"", [])
        except StoreDamagedError:
            raise
        except Exception as exc:  # its code is missing or broken here: give it back
            self._cannot_load(claim, exc)
            return None
        calls: list[list[Any]] = []
        try:
            status, step, error = self._advance(claim, coro, held, calls, parked and parked[2])
        except ClaimLost as exc:
            _log.warning("%s; its step is not committed here", exc)
            return None
        except _waits.Suspend as wait:  # (after an activity thrown in: replayed, not parked)
            self._suspend(claim, coro if not calls else None, wait)
            return None
        except _Unanswered as exc:  # not the body's fault: give it back, to be tried again
            self._cannot_load(claim, exc.cause)
            with contextlib.suppress(Exception):
                coro.close()  # not kept: the next claim rebuilds it from the store
            return None
        state = b""
        if status != "failed":
            try:
                state = save_state(coro)
            except Exception as exc:  # a value that cannot be recorded: NotDurableError
                status, error = "failed", encode_error(exc)
        new = self._commit(claim, held, status, step, error, state, calls, keep)
        if new is not None and self.sticky:
            self._cache[claim.id] = (step, coro)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return new

    def _suspend(self, claim: Claim, coro: Workflow | None, wait: _waits.Suspend) -> None:
        """Give the claim back until the wait may be answered; keep the coroutine, parked
        at its wait, for when this thread claims it again."""
        # A workflow with a time limit wakes by it at the latest, to fail then (`_queues`).
        due = min(wait.due, claim.deadline) if claim.deadline else wait.due
        if self.store.suspend(claim, due, wait.what, time.time()):
            if coro is not None and self.sticky and self.cache_size:
                self._parked[claim.id] = (claim.step, coro, coro.Recv())
                if len(self._parked) > self.cache_size:
                    self._parked.popitem(last=False)

    def _cannot_load(self, claim: Claim, exc: Exception) -> None:
        why = f"worker {self.worker} cannot resume it: {type(exc).__name__}: {exc}"
        delay = min(self.lease, RETRY_LOAD)
        if (claim.id, why) not in self._reported:
            self._reported.add((claim.id, why))
            _log.error("workflow %s (%s): %s; retrying in %.1f s, here or on a worker that can",
                       claim.id, claim.entry, why, delay, exc_info=exc)  # fmt: skip
        self.store.release(claim, time.time() + delay, why[:2000])

    def _commit(
        self,
        claim: Claim,
        held: Held,
        status: Status,
        step: int,
        error: str,
        state: bytes,
        calls: list[list[Any]],
        keep: bool = False,
    ) -> Claim | None:
        """Step 4: the fenced commit; the claim at the new step if it applied and runs on."""
        since, now = time.monotonic(), time.time()
        keep_until = now + self.lease if keep and status == "running" else 0.0
        new_chain = chain(claim.chain, state)
        steps = _steps.encode(calls, now)
        commit = Commit(claim, step, status, state, new_chain, error, keep_until, steps)
        if not self.store.commit(commit, now):
            _log.info("workflow %s: step %d not committed (claim no longer current)",
                      claim.id, claim.step)  # fmt: skip
            return None
        if _log.isEnabledFor(logging.INFO):
            _log_steps(claim, status, steps, error)
        if status != "running":
            _waits.finished(self, claim.id)
            return None
        held.confirm(since)
        new = claim._replace(step=step, chain=new_chain)
        held.claim = new
        return new

    def drop_cache(self) -> None:
        """Forget every live coroutine (they unwind as collected coroutines do)."""
        self._cache.clear()
        self._parked.clear()

    def run_claimed(
        self,
        claim: Claim,
        batch: int,
        seconds: float = math.inf,
        spawned: list[str] | None = None,
    ) -> tuple[int, Claim | None]:
        """Run up to `batch` steps of one workflow while holding its claim, none begun after
        `seconds`: (steps run, its claim at the next step, released; None if it finished,
        failed, waits, or the claim was lost). The ids of the child workflows the steps
        started are added to `spawned` (`spawned` itself holds only the last step's)."""
        end = time.monotonic() + seconds
        held = self.keeper.hold(claim)
        steps = 0
        try:
            current: Claim | None = claim
            while current is not None:
                steps += 1
                last = steps >= batch or time.monotonic() >= end
                current = self.step(current, keep=not last, held=held)
                if spawned is not None:
                    spawned.extend(self.spawned)
                if last:
                    break
        finally:
            self.keeper.drop(held)
        return steps, current


def _log_steps(claim: Claim, status: Status, steps: str, error: str) -> None:
    """One line per activity call committed (a worker's ``--verbose``)."""
    for line in steps.splitlines():
        _log.info("workflow %s %s", claim.id, _steps.describe(line))
    if status != "running":
        end = f"failed: {json.loads(error)['str']}" if error else "done"
        _log.info("workflow %s (%s) %s", claim.id, claim.entry, end)
