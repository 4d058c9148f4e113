"""The Celery executor: each workflow step is a Celery task, on Celery workers, over a broker.

Theory of operation. `CeleryExecutor.submit` sends one task message, ``(store URL, workflow
id, step, lease)``, to the executor's queue. A worker that receives it claims that workflow
*at that step* in the shared store (`Store.claim` with an id: the row must still be at that
step, running, with no live lease held by another worker); a duplicate or late message finds
the step moved on or leased and is dropped. The claimed step runs as in `Engine.run`
(`Runner.step`: activities, then one compare-and-set commit); then, holding the claim, the
task runs the next steps itself (eager execution, `_eager`: up to the engine's ``batch`` steps
or one time slice) and sends one message for the step after them.

Messages are acknowledged late (after the task returns) and rejected when the worker is lost,
so a message whose worker dies is delivered again by the broker; and `Engine.run` in
supervising mode resubmits any running workflow left untouched for a lease (a worker that
died after its commit but before sending the next message), so no workflow is stranded
whatever the broker does. Duplicates cost a rejected claim, nothing more. A message refused
for want of a queue slot (`_queues`) comes back after `SLOT_RETRY` seconds, but only one copy
of a workflow's message does: `Store.slot_retry` lets one through per countdown and drops the
rest, so copies do not multiply while a queue stays full.

Sticky workers: each worker also consumes its own queue, ``<queue>.sticky.<node name>``
(added when it starts, by the ``celeryd_after_setup`` signal, as the Celery documentation
shows for dedicated per-worker queues), and sends a workflow's next step there, so the step
finds the live coroutine in that process's cache. If the worker dies, the sticky message
waits unconsumed and the supervisor's resubmission to the shared queue takes over after a
lease, as Temporal's sticky task queues fall back to the normal queue.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import Celery  # type: ignore[import-untyped]
from celery.signals import celeryd_after_setup  # type: ignore[import-untyped]

from ._eager import EAGER_SECONDS, run_eagerly
from ._engine import Engine

__all__ = ["CeleryExecutor", "celery_app", "configure_worker", "sticky_queue"]

TASK = "coroutine.workflow.step"
SLOT_RETRY = 0.2  # seconds before a step refused for want of a queue slot is tried again

# How this process's engines are built (set by the celery-worker command before it starts).
_CONFIG: dict[str, Any] = {"cache_size": 1024, "sticky": True, "batch": 100}
_EAGER = {"seconds": EAGER_SECONDS}
# One engine (store, worker identity, heartbeat) per store URL and lease, per worker process,
# shared by its threads; each thread has its own runner (a coroutine belongs to its thread).
_ENGINES: dict[tuple[str, float], Engine] = {}
_LOCK = threading.Lock()


def configure_worker(
    *,
    cache_size: int = 1024,
    sticky: bool = True,
    batch: int = 100,
    eager_seconds: float = EAGER_SECONDS,
) -> None:
    """Set the cache size and stickiness of the runners this worker process will build, and
    how far one task runs a workflow eagerly: up to `batch` steps in a row, and no step begun
    after `eager_seconds` (``batch=1``: one broker message per step).

    Raises:
        ValueError: `batch` < 1 or a negative `eager_seconds`.
    """
    if batch < 1 or not eager_seconds >= 0:
        raise ValueError(
            f"configure_worker needs batch >= 1 and eager_seconds >= 0 (got batch={batch!r}, "
            f"eager_seconds={eager_seconds!r})"
        )
    _CONFIG.update(cache_size=cache_size, sticky=sticky, batch=batch)
    _EAGER["seconds"] = eager_seconds


def sticky_queue(queue: str, nodename: str) -> str:
    """The queue only worker `nodename` consumes, for the steps whose coroutine it holds."""
    return f"{queue}.sticky.{nodename}"


def _engine(store_url: str, lease: float) -> Engine:
    with _LOCK:
        engine = _ENGINES.get((store_url, lease))
        if engine is None:
            engine = _ENGINES[store_url, lease] = Engine(store_url, lease=lease, **_CONFIG)
            engine.keeper.start()  # a worker: its claims are freed when it dies
    return engine


def _step(task: Any, store_url: str, id: str, step: int, lease: float) -> bool:
    """The task body: run step `step` of workflow `id` if it is still due; True iff it ran."""
    engine = _engine(store_url, lease)
    engine.reap_if_due()
    claim = engine.store.claim(engine.owner, time.time(), lease, id=id, step=step)
    if claim is None:  # a duplicate or late message: another worker has it, or it moved on
        # Or its queue is full (`_queues`): ask again shortly, unless another copy of this
        # message does already (a countdown message waits outside the pool). Not ready for
        # half the countdown only, so that a worker whose clock is a little behind still
        # finds it ready when the message comes back.
        now = time.time()
        if engine.store.slot_retry(id, step, now, now + SLOT_RETRY / 2):
            task.app.send_task(TASK, args=[store_url, id, step, lease], countdown=SLOT_RETRY,
                               queue=task.app.conf.task_default_queue)  # fmt: skip
        return False
    runner = engine.runner
    spawned: list[str] = []  # child workflows the steps started (`_waits`)
    new = run_eagerly(runner, claim, engine.batch, _EAGER["seconds"], spawned)
    for child in spawned:
        task.app.send_task(
            TASK, args=[store_url, child, 0, lease], queue=task.app.conf.task_default_queue
        )
    if new is not None:
        queue = task.app.conf.task_default_queue
        if runner.sticky and task.request.hostname:
            queue = sticky_queue(queue, task.request.hostname)
        task.app.send_task(TASK, args=[store_url, id, new.step, lease], queue=queue)
    return True


def celery_app(broker_url: str, *, queue: str = "coroutine-workflow", lease: float = 30.0) -> Any:
    """A Celery app that runs workflow steps from `queue` on `broker_url`.

    Use it in a module of yours to run workers with the ``celery`` command
    (``app = celery_app("redis://...")``, then ``celery -A yourmodule worker``), or let
    ``python -m coroutine.workflow celery-worker BROKER_URL`` build and start one.
    Messages are acknowledged late and redelivered after ``2 * lease`` seconds unacked
    (Redis and SQS visibility timeout), since a step may be run twice safely.
    """
    app = Celery("coroutine.workflow", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": max(2 * lease, 1.0)},
        worker_hijack_root_logger=False,
    )
    app.task(name=TASK, bind=True)(_step)

    def add_sticky_queue(sender: str, instance: Any, **kwargs: Any) -> None:
        if instance.app is app:
            instance.app.amqp.queues.select_add(sticky_queue(queue, sender))

    celeryd_after_setup.connect(add_sticky_queue, weak=False)
    return app


class CeleryExecutor:
    """Run workflow steps as Celery tasks on Celery workers.

    Give a broker URL (``redis://127.0.0.1:6379/0``, ``amqp://guest:guest@host:5672//``)
    or an app made by `celery_app`. Workers are started with
    ``python -m coroutine.workflow celery-worker BROKER_URL --queue QUEUE`` (or ``celery -A``
    on a module holding `celery_app(...)`). The store must be one every worker reaches: a
    SQLite file on the same machine, or Redis or PostgreSQL.

    Raises:
        ImportError: celery is not installed
            (``pip install 'stackful-coroutines[workflow]'``).
    """

    def __init__(
        self, broker_url: str | None = None, *, queue: str = "coroutine-workflow", app: Any = None
    ) -> None:
        if app is None:
            if broker_url is None:
                raise TypeError("CeleryExecutor needs a broker_url or an app from celery_app()")
            app = celery_app(broker_url, queue=queue)
        self.app = app
        self.queue = app.conf.task_default_queue

    def submit(self, store_url: str, id: str, step: int, lease: float) -> None:
        """Send step `step` of workflow `id` to the queue, for any worker to run."""
        self.app.send_task(TASK, args=[store_url, id, step, lease], queue=self.queue)

    def close(self) -> None:
        """Release the broker connections this executor holds."""
        self.app.close()
