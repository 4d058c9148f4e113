"""The record of a workflow's activity calls that `Engine.steps` reads: kept for people, cheap
to write.

Each call is noted as it runs (its step number, the call, when it started), then its result,
or its error and when it ended. A commit stores the calls it answers as one line each, beside
the state in the same transaction, so the record and the history never disagree. A line is
eight tab-separated fields: step, activity, ``repr(args)``, ``repr(kwargs)``, started, error,
``repr(result)``, finished (times in integer microseconds; a call that returned is finished
when its step commits; each ``repr`` cut to `CAP` characters, and the error's tabs and line
breaks made spaces). An f-string of a few ``repr`` calls: the cheapest text to write each
step. Reading parses each ``repr`` with `ast.literal_eval`, which builds literals only and
runs no code, and gives back the value where the ``repr`` was a literal, else the ``repr``
itself. The record is not a second history (the durable state is the one that replays).
"""

from __future__ import annotations

import ast
from typing import Any

from ._records import StepInfo

__all__ = ["CAP", "answered", "decode", "describe", "encode", "failed", "started"]

CAP = 2000  # characters of a repr kept


def started(n: int, call: Any, when: float) -> list[Any]:
    """The note of activity call number `n` (an `ActivityCall`, or what the body yielded)."""
    return [n, call, when]


def answered(note: list[Any], value: Any) -> None:
    note.append(value)


def failed(note: list[Any], error: str, when: float) -> None:
    note += [error, when]


def _line(note: list[Any], now: float) -> str:
    n, call, t0 = note[0], note[1], int(note[2] * 1e6)
    if len(note) == 4:
        error, value, t1 = "", note[3], int(now * 1e6)
    else:
        error, value, t1 = _flat(note[3]), None, int(note[4] * 1e6)
    name = getattr(call, "name", None)
    if name is None:  # the body yielded something else: it is thrown back
        return f"{n}\t{_flat(repr(call))[:200]}\t()\t{{}}\t{t0}\t{error}\tNone\t{t1}"
    args, kwargs, result = repr(call.args), repr(call.kwargs), repr(value)
    if len(args) > CAP or len(kwargs) > CAP or len(result) > CAP:
        args, kwargs, result = args[:CAP], kwargs[:CAP], result[:CAP]
    return f"{n}\t{name}\t{args}\t{kwargs}\t{t0}\t{error}\t{result}\t{t1}"


def _flat(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")[:CAP]


def encode(notes: list[list[Any]], now: float) -> str:
    """What a commit at time `now` stores for the calls it answers ("" for none)."""
    if len(notes) == 1:
        return _line(notes[0], now)
    return "\n".join([_line(note, now) for note in notes])


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _fields(line: str) -> tuple[Any, ...]:
    """The `StepInfo` fields: (n, activity, args, kwargs, result, error, started,
    finished), times in seconds."""
    n, name, args, kwargs, t0, error, result, t1 = line.split("\t")
    a, kw = _value(args), _value(kwargs)
    value = None if error else _value(result)
    return int(n), name, a, kw, value, error, int(t0) / 1e6, int(t1) / 1e6


def decode(text: str) -> list[StepInfo]:
    """The `StepInfo` of each call in what `encode` stored."""
    return [StepInfo(*_fields(line)) for line in text.splitlines()]


def describe(line: str) -> str:
    """One stored line for a person (a worker's ``--verbose``)."""
    n, name, args, kwargs, value, error, t0, t1 = _fields(line)
    if isinstance(args, str):
        call = args[:200]
    else:
        call = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    outcome = f"raised {error}" if error else f"-> {value!r:.200}"
    return f"step {n}: {name}({call[:200]}) {outcome} ({(t1 - t0) * 1000:.1f} ms)"
