"""The engine: start workflows, run their steps, and read their outcome.

Theory of operation. A workflow is a durable coroutine whose entry is
``functools.partial(fn, *args, **kwargs)`` and whose every yield is an activity call. One
*step* takes a workflow from one committed state to the next:

1. get the coroutine at the committed step: from this worker's cache if it holds that very
   step (sticky), else rebuilt from the store (``Unmarshal(full + deltas)``; its next
   `Next()` replays the body from the record);
2. `Next()` runs the body to its next yield: an `ActivityCall`;
3. run the activity (retried per its policy) with the step's idempotency key; `Send` its
   result; or, if it failed for good, `throw` its exception in at the yield and, when the
   body catches it and calls another activity, run that one too, in the same step;
4. save the state (`save_state`: the one place that marshals) and `Store.commit` it with
   the step number as compare-and-set. Only one commit per step number can succeed; a
   worker whose commit fails drops its copy of the coroutine.

The committed state holds the answer to the last yield as its pending `Send`, so the next
step always begins with a plain `Next()`, on a live coroutine or a restored one alike.
Activities run before the commit: a worker that dies between the two leaves the step to be
run again (at least once); the commit itself happens once.
"""

from __future__ import annotations

import builtins
import collections
import functools
import importlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from coroutine import Coroutine, InvalidStateError, NewWithReturn

from ._activity import _WORKFLOWS, ActivityCall, run_activity
from ._errors import WorkflowNotDoneError, WorkflowNotFoundError
from ._records import (
    Row,
    Status,
    cancelled_error,
    decode_value,
    encode_error,
    encode_value,
    rebuild_error,
)
from ._store import Claim, Commit, Store, open_store

__all__ = ["Engine", "Executor", "Runner", "save_state", "workflow"]

if TYPE_CHECKING:
    from typing import TypeAlias

    Workflow: TypeAlias = Coroutine[ActivityCall, Any]


_log = logging.getLogger("coroutine.workflow")


def save_state(coro: Workflow) -> bytes:
    """What to append to the workflow's stored state: the coroutine's record since its last
    save (or since it was restored from the store); the full state on its first save.

    Every state the engine stores goes through here. `Context().MarshalDelta()` chains each
    delta to the frame it follows, so ``Unmarshal(full + delta1 + ...)`` notices a missing,
    reordered or forked delta (InvalidStateError) instead of resuming a wrong history.
    """
    return coro.Context().MarshalDelta()


class Executor(Protocol):
    """Where steps run when not in `Engine.run`'s own loop (the Celery executor)."""

    def submit(self, store_url: str, id: str, step: int, lease: float) -> None:
        """Have a worker run step `step` of workflow `id` of the store at `store_url`,
        holding its claim for `lease` seconds."""


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _entry(entry: str, args: str) -> functools.partial[Any]:
    """Rebuild the durable entry ``partial(fn, *args, **kwargs)`` from a stored row."""
    module, _, qualname = entry.partition(":")
    obj: Any = importlib.import_module(module)  # the store is trusted input, as states are
    for part in qualname.split("."):
        obj = getattr(obj, part)
    a, kw = decode_value(args)
    return functools.partial(obj, *a, **kw)


F = TypeVar("F", bound=Callable[..., Any])


def workflow(*, version: str) -> Callable[[F], F]:
    """Give a workflow function a version: its states resume under that version string.

    Without it a workflow's state resumes only under the very code that recorded it (the
    entry function's fingerprint), so deploying any change to the function fails the
    workflows in flight. With ``@workflow(version="orders-1")`` they resume under the new
    code as long as the version string is unchanged; guard each change that would replay
    an old history differently with ``if coroutine.Patched("change-id"): ... else: ...``
    (docs/workflows.md). Returns the function itself, marked.

    Raises:
        TypeError: `version` is not a non-empty str.
    """
    if not isinstance(version, str) or not version:
        raise TypeError(f"workflow(version=...) takes a non-empty str (got {version!r})")

    def mark(fn: F) -> F:
        fn.__workflow_version__ = version  # type: ignore[attr-defined]
        return fn

    return mark


def _new(entry: functools.partial[Any]) -> Workflow:
    version = getattr(entry.func, "__workflow_version__", None)
    coro: Workflow = NewWithReturn[ActivityCall, Any](entry, durable=True, version=version)
    _WORKFLOWS.add(coro)
    return coro


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

    def _coroutine(self, claim: Claim) -> Workflow:
        hit = self._cache.pop(claim.id, None)
        if hit is not None and hit[0] == claim.step:
            self.hits += 1
            return hit[1]
        self.replays += 1
        coro = _new(_entry(claim.entry, claim.args))
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
        status, step, error = self._advance(claim, coro)
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

    def run_claimed(self, claim: Claim, batch: int) -> int:
        """Run up to `batch` steps of one workflow while holding its lease; steps run."""
        steps = 0
        current: Claim | None = claim
        while current is not None and steps < batch:
            steps += 1
            new = self.step(current, keep_lease=steps < batch)
            current = None if new is None else Claim(claim.id, claim.entry, claim.args, new)
        return steps


