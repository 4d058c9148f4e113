"""The commands that show a store to a person: ``list``, ``info``, ``steps``, ``result``,
``cancel`` (``python -m coroutine.workflow COMMAND STORE_URL [ID]``); and the two that act
on a workflow: ``fork STORE_URL ID STEP`` and ``send STORE_URL ID TOPIC VALUE``.

Each prints plain text, one record per line where it can, and exits 0, except: ``result``
exits 1 when the workflow failed and 3 while it runs; ``cancel`` exits 1 when the workflow
was not running; ``send`` exits 2 when VALUE is not a Python literal. An unknown id is an
error (exit 2, from the caller).
"""

from __future__ import annotations

import ast
import datetime
import sys
from typing import Any

from ._engine import Engine
from ._records import StepInfo, WorkflowInfo

__all__ = ["SHOW_COMMANDS", "fork", "send", "show"]

SHOW_COMMANDS = {
    "list": ("list every workflow: id, status, step, last change, entry, error", False),
    "info": ("show one workflow's record", True),
    "steps": ("show one workflow's activity calls, one per line", True),
    "result": ("print one workflow's result (exit 1: it failed, 3: still running)", True),
    "cancel": ("cancel a running workflow (exit 1: it was not running)", True),
}


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="milliseconds")


def _short(text: str, n: int = 120) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def _call(activity: str, args: Any, kwargs: Any) -> str:
    if isinstance(args, str) or isinstance(kwargs, str):  # reprs: not plain data
        return f"{activity}({args}, {kwargs})"
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{activity}({', '.join(parts)})"


def _list(engine: Engine) -> int:
    rows = engine.list()
    print(f"{'ID':<32}  {'STATUS':<7}  {'STEP':>5}  {'UPDATED':<23}  ENTRY")
    for r in rows:
        note = r.error or r.last_error
        line = f"{r.id:<32}  {r.status:<7}  {r.step:>5}  {_when(r.updated):<23}  {r.entry}"
        print(line + (f"  ({_short(note, 80)})" if note else ""))
    print(f"{len(rows)} workflows, {sum(r.status == 'running' for r in rows)} running")
    return 0


def _info(info: WorkflowInfo) -> int:
    print(f"id:         {info.id}")
    print(f"call:       {_short(_call(info.entry, info.args, info.kwargs), 400)}")
    print(f"status:     {info.status}")
    print(f"step:       {info.step}")
    print(f"created:    {_when(info.created)}")
    print(f"updated:    {_when(info.updated)}")
    print(f"held by:    {info.owner or '-'}")
    print(f"error:      {info.error or '-'}")
    print(f"last error: {info.last_error or '-'}")
    return 0


def _steps(steps: list[StepInfo]) -> int:
    for s in steps:
        outcome = f"raised {s.error}" if s.error else f"-> {s.result!r}"
        ms = (s.finished - s.started) * 1000
        call = _short(_call(s.activity, s.args, s.kwargs), 160)
        print(f"{s.step:>5}  {_when(s.started)}  {call} {_short(outcome)}  ({ms:.1f} ms)")
    return 0


def show(command: str, store_url: str, id: str | None) -> int:
    """Run one of `SHOW_COMMANDS` on the store at `store_url`; the exit status."""
    with Engine(store_url) as engine:
        if command == "list":
            return _list(engine)
        assert id is not None
        if command == "info":
            return _info(engine.info(id))
        if command == "steps":
            return _steps(engine.steps(id))
        if command == "cancel":
            if engine.cancel(id):
                print(f"cancelled {id}")
                return 0
            print(f"{id} is not running ({engine.status(id)})", file=sys.stderr)
            return 1
        info = engine.info(id)
        if info.status == "running":
            print(f"{id} is still running at step {info.step}", file=sys.stderr)
            if info.last_error:
                print(f"last error: {info.last_error}", file=sys.stderr)
            return 3
        if info.status == "failed":
            print(f"{id} failed: {info.error}", file=sys.stderr)
            return 1
        print(repr(engine.result(id)))
        return 0


def fork(store_url: str, id: str, step: int) -> int:
    """``fork``: start a fork of workflow `id` at `step` (`Engine.fork`); print its id."""
    with Engine(store_url) as engine:
        try:
            print(engine.fork(id, step))
        except ValueError as exc:
            print(f"fork: {exc}", file=sys.stderr)
            return 2
    return 0


def send(store_url: str, id: str, topic: str, value: str) -> int:
    """``send``: send `value`, a Python literal, to workflow `id` on `topic`."""
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        print(
            f"send: {value!r} is not a Python literal; quote a string as a literal, "
            """for example '"yes"', or give 42, [1, 2], {"ok": True}""",
            file=sys.stderr,
        )
        return 2
    with Engine(store_url) as engine:
        engine.send(id, topic, parsed)
    print(f"sent {parsed!r} to {id} on {topic!r}")
    return 0
