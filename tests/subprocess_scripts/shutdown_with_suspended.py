"""Interpreter shutdown with suspended coroutines alive, run as a subprocess.

    python shutdown_with_suspended.py EXIT

EXIT is how the main thread ends: "return" (falls off the end), "sys.exit" (SystemExit(3)),
"raise" (an uncaught exception). Each suspended coroutine's ``finally`` prints a line
"finally <where>", so the parent test sees which ones ran. Kinds of holders:

- global: a module global
- cycle: a list that contains itself and the coroutine (only the cyclic GC can free it)
- nested: an outer coroutine suspended while it holds a suspended inner one, in a global
- thread: a coroutine created, suspended and held by a daemon thread still alive at exit
- raising: a global whose finally raises while being unwound
- zombie: a global whose body yielded while being stopped (its driver got ResumeError)

EXIT "in-body" ends the process by `sys.exit(4)` inside a running body, itself driven from
inside another body.
"""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any

from coroutine import CoroutineExit, New, ResumeError, Yield


def body(where: str) -> None:
    try:
        Yield[int, Any](1)
        Yield[int, Any](2)
    finally:
        print(f"finally {where}", flush=True)


def raising_body() -> None:
    try:
        Yield[int, Any](1)
    finally:
        print("finally raising", flush=True)
        raise ValueError("raised by a finally at shutdown")


def outer() -> None:
    inner = New[int, Any](lambda: body("nested inner"))
    inner.Next()
    try:
        Yield[int, Any](inner.Recv())
    finally:
        print("finally nested outer", flush=True)


def zombie_body() -> None:
    try:
        Yield[int, Any](1)
    except CoroutineExit:
        try:
            Yield[int, Any](2)
        finally:
            print("finally zombie", flush=True)


def exiting_body() -> None:
    try:
        inner = New[int, Any](lambda: sys.exit(4))
        inner.Next()
    finally:
        print("finally exiting", flush=True)


started = threading.Event()


def thread_main() -> None:
    c = New[int, Any](lambda: body("thread"))
    c.Next()
    started.set()
    threading.Event().wait()  # never returns: a daemon thread alive at exit


g = New[int, Any](lambda: body("global"))
g.Next()
nested = New[int, Any](outer)
# The outer now older than the inner its body makes: the heap lists the inner first, and the
# exit hook must still unwind the outer first.
gc.collect()
nested.Next()
cycle: list[Any] = [New[int, Any](lambda: body("cycle"))]
cycle[0].Next()
cycle.append(cycle)
del cycle
raising = New[int, Any](raising_body)
raising.Next()
zombie = New[int, Any](zombie_body)
zombie.Next()
try:
    zombie.close()
except ResumeError:
    pass
threading.Thread(target=thread_main, daemon=True).start()
started.wait()
print("main done", flush=True)

how = sys.argv[1]
if how == "sys.exit":
    sys.exit(3)
elif how == "raise":
    raise RuntimeError("uncaught at exit")
elif how == "in-body":
    New[int, Any](exiting_body).Next()
