"""The public face of workflows: `Engine` (start, run, status, result, info, steps, cancel,
list; queues and schedules) and `workflow(version=..., queue=..., timeout=...)`.

An `Engine` owns one store (shared by the process's threads), one worker identity with its
heartbeat (`_keeper`), and one `Runner` per thread that runs steps (see `_runner`). Without
an executor, `Engine.run` claims ready steps and runs them here; with one
(`CeleryExecutor`), steps run on its workers and `Engine.run` only supervises: it frees the
claims of workers that died and resubmits the steps of workflows nobody has taken for a
lease.
"""

from __future__ import annotations

import builtins
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from . import _queues, _schedule, _steps
from ._errors import WorkflowConflictError, WorkflowNotDoneError, WorkflowNotFoundError
from ._fork import fork as fork_at
from ._keeper import Keeper
from ._records import (
    Row,
    Status,
    StepInfo,
    WorkflowInfo,
    cancelled_error,
    decode_value,
    encode_value,
    rebuild_error,
)
from ._runner import Runner
from ._start import bind, call_text, entry_name
from ._url import open_store
from ._workflows import (
    QUEUE_ATTR,
    TIMEOUT_ATTR,
    VERSION_ATTR,
    entry_of,
    limits,
    new_workflow,
    save_state,
)

__all__ = ["Engine", "Executor", "workflow"]


class Executor(Protocol):
    """Where steps run when not in `Engine.run`'s own loop (the Celery executor)."""

    def submit(self, store_url: str, id: str, step: int, lease: float) -> None:
        """Have a worker run step `step` of workflow `id` of the store at `store_url`,
        holding its claim for `lease` seconds."""


F = TypeVar("F", bound=Callable[..., Any])


def workflow(
    *, version: str | None = None, queue: str | None = None, timeout: float | None = None
) -> Callable[[F], F]:
    """Mark a workflow function: its version, its queue, its time limit.

    `version`: without it a workflow's state resumes only under the very code that recorded
    it (the entry function's fingerprint), so deploying any change to the function fails
    the workflows in flight. With ``@workflow(version="orders-1")`` they resume under the new
    code as long as the version string is unchanged; guard each change that would replay
    an old history differently with ``if coroutine.Patched("change-id"): ... else: ...``
    (docs/how-to/workflows.md).

    `queue`: its workflows run under that queue's concurrency limit, set in the store by
    `Engine.set_queue` (a queue never set has none): at most that many of them run steps at
    once, across all workers; the others wait, holding no worker.

    `timeout`: seconds from `Engine.start` after which the workflow fails with
    `WorkflowTimeoutError` at its next step (kept in the store: a crash does not reset it).

    Returns the function itself, marked::

        @workflow(version="reports-2", queue="reports", timeout=3600)
        def monthly_report(month: str) -> str: ...

    Raises:
        TypeError: `version` or `queue` is not a non-empty str, or `timeout` not a positive
            number.
    """
    if version is not None and (not isinstance(version, str) or not version):
        raise TypeError(f"workflow(version=...) takes a non-empty str (got {version!r})")
    if queue is not None:
        _queues.check_queue(queue, "workflow(queue=...)")
    if timeout is not None and (
        not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0
    ):
        raise TypeError(f"workflow(timeout=...) takes a number of seconds > 0 (got {timeout!r})")

    def mark(fn: F) -> F:
        for attr, value in ((VERSION_ATTR, version), (QUEUE_ATTR, queue), (TIMEOUT_ATTR, timeout)):
            if value is not None:
                setattr(fn, attr, value)
        return fn

    return mark


REAP_EVERY = 0.25  # seconds between looks for dead workers' claims, while working

