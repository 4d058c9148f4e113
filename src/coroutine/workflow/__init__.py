"""Durable workflows on a store and workers: ``coroutine.workflow``.

A workflow is a plain synchronous function; the functions it calls that are marked
`@activity` are its steps. An `Engine` records each step's result in a store (SQLite,
Redis or PostgreSQL), so any worker process, on any machine, can take the next step, and a
crashed worker's step is taken by another. See docs/how-to/workflows.md for the guarantees.

>>> from coroutine.workflow import Engine, activity
"""

from typing import TYPE_CHECKING

from ._activity import Activity, ActivityCall, RetryPolicy, activity, idempotency_key
from ._engine import Engine, Executor, workflow
from ._errors import (
    ActivityError,
    NotInActivityError,
    StoreDamagedError,
    StoreURLError,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowError,
    WorkflowFailedError,
    WorkflowNotDoneError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from ._records import StepInfo, WorkflowInfo
from ._schedule import ScheduleInfo
from ._waits import join, receive, set_event, sleep, start_child

if TYPE_CHECKING:  # at run time, imported on first use: it imports celery
    from ._celery import CeleryExecutor

__all__ = [
    "Activity",
    "ActivityCall",
    "ActivityError",
    "CeleryExecutor",
    "Engine",
    "Executor",
    "NotInActivityError",
    "RetryPolicy",
    "ScheduleInfo",
    "StepInfo",
    "StoreDamagedError",
    "StoreURLError",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowError",
    "WorkflowFailedError",
    "WorkflowInfo",
    "WorkflowNotDoneError",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
    "activity",
    "idempotency_key",
    "join",
    "receive",
    "set_event",
    "sleep",
    "start_child",
    "workflow",
]


def __getattr__(name: str) -> object:
    # CeleryExecutor imports celery: only when asked for.
    if name == "CeleryExecutor":
        from ._celery import CeleryExecutor

        return CeleryExecutor
    raise AttributeError(f"module 'coroutine.workflow' has no attribute {name!r}")
