"""The lifecycle of a coroutine, as data: what each operation does in each state.

`TABLE` is the one statement of it. `Coroutine` takes its refusals' words from here,
`tests/test_lifecycle.py` walks every pair against it, and `docs/reference/lifecycle.md` is
`render()`'s output (a test keeps them equal).
"""

from __future__ import annotations

from typing import NamedTuple

from ._errors import ResumeError

__all__ = ["OPERATIONS", "STATES", "TABLE", "Move", "refusal", "render", "wrong_thread"]


class Move(NamedTuple):
    """One cell: what the operation does, what it returns or raises, and the status after."""

    does: str
    gives: str  # a repr, an exception name, or "-" where the row cannot be observed so
    after: str


STATES = ("created", "suspended", "stopping", "running", "normal", "done", "restored")
"""Rows: the statuses, and two kinds of suspended coroutine whose `status` reads "suspended":
"stopping" (marked by Stop) and "restored" (made by Unmarshal, not yet resumed). "running" is
applied from its own body, "normal" from a body it drives."""

OPERATIONS = ("Next", "Send", "Stop", "throw", "close", "send", "next", "Run")

_BUSY = "refused: ResumeError (it is {why}); nothing changes"
_BUSY_RUNNING = Move(_BUSY.format(why="running"), "ResumeError", "running")
_BUSY_NORMAL = Move(_BUSY.format(why="resuming another coroutine"), "ResumeError", "normal")
_MARK_R = Move("marks it stopping; nothing runs", "None", "running")
_MARK_N = Move("marks it stopping; nothing runs", "None", "normal")
_SEND_R = Move("pending for the next resume", "None", "running")
_SEND_N = Move("pending for the next resume", "None", "normal")

# The program walked by the tests: a body that yields 1 then 2 (see tests/test_lifecycle.py).
TABLE: dict[str, dict[str, Move]] = {
    "created": {
        "Next": Move("starts the body, runs to its first yield", "True", "suspended"),
        "Send": Move("lost: no yield is pending", "None", "created"),
        "Stop": Move("marks it: the body will never run", "None", "created"),
        "throw": Move("ends it unrun, raises the exception", "KeyError", "done"),
        "close": Move("ends it unrun", "None", "done"),
        "send": Move("send(None) primes it: runs to the first yield", "1", "suspended"),
        "next": Move("runs to the first yield", "1", "suspended"),
        "Run": Move("runs it to its end, answering each yield", "None", "done"),
    },
    "suspended": {
        "Next": Move("resumes it (with the pending Send) to its next yield", "True", "suspended"),
        "Send": Move("pending for the next resume; the last one wins", "None", "suspended"),
        "Stop": Move("marks it; the next resume unwinds it", "None", "suspended"),
        "throw": Move("raises the exception at the yield", "KeyError", "done"),
        "close": Move("unwinds it: CoroutineExit at the yield", "None", "done"),
        "send": Move("resumes it with the value", "2", "suspended"),
        "next": Move("resumes it to its next yield", "2", "suspended"),
        "Run": Move("runs it to its end from here", "None", "done"),
    },
    "stopping": {
        "Next": Move("unwinds it: CoroutineExit at the yield", "False", "done"),
        "Send": Move("ignored: it will not yield again", "None", "suspended"),
        "Stop": Move("nothing (idempotent)", "None", "suspended"),
        "throw": Move("raises the exception at the yield", "KeyError", "done"),
        "close": Move("unwinds it", "None", "done"),
        "send": Move("unwinds it", "StopIteration", "done"),
        "next": Move("unwinds it", "StopIteration", "done"),
        "Run": Move("unwinds it; raises StoppedError: no result to return", "StoppedError", "done"),
    },
    "running": {
        "Next": _BUSY_RUNNING,
        "Send": _SEND_R,
        "Stop": _MARK_R,
        "throw": _BUSY_RUNNING,
        "close": _BUSY_RUNNING,
        "send": _BUSY_RUNNING,
        "next": _BUSY_RUNNING,
        "Run": _BUSY_RUNNING,
    },
    "normal": {
        "Next": _BUSY_NORMAL,
        "Send": _SEND_N,
        "Stop": _MARK_N,
        "throw": _BUSY_NORMAL,
        "close": _BUSY_NORMAL,
        "send": _BUSY_NORMAL,
        "next": _BUSY_NORMAL,
        "Run": _BUSY_NORMAL,
    },
    "done": {
        "Next": Move("runs nothing", "False", "done"),
        "Send": Move("ignored", "None", "done"),
        "Stop": Move("nothing", "None", "done"),
        "throw": Move("raises the exception", "KeyError", "done"),
        "close": Move("nothing", "None", "done"),
        "send": Move("raises StopIteration(Result())", "StopIteration", "done"),
        "next": Move("raises StopIteration(Result())", "StopIteration", "done"),
        "Run": Move("returns Result() (StoppedError if it was stopped)", "None", "done"),
    },
    "restored": {
        "Next": Move("replays to the recorded yield, then runs live", "True", "suspended"),
        "Send": Move("delivered to the recorded yield", "None", "suspended"),
        "Stop": Move("marks it; the next resume replays, then unwinds", "None", "suspended"),
        "throw": Move("replays and unwinds it, then raises the exception", "KeyError", "done"),
        "close": Move("replays, then unwinds it", "None", "done"),
        "send": Move("replays and resumes with the value", "2", "suspended"),
        "next": Move("replays, then runs to the next yield", "2", "suspended"),
        "Run": Move("replays, then runs it to its end", "None", "done"),
    },
}

# Not operations on a coroutine object, but moves of its body, refused the same way.
BODY_MOVES = {
    "Yield while stopping": "the driving call raises ResumeError; the coroutine is done",
    "Yield from another greenlet or thread": "refused: NotInCoroutineError; nothing changes",
    "driving from another thread": "refused: ResumeError naming both threads; nothing changes",
}


def _verb(op: str) -> str:
    """How a refusal names `op`: every driving operation but these two resumes."""
    return {"close": "close", "throw": "throw into"}.get(op, "resume")


def refusal(status: str, op: str, coro: str) -> ResumeError:
    """The error for `op` on a coroutine whose status is "running" or "normal"."""
    why = "it is running" if status == "running" else "it is resuming another coroutine"
    return ResumeError(
        f"cannot {_verb(op)} {coro}: {why}; a coroutine can only be resumed while suspended"
    )


def wrong_thread(op: str, coro: str, here: str, owner: str) -> ResumeError:
    return ResumeError(
        f"cannot {_verb(op)} {coro} from thread {here!r}: it belongs to thread {owner!r}, "
        "which created it; drive each coroutine from its own thread"
    )


def render() -> str:
    """The table as Markdown, for docs/reference/lifecycle.md."""
    lines = [
        "# Lifecycle",
        "",
        "What each operation does in each state (generated from `coroutine._lifecycle.TABLE`;",
        "`tests/test_lifecycle.py` walks every cell). The body yields 1, then 2.",
        "",
    ]
    for state in STATES:
        lines += [f"## {state}", "", "| operation | does | gives | status after |"]
        lines.append("|---|---|---|---|")
        for op in OPERATIONS:
            m = TABLE[state][op]
            lines.append(f"| `{op}` | {m.does} | `{m.gives}` | {m.after} |")
        lines.append("")
    lines += ["## moves of the body", "", "| move | outcome |", "|---|---|"]
    lines += [f"| {move} | {what} |" for move, what in BODY_MOVES.items()]
    return "\n".join(lines) + "\n"
