"""Every exception `coroutine.workflow` raises, each refining the builtin it is closest to.

A workflow's own exception (what its body raised) is not one of these: `Engine.result`
re-raises it as the body raised it, rebuilt from its class and arguments, and falls back to
`WorkflowFailedError` only when that class cannot be found in the caller's process.
"""

from __future__ import annotations

from coroutine import CoroutineError

__all__ = [
    "ActivityError",
    "NotInActivityError",
    "StoreDamagedError",
    "StoreURLError",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowError",
    "WorkflowFailedError",
    "WorkflowNotDoneError",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
]


class WorkflowError(CoroutineError):
    """Base class of `coroutine.workflow`'s errors."""


class WorkflowNotFoundError(WorkflowError, KeyError):
    """`status`, `result` or `cancel` was given an id the store does not hold."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow {workflow_id!r} in this store; ids come from Engine.start")
        self.workflow_id = workflow_id

    def __str__(self) -> str:
        return str(self.args[0])


class WorkflowNotDoneError(WorkflowError, RuntimeError):
    """`Engine.result` was called on a workflow whose status is still ``"running"``.

    Call `Engine.run()` (or let workers run) until `Engine.status(id)` is not "running".
    `last_error` is why workers could not move it on lately (``""`` if nothing went wrong).
    """

    def __init__(self, workflow_id: str, last_error: str = "") -> None:
        hint = f"; workers report: {last_error}" if last_error else ""
        super().__init__(
            f"workflow {workflow_id!r} is still running; run it (Engine.run() or a worker) "
            f"until status(id) is 'done' or 'failed'{hint}"
        )
        self.workflow_id = workflow_id
        self.last_error = last_error


class WorkflowConflictError(WorkflowError, ValueError):
    """`Engine.start_as` was given an id that names a workflow of another function or
    other arguments.

    Starting the same workflow again (same id, function and arguments) returns its id and
    creates nothing; this error means the id is taken by a different one. `workflow_id`,
    `existing` and `requested` (each ``"module:function(args)"``) say which.
    """

    def __init__(self, workflow_id: str, existing: str, requested: str) -> None:
        super().__init__(
            f"workflow id {workflow_id!r} is taken by {existing}, not {requested}; start "
            "the same call again to get the same workflow, or choose another id"
        )
        self.workflow_id = workflow_id
        self.existing = existing
        self.requested = requested


class ActivityError(WorkflowError):
    """An activity failed with an exception that would not come back the same from the
    workflow's record; this stands in for it, on every worker alike.

    A workflow's history records an exception thrown into its body as its class and
    arguments, and a worker that replays the history rebuilds it from those alone. An
    exception whose class keeps other state (an ``__init__`` with required keyword
    arguments, attributes not in ``args``), whose arguments are not plain data, or whose
    class is defined inside a function would come back different, so the body is given this
    instead, live and on replay: catch ``ActivityError`` (or give the exception its state as
    positional arguments). `type_name` is the original ``module.QualName``, `message` its
    ``str``, `remote_traceback` the traceback text; all three live in ``args``, so this
    error itself rebuilds exactly.
    """

    @property
    def type_name(self) -> str:
        """The original exception's class, as ``module.QualName``."""
        return str(self.args[0])

    @property
    def message(self) -> str:
        """The original exception's ``str``."""
        return str(self.args[1])

    @property
    def remote_traceback(self) -> str:
        """The original exception's traceback, as text, from the worker that ran the activity."""
        return str(self.args[2])

    def __str__(self) -> str:
        return f"{self.args[0]}: {self.args[1]}" if len(self.args) == 3 else super().__str__()


class StoreDamagedError(WorkflowError, RuntimeError):
    """The store is damaged: read as it is, it would be an older or emptier store than the
    one workers committed to.

    Raised when a SQLite file fails its integrity check, when the states of a workflow do
    not match their recorded checksum, when the file holds fewer commits than its workers
    recorded beside it (lost WAL frames, a file restored from an older copy), or when the
    file was deleted or replaced while open. Restore the store from a backup, or move the
    damaged file and its ``-coroutine`` directory away to start an empty store.
    """


class WorkflowFailedError(WorkflowError):
    """A workflow failed with an exception whose class is not importable here.

    Raised by `Engine.result` instead of the workflow's own exception when that exception's
    class is not loaded in the calling process (the store never causes an import).
    `type_name` is its ``module.QualName``, `message` its ``str``, and `remote_traceback`
    the traceback recorded by the worker.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        super().__init__(f"workflow failed with {type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback


class WorkflowCancelledError(WorkflowError):
    """The workflow was cancelled by `Engine.cancel` before it finished.

    `Engine.result` raises it for a cancelled workflow, whose status is ``"failed"``.
    """


class NotInActivityError(WorkflowError, RuntimeError):
    """`idempotency_key()` was called outside an activity run by a workflow engine.

    Only the engine knows the workflow and step an activity runs for; a plain call of an
    activity (outside any workflow) has no key.
    """


class StoreURLError(WorkflowError, ValueError):
    """`Engine` (or a command) was given a store URL it does not understand.

    Use ``sqlite:///relative/path.db`` (relative to the working directory),
    ``sqlite:////absolute/path.db``, ``redis://host:port/db`` or
    ``postgresql://user@host:port/dbname``; each may end with ``?prefix=NAME`` to keep several
    engines apart in one database. An unknown or repeated parameter is refused.
    """


class WorkflowTimeoutError(WorkflowError, TimeoutError):
    """The workflow ran past the ``timeout`` its `workflow` decorator gave it.

    The time limit counts from `Engine.start` and is kept in the store, so it holds across
    worker crashes and restarts: the first step a worker takes after it has passed fails the
    workflow with this error (an activity already running finishes first). `Engine.result`
    raises it.
    """


# Named where users import them from: in tracebacks, in recorded errors ("failed:
# coroutine.workflow.WorkflowCancelledError: ...") and in the documentation.
for _name in __all__:
    globals()[_name].__module__ = "coroutine.workflow"
del _name
