"""What a wait costs, against an activity step: one workflow, in one process, on each store.

    python -m benchmarks.bench_waits [--n 300] [--stores sqlite,redis,postgres]

Each row is one workflow of N calls, run by ``Engine.run`` in this process (sticky, default
batch), timed from its start to its end:

* activity: N calls of an activity that returns its argument (the engine's own step cost);
* receive: N ``Engine.send`` then N ``receive("m")``, both timed (each value stored, then
  taken and marked by a fenced write beside its step's commit);
* sleep(0): N timers of zero seconds (a deadline step, then the timer's answer: two
  commits each);
* wait: N ``receive("m")`` each sent after the workflow went to sleep for it (the worker
  gives the workflow back, is woken by the send, claims it again and resumes the parked
  coroutine; the sender is this process, between ``Engine.run`` calls).

Printed: calls per second, and each row's time per call against the activity row's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid

from coroutine.workflow import Engine, activity, receive, sleep

URLS = {
    "sqlite": "sqlite:///{dir}/bench.db",
    "redis": "redis://127.0.0.1:6379/7?prefix=bw{tag}",
    "postgres": "postgresql://postgres@127.0.0.1:5432/test?prefix=bw{tag}",
}


@activity
def same(x: int) -> int:
    return x


def activities(n: int) -> int:
    return sum(same(i) for i in range(n))


def receives(n: int) -> int:
    return sum(receive("m") for _ in range(n))


def sleeps(n: int) -> int:
    for _ in range(n):
        sleep(0)
    return n


def _timed(e: Engine, fn: object, n: int, presend: bool, one_by_one: bool) -> float:
    t0 = time.perf_counter()
    wid = e.start(fn, n)  # type: ignore[arg-type]
    if presend:
        for i in range(n):
            e.send(wid, "m", i)
    if one_by_one:
        for i in range(n):
            e.run()  # runs to the receive, gives the workflow back
            e.send(wid, "m", i)
    while e.status(wid) == "running":
        e.run()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--stores", default="sqlite,redis,postgres")
    args = p.parse_args()
    for store in args.stores.split(","):
        url = URLS[store].format(dir=tempfile.mkdtemp(), tag=uuid.uuid4().hex[:8])
        with Engine(url) as e:
            _timed(e, activities, 20, False, False)  # warm-up
            rows = {
                "activity": _timed(e, activities, args.n, False, False),
                "receive": _timed(e, receives, args.n, True, False),
                "sleep(0)": _timed(e, sleeps, args.n, False, False),
                "wait": _timed(e, receives, args.n, False, True),
            }
        base = rows["activity"]
        for name, t in rows.items():
            print(f"{store:<9} {name:<9} {args.n / t:>8,.0f} calls/s  {t / base:5.2f}x")


if __name__ == "__main__":
    main()
