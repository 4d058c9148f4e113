"""Memory per suspended coroutine: 100,000 of them alive at once, against raw greenlets and
generators. Each candidate runs in a fresh subprocess and reports its resident-set growth."""

from __future__ import annotations

import json
import subprocess
import sys

COUNT = 100_000

_SCRIPT = """
import gc, sys
from typing import Any
import greenlet
from coroutine import New, Yield

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

def raw_body():
    greenlet.getcurrent().parent.switch(1)

def gen():
    yield 1

def body():
    Yield[int, Any](1)

kind, count = sys.argv[1], int(sys.argv[2])
keep = []
gc.collect()
before = rss()
for _ in range(count):
    if kind == "raw greenlet":
        g = greenlet.greenlet(raw_body); g.switch(); keep.append(g)
    elif kind == "generator":
        g = gen(); next(g); keep.append(g)
    else:
        c = New[int, Any](body); c.Next(); keep.append(c)
gc.collect()
print((rss() - before) / count)
for k in keep:
    if kind == "coroutine":
        k.close()
    elif kind == "raw greenlet":
        k.throw(greenlet.GreenletExit)
"""

KINDS = ("raw greenlet", "coroutine", "generator")


def bytes_per_suspended(kind: str, count: int = COUNT) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, kind, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def measure(count: int = COUNT) -> dict[str, float]:
    return {kind: bytes_per_suspended(kind, count) for kind in KINDS}


if __name__ == "__main__":
    print(json.dumps(measure()))
