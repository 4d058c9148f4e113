"""The ``schedule`` command: ``python -m coroutine.workflow schedule list|add|remove``.

``schedule list STORE_URL`` prints one schedule per line (id, cron, next run in UTC, call);
``schedule add STORE_URL MODULE:FUNCTION CRON [--args JSON] [--kwargs JSON]`` schedules a
workflow function (imported here, so run it where your code is) and prints the schedule's
id; ``schedule remove STORE_URL ID`` removes one (exit 1: there was none). Workers start the
runs (see `_schedule`); this only edits the store.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
from typing import Any

from ._engine import Engine
from ._errors import WorkflowError

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``schedule`` command and its three subcommands to `sub`."""
    s: argparse.ArgumentParser = sub.add_parser("schedule", help="list, add or remove schedules")
    act = s.add_subparsers(dest="action", required=True)
    ls = act.add_parser("list", help="every schedule: id, cron, next run (UTC), call")
    ls.add_argument("store_url")
    add = act.add_parser("add", help="schedule MODULE:FUNCTION; prints the schedule's id")
    add.add_argument("store_url")
    add.add_argument("function", help="the workflow function, as module:name")
    add.add_argument("cron", help="'0 2 * * *' (minute hour day month weekday), or 6 fields")
    add.add_argument("--args", default="[]", help="its positional arguments, a JSON list")
    add.add_argument("--kwargs", default="{}", help="its keyword arguments, a JSON object")
    rm = act.add_parser("remove", help="remove a schedule (exit 1: no such schedule)")
    rm.add_argument("store_url")
    rm.add_argument("id")
    return s


def _utc(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _function(name: str) -> Any:
    module, _, qualname = name.partition(":")
    if not module or not qualname:
        raise WorkflowError(f"give the function as module:name (got {name!r})")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def run(args: argparse.Namespace) -> int:
    """Carry out ``schedule ACTION``; the exit status."""
    with Engine(args.store_url) as engine:
        if args.action == "list":
            rows = engine.schedules()
            print(f"{'ID':<40}  {'CRON':<16}  {'NEXT (UTC)':<20}  CALL")
            for s in rows:
                call = ", ".join([*map(repr, s.args), *(f"{k}={v!r}" for k, v in s.kwargs.items())])
                print(f"{s.id:<40}  {s.cron:<16}  {_utc(s.next):<20}  {s.entry}({call})")
            return 0
        if args.action == "add":
            try:
                a, kw = json.loads(args.args), json.loads(args.kwargs)
            except json.JSONDecodeError as exc:
                raise WorkflowError(f"--args and --kwargs take JSON ({exc})") from None
            if not isinstance(a, list) or not isinstance(kw, dict):
                raise WorkflowError("--args takes a JSON list and --kwargs a JSON object")
            try:
                print(engine.schedule(_function(args.function), *a, cron=args.cron, **kw))
            except (ValueError, TypeError, ImportError, AttributeError) as exc:
                print(f"schedule add: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 2
            return 0
        if engine.unschedule(args.id):
            return 0
        print(f"schedule remove: no schedule {args.id!r} in this store", file=sys.stderr)
        return 1
