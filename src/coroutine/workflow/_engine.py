"""The public face of workflows: `Engine` (start, run, status, result, cancel, list) and
`workflow(version=...)`.

An `Engine` owns one store connection and one `Runner` (this process's worker: see
`_runner` for how a step runs). Without an executor, `Engine.run` claims ready steps and runs
them here; with one (`CeleryExecutor`), steps run on its workers and `Engine.run` only
supervises, resubmitting the steps of workflows whose worker went silent for a lease.
"""

from __future__ import annotations

import builtins
import functools
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ._errors import WorkflowNotDoneError, WorkflowNotFoundError
from ._records import Row, Status, cancelled_error, encode_value, rebuild_error
from ._runner import VERSION_ATTR, Runner, entry_of, new_workflow, save_state
from ._url import open_store

__all__ = ["Engine", "Executor", "workflow"]


class Executor(Protocol):
    """Where steps run when not in `Engine.run`'s own loop (the Celery executor)."""

    def submit(self, store_url: str, id: str, step: int, lease: float) -> None:
        """Have a worker run step `step` of workflow `id` of the store at `store_url`,
        holding its claim for `lease` seconds."""


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
        setattr(fn, VERSION_ATTR, version)
        return fn

    return mark


class Engine:
    """Start workflows, run their steps, and read their outcome, over one store.

    `store_url` is ``sqlite:///relative.db`` or ``sqlite:////absolute.db``,
    ``redis://host:port/db`` or ``postgresql://user@host/db`` (each may end with
    ``?prefix=NAME``). With an `executor`
    (a `CeleryExecutor`), steps run on its workers and `run` only supervises. `lease` is
    how long a claimed step stays with its worker before another may take it (seconds);
    `cache_size` bounds the live coroutines kept per process; ``sticky=False`` rebuilds
    every step from the store (for comparison); `batch` is how many steps in a row a worker
    runs of one workflow before looking at others.

    Raises:
        StoreURLError: the URL is not one of the above, or has an unknown parameter.
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
            TypeError: `fn` is not a module-level function (or is in ``__main__`` while
                steps run on an executor's workers), or an argument is not plain data
                (None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset).
            NotDurableError: the entry cannot be recorded.
        """
        qualname = getattr(fn, "__qualname__", "<?>")
        if "<" in qualname or not hasattr(fn, "__module__"):
            raise TypeError(
                f"a workflow must be a module-level function (got {fn!r}); define it with def "
                "at the top level of a module that every worker imports"
            )
        if fn.__module__ == "__main__" and self.executor is not None:
            raise TypeError(
                f"{qualname} is defined in __main__, which the executor's workers cannot "
                "import; move it to a module, or import this script by its module name"
            )
        args_text = encode_value((args, kwargs))
        coro = new_workflow(functools.partial(fn, *args, **kwargs))
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
        leased by other workers); otherwise run until `stop()` is called. With an executor, steps
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

    def list(self) -> builtins.list[Row]:
        """Every workflow in the store, oldest first (`Row`: id, entry, status, step...)."""
        return self.store.list()

    def close(self) -> None:
        """Drop the live coroutines this process holds and close the store's connections."""
        self.runner.close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
