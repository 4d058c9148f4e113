"""A transcript of every driving path, for `tests/test_speedups.py` to compare across the two
implementations (run once with COROUTINE_PURE=1, once accelerated): what each operation
returns or raises, the statuses, the chained exceptions, and the body's frames of each
traceback. Library frames are left out (the accelerator has none), nothing else is."""

from __future__ import annotations

import functools
import os
import re
import sys
import threading
from typing import Any, Optional

import coroutine
from coroutine import New, NewWithReturn, Run, Yield

LIBRARY = os.path.dirname(os.path.abspath(coroutine.__file__)) + os.sep
out: list[str] = []


def describe(exc: BaseException | None, depth: int = 0) -> str:
    if exc is None or depth > 3:
        return "-"
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(LIBRARY):
            frames.append(f"{tb.tb_frame.f_code.co_name}:{tb.tb_lineno}")
        tb = tb.tb_next
    return (
        f"{type(exc).__name__}({exc}) at {'>'.join(frames)}"
        f" context={describe(exc.__context__, depth + 1)}"
        f" cause={describe(exc.__cause__, depth + 1)} suppress={exc.__suppress_context__}"
    )


def do(label: str, fn: Any) -> Any:
    try:
        got = fn()
    except BaseException as exc:
        out.append(f"{label}: raises {describe(exc)}")
        return None
    out.append(f"{label}: {got!r}")
    return got


def counter() -> int:
    x = 0
    for _ in range(3):
        x = Yield[int, int](x + 1)
    return x


def optional_sent() -> None:
    got = Yield[int, Optional[int]](1)
    out.append(f"  body got {got!r}")
    Yield[int, Optional[int]](2)


def handler() -> int:
    try:
        Yield[int, int](1)
    except KeyError as exc:
        out.append(f"  body caught {describe(exc)}")
        try:
            return Yield[int, int](2)
        finally:
            out.append("  body finally")
    return -1


def raiser() -> None:
    try:
        Yield[int, int](1)
    except ValueError:
        raise KeyError("from the body") from None


def stop_iter() -> None:
    raise StopIteration(5)


def wide_site() -> None:
    Yield[Any, Any](3)  # a site of another signature: the rule path
    Yield[bool, int](True)


def bad_yield() -> None:
    Yield[int, int]("x")  # type: ignore[arg-type]


def mismatched() -> None:
    Yield[str, int]("x")


def nested() -> int:
    inner = NewWithReturn[int, int](counter)
    total = 0
    while inner.Next():
        total += Yield[int, int](inner.Recv())
        inner.Send(total)
    return total + (inner.Result() or 0)


def yields_while_stopping() -> None:
    try:
        Yield[int, int](1)
    finally:
        Yield[int, int](2)


def main() -> None:
    c = NewWithReturn[int, int](counter)
    do("status", lambda: c.status)
    do("Next", c.Next)
    do("Recv", c.Recv)
    do("Send bad", lambda: c.Send("no"))  # type: ignore[arg-type]
    do("Send", lambda: c.Send(10))
    do("Next", c.Next)
    do("Recv", c.Recv)
    do("Next (nothing sent)", c.Next)
    do("status", lambda: c.status)
    do("Next done", c.Next)
    do("Result", c.Result)

    g = NewWithReturn[int, int](counter)
    do("send(None) primes", lambda: g.send(None))
    do("send", lambda: g.send(4))
    do("next (nothing sent)", lambda: next(g))
    do("send done", lambda: g.send(1))

    g = NewWithReturn[int, int](counter)
    do("send 7 to created", lambda: g.send(7))
    do("send bad", lambda: g.send("x"))  # type: ignore[arg-type]
    do("list of a done one", lambda: list(g))

    o = New[int, Optional[int]](optional_sent)
    do("Next", o.Next)
    do("Next (None ok)", o.Next)
    do("Next end", o.Next)

    h = NewWithReturn[int, int](handler)
    do("Next", h.Next)
    do("throw KeyError", lambda: h.throw(KeyError("thrown")))
    do("send 9", lambda: h.send(9))
    do("Result", h.Result)

    r = New[int, int](raiser)
    do("Next", r.Next)
    do("throw ValueError", lambda: r.throw(ValueError))
    do("status", lambda: r.status)
    do("Next done", r.Next)

    do("StopIteration body", lambda: New[int, int](stop_iter).Next())
    do("wide site", lambda: list(New[int, int](wide_site)))
    do("bad yield", lambda: New[int, int](bad_yield).Next())
    do("mismatched site", lambda: New[int, int](mismatched).Next())
    do("Yield outside", lambda: Yield[int, int](1))
    do("refused body", lambda: New[int, int](lambda x: None))  # type: ignore[arg-type,misc]
    do("partial body", lambda: New[int, int](functools.partial(counter)).Next())

    do("Run doubles", lambda: Run(NewWithReturn[int, int](counter), lambda v: v * 2))
    do("Run bad answer", lambda: Run(NewWithReturn[int, int](counter), lambda v: "x"))
    do("Run fn raises", lambda: Run(NewWithReturn[int, int](handler), lambda v: {}[v]))

    def interrupting(v: int) -> int:
        raise KeyboardInterrupt

    do("Run fn interrupts", lambda: Run(NewWithReturn[int, int](handler), interrupting))
    s = NewWithReturn[int, int](counter)

    def stopping(v: int) -> int:
        s.Stop()
        return v

    do("Run fn stops", lambda: Run(s, stopping))
    do("status", lambda: s.status)
    d = NewWithReturn[int, int](counter)

    def driving(v: int) -> int:
        d.Send(v)
        d.Next()
        return v

    do("Run fn drives", lambda: Run(d, driving))
    do("Run nested", lambda: Run(NewWithReturn[int, int](nested), lambda v: v + 1))

    y = New[int, int](yields_while_stopping)
    do("Next", y.Next)
    do("close (yields while stopping)", y.close)
    out.append(f"status: {y.status!r}")
    del y

    t = New[int, int](counter)
    do("Next", t.Next)
    box: list[str] = []

    def other() -> None:
        try:
            t.Next()
        except BaseException as exc:
            box.append(type(exc).__name__)

    th = threading.Thread(target=other, name="other")
    th.start()
    th.join()
    out.append(f"Next from another thread: {box}")
    do("status", lambda: t.status)
    do("Stop", t.Stop)
    do("Next stopping", t.Next)
    do("status", lambda: t.status)

    def self_driving() -> None:
        me = coroutine.Current()
        assert me is not None
        do("  Next from its own body", me.Next)
        Yield[int, int](1)

    do("self-driving", lambda: New[int, int](self_driving).Next())
    sys.stdout.write(re.sub(r"0x[0-9a-f]+", "0x...", "\n".join(out)) + "\n")


main()