_log = logging.getLogger("coroutine.workflow")


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Engine:
    """Start workflows, run their steps, and read their outcome, over one store.

    `store_url` is ``sqlite:///relative.db`` or ``sqlite:////absolute.db``,
    ``redis://host:port/db`` or ``postgresql://user@host/db`` (each may end with
    ``?prefix=NAME``). With an `executor` (a `CeleryExecutor`), steps run on its workers and
    `run` only supervises. `lease` is how long a claimed step stays with a worker that has
    stopped answering (seconds; a worker whose process died is replaced within about a
    second whatever the lease); `cache_size` bounds the live coroutines kept per thread;
    ``sticky=False`` rebuilds every step from the store (for comparison); `batch` is how
    many steps in a row a worker runs of one workflow before looking at others. An engine
    may be shared by the threads of a process.

    Raises:
        StoreURLError: the URL is not one of the above, or has an unknown parameter.
        StoreDamagedError: the store is damaged (SQLite: see docs/how-to/workflows.md).
        ValueError: `lease`, `cache_size` or `batch` out of range.
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
        if not lease > 0 or cache_size < 0 or batch < 1:
            raise ValueError(
                f"Engine needs lease > 0, cache_size >= 0 and batch >= 1 (got lease={lease!r}, "
                f"cache_size={cache_size!r}, batch={batch!r})"
            )
        self.store_url = store_url
        self.store = open_store(store_url)
        self.executor = executor
        self.batch = batch
        self.lease = lease
        self.owner = _worker_name()  # this process's name as a worker of this store
        self.keeper = Keeper(self.store, self.owner, lease)
        self._config = {"cache_size": cache_size, "sticky": sticky}
        self._local = threading.local()  # .runner: this thread's
        self._next_reap = 0.0  # monotonic time of the next look for dead workers
        self._stopping = False  # set by stop(): run() returns after its current step
        self._reported: set[tuple[str, str]] = set()  # supervisor: last errors logged
        self._schedules_here = False  # set by run(): only its loops start scheduled runs

    @property
    def runner(self) -> Runner:
        """This thread's runner (its live coroutines belong to this thread)."""
        runner: Runner | None = getattr(self._local, "runner", None)
        if runner is None:
            runner = self._local.runner = Runner(self.store, self.keeper, **self._config)  # type: ignore[arg-type]
        return runner

    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """Record a new workflow running ``fn(*args, **kwargs)`` and return its new id.

        Nothing of `fn` runs here: its first step runs in `run` or on a worker. Everything
        is checked before anything is saved, and nothing stays saved if `start` fails (with
        an executor: when its broker refuses the first step).

        >>> # engine.start(place_order, "A1", 10, "1 High St")   -> 'f3a1...'

        Raises:
            TypeError: `fn` is an activity, not a module-level function (or is in
                ``__main__`` while steps run on an executor's workers); the arguments do not
                fit its signature, or are not plain data (None, bool, int, float, str, bytes,
                list, tuple, dict, set, frozenset).
            NotDurableError: the entry cannot be recorded.
            Exception: the executor's error submitting the first step (nothing is saved).
        """
        return self._start(uuid.uuid4().hex, fn, args, kwargs, conflict=False)

    def start_as(
        self, workflow_id: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> str:
        """Start ``fn(*args, **kwargs)`` as workflow `workflow_id`, at most once: return the id.

        Starting the same call under the same id again creates nothing and returns the id
        (so a caller may retry a start whose outcome it did not see); arguments are
        compared as `fn` binds them.

        Raises:
            WorkflowConflictError: the id names a workflow of another function or other
                arguments.
            TypeError, NotDurableError: as `start`; and for an id that is not a non-empty str.
        """
        if not isinstance(workflow_id, str) or not workflow_id or len(workflow_id) > 200:
            raise TypeError(
                f"a workflow id is a non-empty str of at most 200 characters (got {workflow_id!r})"
            )
        return self._start(workflow_id, fn, args, kwargs, conflict=True)

    def _start(
        self, id: str, fn: Callable[..., Any], args: Any, kwargs: Any, conflict: bool
    ) -> str:
        entry = entry_name(fn, in_main_ok=self.executor is None)
        args, kwargs = bind(fn, entry, args, kwargs)
        args_text = encode_value((args, kwargs))
        coro = new_workflow(functools.partial(fn, *args, **kwargs))
        state = save_state(coro)  # its first save: the full state
        now = time.time()
        queue, deadline = limits(fn, now)
        row = Row(id, entry, args_text, "running", 0, queue=queue, deadline=deadline)
        taken = self.store.create(row, state, now)
        if taken is not None:
            if not conflict:  # a fresh uuid: cannot happen
                raise RuntimeError(f"workflow id {id!r} is taken; this is a bug")
            if (taken.entry, taken.args) != (entry, args_text):
                raise WorkflowConflictError(
                    id, call_text(taken.entry, taken.args), call_text(entry, args_text)
                )
            return id
        if self.executor is not None:
            try:
                self.executor.submit(self.store_url, id, 0, self.lease)
            except BaseException:
                self.store.discard(id)  # no orphan: a retry starts it afresh
                raise
        return id

    def run(self, until_idle: bool = True, *, poll: float = 0.05) -> int:
        """Run ready steps in this process; return how many ran.

        With ``until_idle=True`` return once no step is ready here (none running, or all
        claimed by live workers); otherwise run until `stop()` is called. With an executor,
        steps run on its workers: this frees the claims of workers that died and resubmits
        steps nobody has taken for a lease, and with ``until_idle=True`` returns once no
        workflow is running.

        Raises:
            StoreDamagedError: the store is damaged; stop and restore it.
        """
        self.keeper.start()
        self._schedules_here = True  # a worker or supervisor: it starts scheduled runs
        if self.executor is not None:
            return self._supervise(until_idle, poll)
        steps = 0
        self._stopping = False
        while not self._stopping:
            self.reap_if_due()
            claim = self.store.claim(self.owner, time.time(), self.lease)
            if claim is not None:
                steps += self.runner.run_claimed(claim, self.batch)[0]
            elif until_idle:
                return steps
            else:
                time.sleep(poll)
        return steps

    def reap_if_due(self) -> None:
        """Free the claims of dead workers, if not done in the last ``REAP_EVERY`` seconds."""
        now = time.monotonic()
        if now >= self._next_reap:
            self._next_reap = now + REAP_EVERY
            freed = self.store.reap(time.time())
            if freed:
                _log.info("freed %d claims of workers that are gone", freed)
            self._start_scheduled()

    def _start_scheduled(self) -> None:
        """`run`'s loops (workers, supervisors; not Celery tasks): start due scheduled runs."""
        if not self._schedules_here:
            return
        try:
            _schedule.tick(self.store, self.start_as, self._reported, time.time())
        except ImportError as exc:  # croniter is missing here: say so once
            if ("", str(exc)) not in self._reported:
                self._reported.add(("", str(exc)))
                _log.error("this worker cannot start scheduled runs: %s", exc)

    def stop(self) -> None:
        """Make a `run` in progress return after its current step (for signal handlers)."""
        self._stopping = True

    def _supervise(self, until_idle: bool, poll: float) -> int:
        assert self.executor is not None
        resubmitted = 0
        self._stopping = False
        while not self._stopping:
            self.reap_if_due()
            for id, step, last_error in self.store.stale(time.time(), self.lease):
                if last_error and (id, last_error) not in self._reported:
                    self._reported.add((id, last_error))
                    _log.error("workflow %s cannot proceed: %s", id, last_error)
                self.executor.submit(self.store_url, id, step, self.lease)
                resubmitted += 1
            for id, step in self.store.woken(time.time()):  # waits now due (`_waits`)
                self.executor.submit(self.store_url, id, step, self.lease)
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

    def info(self, id: str) -> WorkflowInfo:
        """What the store holds of workflow `id`: entry, arguments, status, step, error, times,
        and `last_error`, why workers could not move it on lately.

        Raises:
            WorkflowNotFoundError: no workflow `id` in the store.
        """
        return WorkflowInfo.of(self._row(id))

    def steps(self, id: str) -> builtins.list[StepInfo]:
        """Each activity call of workflow `id` so far, in order (`StepInfo`: number, activity,
        arguments, result or error, times).

        Raises:
            WorkflowNotFoundError: no workflow `id` in the store.
        """
        self._row(id)
        return [step for text in self.store.steps(id) for step in _steps.decode(text)]

    def result(self, id: str) -> Any:
        """The workflow's return value; or its exception, raised.

        Raises:
            WorkflowNotFoundError: no workflow `id` in the store.
            WorkflowNotDoneError: it is still running (with the workers' last error, if any).
            WorkflowCancelledError: it was cancelled.
            WorkflowFailedError: it failed with an exception whose class is not loaded here.
            StoreDamagedError: its states do not match their checksum.
            Exception: the exception the workflow body raised, rebuilt from its class and
                arguments.
        """
        row = self._row(id)
        if row.status == "running":
            raise WorkflowNotDoneError(id, row.last_error)
        if row.status == "failed":
            raise rebuild_error(row.error)
        coro = new_workflow(entry_of(row.entry, row.args))
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

    def list(self) -> builtins.list[WorkflowInfo]:
        """Every workflow in the store, oldest first."""
        return [WorkflowInfo.of(r) for r in self.store.list()]

    # --- waits: messages, events, fork (`_waits`, `_fork`) ---------------------------------

    def send(self, workflow_id: str, topic: str, value: Any) -> None:
        """Send `value` to workflow `workflow_id` on `topic`, for its body's ``receive``.

        Values on one topic are received in the order they were sent, each once. A
        workflow waiting on the topic is woken; one not yet there finds the value when it
        asks. Sending to a workflow that has ended stores a value nobody receives.

        >>> # engine.send(order_id, "approval", {"by": "ana", "ok": True})

        Raises:
            WorkflowNotFoundError: no workflow `workflow_id` in the store.
            TypeError: `topic` is not a str, or `value` is not plain data (None, bool, int,
                float, str, bytes, list, tuple, dict, set, frozenset).
        """
        if not isinstance(topic, str):
            raise TypeError(f"send() takes a str topic (got {topic!r})")
        if not self.store.send(workflow_id, topic, encode_value(value), time.time()):
            raise WorkflowNotFoundError(workflow_id)

    def get_event(self, workflow_id: str, key: str, timeout: float = 0.0) -> Any:
        """The value workflow `workflow_id` last set under `key` (its body's ``set_event``),
        waiting up to `timeout` seconds for it to be set.

        Raises:
            TimeoutError: it was not set within `timeout` seconds.
            WorkflowNotFoundError: no workflow `workflow_id` in the store.
        """
        self._row(workflow_id)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            got = self.store.get_event(workflow_id, key)
            if got is not None:
                return decode_value(got)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {workflow_id} set no event {key!r} in {timeout} s")
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)

    def fork(self, workflow_id: str, step: int) -> str:
        """Start a new workflow that replays the first `step` steps of `workflow_id` (their
        recorded answers: activity results, timers, messages, children) and runs live from
        there: after a fix is deployed, from the step before things went wrong. Returns
        the new id; the old workflow is left as it is.

        Raises:
            WorkflowNotFoundError: no workflow `workflow_id` in the store.
            ValueError: `step` is not a step the workflow committed (the error lists them).
        """
        new = fork_at(self.store, self._row(workflow_id), step)
        if self.executor is not None:
            self.executor.submit(self.store_url, new, step, self.lease)
        return new

    def close(self) -> None:
        """Stop the heartbeat, give back this process's claims, close the store."""
        self.keeper.close()
        runner: Runner | None = getattr(self._local, "runner", None)
        if runner is not None:
            runner.drop_cache()
        self.store.close()

    # --- queues and schedules (`_queues`, `_schedule`) ---

    def set_queue(self, name: str, concurrency: int) -> None:
        """Let at most `concurrency` workflows of queue `name` (``@workflow(queue=name)``) run
        steps at once, across every worker of this store. Kept in the store; a new limit
        replaces the old one (workflows running over a lowered limit finish their step).

        Raises:
            TypeError: `name` is not a non-empty str, or `concurrency` not an int >= 1.
        """
        _queues.check_queue(name)
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise TypeError(f"a queue's concurrency is an int >= 1 (got {concurrency!r})")
        self.store.set_queue(name, concurrency)

    def queues(self) -> dict[str, int]:
        """The queues given a limit by `set_queue`, with their limits."""
        return self.store.queues()

    def schedule(self, fn: Callable[..., Any], /, *args: Any, cron: str, **kwargs: Any) -> str:
        """Start ``fn(*args, **kwargs)`` as a workflow at each time `cron` names; return the
        schedule's id.

        Workers (``Engine.run``, the Celery supervisor) start each due run exactly once,
        however many are up, as workflow ``"<schedule id>@<due time, UTC>"``; runs that fell
        due while no worker was up start once, for the latest due time, when one returns.
        `cron` has five fields (minute hour day month weekday: ``"0 6 * * 1"``, 06:00 UTC
        on Mondays) or six with seconds last. The same call scheduled again is the same
        schedule (its cron replaced; its next run kept if the expression is unchanged), so
        every process may schedule at start-up::

            engine.schedule(nightly_report, "eu", cron="0 2 * * *")

        Raises:
            ImportError: croniter is missing (``pip install 'stackful-coroutines[cron]'``).
            ValueError: `cron` is not a cron expression.
            TypeError: as `start`.
        """
        _schedule.check_cron(cron)
        entry = entry_name(fn, in_main_ok=False)
        args, kwargs = bind(fn, entry, args, kwargs)
        args_text = encode_value((args, kwargs))
        id = _schedule.schedule_id(entry, args_text)
        first = _schedule.next_after(cron, time.time())
        self.store.put_schedule((id, entry, args_text, cron, first))
        return id

    def unschedule(self, id: str) -> bool:
        """Remove schedule `id`; True iff there was one. Runs already started go on."""
        return self.store.drop_schedule(id)

    def schedules(self) -> builtins.list[_schedule.ScheduleInfo]:
        """Every schedule in the store, by id."""
        return [_schedule.info(r) for r in self.store.schedules()]

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
