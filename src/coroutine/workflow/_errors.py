"""Every exception `coroutine.workflow` raises, each refining the builtin it is closest to.

A workflow's own exception (what its body raised) is not one of these: `Engine.result`
re-raises it as the body raised it, rebuilt from its class and arguments, and falls back to
`WorkflowFailedError` only when that class cannot be found in the caller's process.
"""

from __future__ import annotations

from coroutine import CoroutineError

__all__ = [
    "NotInActivityError",
    "StoreURLError",
    "WorkflowCancelledError",
    "WorkflowError",
    "WorkflowFailedError",
    "WorkflowNotDoneError",
    "WorkflowNotFoundError",
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
    """

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            f"workflow {workflow_id!r} is still running; run it (Engine.run() or a worker) "
            "until status(id) is 'done' or 'failed'"
        )
        self.workflow_id = workflow_id


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