class Engine:
    """Start workflows, run their steps, and read their outcome, over one store.

    `store_url` is ``sqlite:///path``, ``redis://host:port/db`` or
    ``postgresql://user@host/db`` (each may end with ``?prefix=NAME``). With an `executor`
    (a `CeleryExecutor`), steps run on its workers and `run` only supervises. `lease` is
    how long a claimed step stays with its worker before another may take it (seconds);
    `cache_size` bounds the live coroutines kept per process; ``sticky=False`` rebuilds
    every step from the store (for comparison); `batch` is how many steps in a row a worker
    runs of one workflow before looking at others.

    Raises:
        StoreURLError: the URL's scheme is not one of the above.
    """

    def __init__(
        self,
        store_url: str,
        executor: Executor | None = None,
        *,
        lease: float = 30.0,
        cache_size: int = 1024,
        sticky: bool = True,
        batch: int = 100,
    ) -> None:
        self.store_url = store_url
        self.store = open_store(store_url)
        self.executor = executor
        self.batch = batch
        self.runner = Runner(self.store, lease=lease, cache_size=cache_size, sticky=sticky)
        self._stopping = False  # set by stop(): run() returns after its current step

    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """Record a new workflow running ``fn(*args, **kwargs)`` and return its id.

        Nothing of `fn` runs here: its first step runs in `run` or on a worker.

        Raises:
            TypeError: `fn` is not a module-level function, or an argument is not plain
                data (None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset).
            NotDurableError: the entry cannot be recorded.
        """
        qualname = getattr(fn, "__qualname__", "<?>")
        if "<" in qualname or not hasattr(fn, "__module__"):
            raise TypeError(
                f"a workflow must be a module-level function (got {fn!r}); define it with def "
                "at the top level of a module that every worker imports"
            )
        args_text = encode_value((args, kwargs))
        coro = _new(functools.partial(fn, *args, **kwargs))
        state = save_state(coro)  # its first save: the full state
        id = uuid.uuid4().hex
        entry = f"{fn.__module__}:{qualname}"
        self.store.create(Row(id, entry, args_text, "running", 0, ""), state, time.time())
        if self.executor is not None:
            self.executor.submit(self.store_url, id, 0, self.runner.lease)
        return id

    def run(self, until_idle: bool = True, *, poll: float = 0.05) -> int:
        """Run ready steps in this process; return how many ran.

        With ``until_idle=True`` return once no step is ready here (none running, or all
        leased by other workers); otherwise run until interrupted. With an executor, steps
        run on its workers: this only resubmits steps whose worker went silent for a lease,
        and with ``until_idle=True`` returns once no workflow is running.
        """
        if self.executor is not None:
            return self._supervise(until_idle, poll)
        steps = 0
        self._stopping = False
        while not self._stopping:
            claim = self.store.claim(self.runner.worker, time.time(), self.runner.lease)
            if claim is not None:
                steps += self.runner.run_claimed(claim, self.batch)
            elif until_idle:
                return steps
            else:
                time.sleep(poll)
        return steps

    def stop(self) -> None:
        """Make a `run` in progress return after its current step (for signal handlers)."""
        self._stopping = True

    def _supervise(self, until_idle: bool, poll: float) -> int:
        assert self.executor is not None
        resubmitted = 0
        self._stopping = False
        while not self._stopping:
            for id, step in self.store.stale(time.time(), self.runner.lease):
                self.executor.submit(self.store_url, id, step, self.runner.lease)
                resubmitted += 1
            if until_idle and self.store.count_running() == 0:
                return resubmitted
            time.sleep(poll)
        return resubmitted

    def _row(self, id: str) -> Row:
        row = self.store.get(id)
        if row is None:
            raise WorkflowNotFoundError(id)
        return row

    def status(self, id: str) -> Status:
        """``"running"``, ``"done"`` or ``"failed"`` (cancelled workflows are failed).

        Raises:
            WorkflowNotFoundError: no workflow `id` in the store.
        """
        return self._row(id).status

    def result(self, id: str) -> Any:
        """The workflow's return value; or its exception, raised.

        Raises:
            WorkflowNotFoundError: no workflow `id` in the store.
            WorkflowNotDoneError: it is still running.
            WorkflowCancelledError: it was cancelled.
            WorkflowFailedError: it failed with an exception whose class is not loaded here.
            Exception: the exception the workflow body raised, rebuilt from its class and
                arguments.
        """
        row = self._row(id)
        if row.status == "running":
            raise WorkflowNotDoneError(id)
        if row.status == "failed":
            raise rebuild_error(row.error)
        coro = _new(_entry(row.entry, row.args))
        coro.Context().Unmarshal(self.store.load_state(id))
        return coro.Result()

    def cancel(self, id: str) -> bool:
        """Stop a running workflow at its current step; True iff it was running.

        Its status becomes ``"failed"`` and `result` raises `WorkflowCancelledError`. A step
        in flight on a worker fails its commit; an activity already running finishes.

        Raises:
            WorkflowNotFoundError: no workflow `id` in the store.
        """
        self._row(id)
        return self.store.cancel(id, cancelled_error(), time.time())

    def list(self) -> builtins.list[Row]:
        """Every workflow in the store, oldest first (`Row`: id, entry, status, step...)."""
        return self.store.list()

    def close(self) -> None:
        """Drop the live coroutines this process holds and close the store's connections."""
        self.runner.drop_cache()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
