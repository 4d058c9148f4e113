"""Run workflow workers, and look at workflows: ``python -m coroutine.workflow COMMAND``.

``worker STORE_URL`` runs steps of every workflow in the store, in this process, until
SIGINT or SIGTERM (it then finishes the step in hand and exits 0). Start as many as you like,
on one machine (SQLite) or many (Redis, PostgreSQL).

``celery-worker BROKER_URL`` runs a Celery worker that executes the steps a `CeleryExecutor`
sends over that broker (the store's URL travels in each message). ``supervise STORE_URL
BROKER_URL`` resubmits the steps of workflows nobody holds (their worker died during an eager
run of steps, or after its commit, before sending the next step): run one beside the Celery
workers. A Celery task runs up to ``--batch`` steps of its workflow in a row (eager
execution) before handing the next step on through the broker.

``list STORE_URL``, ``info STORE_URL ID``, ``steps STORE_URL ID``, ``result STORE_URL ID``
and ``cancel STORE_URL ID`` print what the store holds, for a person. ``fork STORE_URL ID
STEP`` starts a copy of a workflow that replays its first STEP steps and runs on from there
(it prints the new id); ``send STORE_URL ID TOPIC VALUE`` sends a value (a Python literal) to
a workflow's ``receive(TOPIC)``.

``schedule list STORE_URL``, ``schedule add STORE_URL MODULE:FUNCTION CRON [--args JSON]
[--kwargs JSON]`` and ``schedule remove STORE_URL ID`` edit the store's schedules (workers
start their runs).

Workflow modules are imported by name from the stored entry, so they must be importable by
the worker (run it where your code is, or set PYTHONPATH); ``--import MODULE`` imports more
(for example the modules that define activities) before starting. ``--verbose`` logs one
line per step.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from . import _schedule_cli
from ._engine import Engine
from ._errors import WorkflowError
from ._show import SHOW_COMMANDS, fork, send, show


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m coroutine.workflow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run workflow steps from a store until stopped")
    w.add_argument(
        "store_url",
        help="sqlite:///rel.db, sqlite:////abs.db, redis://host:port/db, postgresql://...",
    )
    w.add_argument("--until-idle", action="store_true", help="exit once no step is ready")
    w.add_argument("--batch", type=int, default=100, help="steps in a row per workflow")
    c = sub.add_parser("celery-worker", help="run a Celery worker for a CeleryExecutor")
    c.add_argument("broker_url", help="redis://127.0.0.1:6379/0, amqp://guest@host//, ...")
    c.add_argument("--queue", default="coroutine-workflow", help="the executor's queue")
    c.add_argument("--name", default="workflow", help="the worker's node name (before @)")
    c.add_argument("--concurrency", type=int, default=1, help="tasks run at once")
    c.add_argument(
        "--batch", type=int, default=100, help="steps one task runs in a row (1: not eager)"
    )
    c.add_argument(
        "--eager-seconds",
        type=float,
        default=1.0,
        help="no step of an eager run begins after this long",
    )
    c.add_argument(
        "--pool",
        choices=["threads", "prefork", "solo"],
        default="threads",
        help="Celery pool (threads by default: the solo pool stalls on RabbitMQ)",
    )
    s = sub.add_parser("supervise", help="resubmit lost steps to Celery workers")
    s.add_argument("store_url")
    s.add_argument("broker_url")
    s.add_argument("--queue", default="coroutine-workflow", help="the executor's queue")
    s.add_argument("--lease", type=float, default=30.0, help="claim lease in seconds")
    for q in (w, c):
        q.add_argument("--lease", type=float, default=30.0, help="claim lease in seconds")
        q.add_argument("--cache", type=int, default=1024, help="live workflows kept (LRU)")
        q.add_argument("--no-sticky", action="store_true", help="replay every step")
    for q in (w, c, s):
        q.add_argument("--verbose", "-v", action="store_true", help="log one line per step")
    for name, (help, needs_id) in SHOW_COMMANDS.items():
        q = sub.add_parser(name, help=help)
        q.add_argument("store_url")
        if needs_id:
            q.add_argument("id", help="the workflow's id")
    _schedule_cli.add_parser(sub)  # schedule list|add|remove
    # --- waits: fork and send (`_show`) ---
    f = sub.add_parser("fork", help="start a copy of a workflow from one of its steps")
    f.add_argument("store_url")
    f.add_argument("id", help="the workflow to fork")
    f.add_argument("step", type=int, help="how many of its steps the copy replays")
    m = sub.add_parser("send", help="send a value to a workflow's receive(TOPIC)")
    m.add_argument("store_url")
    m.add_argument("id", help="the workflow to send to")
    m.add_argument("topic")
    m.add_argument("value", help='a Python literal: 42, \'"yes"\', {"ok": True}')
    # ---
    for q in sub.choices.values():
        q.add_argument("--import", dest="imports", action="append", default=[], metavar="MOD")
    return p


def _worker(args: argparse.Namespace) -> int:
    engine = Engine(
        args.store_url,
        lease=args.lease,
        cache_size=args.cache,
        sticky=not args.no_sticky,
        batch=args.batch,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        engine.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with engine:
        engine.run(until_idle=args.until_idle)
    return 0


def _supervise(args: argparse.Namespace) -> int:
    from ._celery import CeleryExecutor

    executor = CeleryExecutor(args.broker_url, queue=args.queue)
    engine = Engine(args.store_url, executor, lease=args.lease)

    def stop(signum: int, frame: FrameType | None) -> None:
        engine.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with engine:
        engine.run(until_idle=False, poll=min(1.0, args.lease / 4))
    executor.close()
    return 0


def _celery_worker(args: argparse.Namespace) -> int:
    from ._celery import celery_app, configure_worker

    app = celery_app(args.broker_url, queue=args.queue, lease=args.lease)
    argv = [
        "worker",
        f"--hostname={args.name}@%h",
        f"--queues={args.queue}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    argv += [f"--pool={args.pool}", f"--concurrency={args.concurrency}"]
    configure_worker(
        cache_size=args.cache,
        sticky=not args.no_sticky,
        batch=args.batch,
        eager_seconds=args.eager_seconds,
    )
    app.worker_main(argv)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: the command line) and run the chosen command; its exit status."""
    args = _parser().parse_args(argv)
    sys.path.insert(0, "")  # like `python -m`: the current directory's modules are found
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for mod in args.imports:
        importlib.import_module(mod)
    try:
        if args.command == "worker":
            return _worker(args)
        if args.command == "supervise":
            return _supervise(args)
        if args.command == "celery-worker":
            return _celery_worker(args)
        if args.command == "schedule":
            return _schedule_cli.run(args)
        if args.command == "fork":
            return fork(args.store_url, args.id, args.step)
        if args.command == "send":
            return send(args.store_url, args.id, args.topic, args.value)
        return show(args.command, args.store_url, getattr(args, "id", None))
    except WorkflowError as exc:  # what a person can act on: no traceback
        print(f"{args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
