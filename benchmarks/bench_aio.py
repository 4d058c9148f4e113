"""The async bridge, per await: ours (compiled and pure Python) against SQLAlchemy's and
greenback's, and a native ``async def`` loop, side by side in one process.

    python -m benchmarks.bench_aio [--awaits N] [--rounds R] [--count] [--out FILE]

Each candidate awaits N times from inside one synchronous body (or, natively, from one
coroutine), on one asyncio event loop: an awaitable that completes without suspending (a
coroutine that returns at once), then one that suspends (``asyncio.sleep(0)``, a trip through
the event loop). Times are the best of R interleaved rounds (`_harness.compare`), per await;
``--count`` adds callgrind's instructions per await ((I(2N) - I(N)) / N, `count.callgrind`).

SQLAlchemy (``greenlet_spawn`` + ``await_only``) and greenback (``with_portal_run_sync`` +
``await_``) are compared, never depended on: install them in the benchmark's own environment
(``pip install sqlalchemy greenback``); a missing one is left out of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from coroutine.aio import _IMPLEMENTATIONS

from ._harness import compare

KINDS = ("ready", "sleep")
"""ready: a coroutine that returns at once; sleep: asyncio.sleep(0), which suspends."""


async def _ready(i: int) -> int:
    return i


def _awaitable(kind: str) -> Callable[[int], Awaitable[Any]]:
    return _ready if kind == "ready" else lambda i: asyncio.sleep(0, i)


def _body(await_: Callable[[Any], Any], make: Callable[[int], Awaitable[Any]]) -> Any:
    def body(n: int) -> None:
        for i in range(n):
            await_(make(i))

    return body


def _native(make: Callable[[int], Awaitable[Any]]) -> Callable[[int], Awaitable[Any]]:
    async def loop(n: int) -> None:
        for i in range(n):
            await make(i)

    return loop


def _ours(name: str, make: Callable[[int], Awaitable[Any]]) -> Callable[[int], Awaitable[Any]]:
    run_sync, await_ = _IMPLEMENTATIONS[name]
    body = _body(await_, make)
    return lambda n: run_sync(body, n)  # type: ignore[no-any-return]


def _sqlalchemy(make: Callable[[int], Awaitable[Any]]) -> Callable[[int], Awaitable[Any]]:
    from sqlalchemy.util import concurrency

    concurrency._concurrency_shim._initialize()  # its greenlet import, done once
    body = _body(concurrency.await_only, make)
    return lambda n: concurrency.greenlet_spawn(body, n)


def _greenback(make: Callable[[int], Awaitable[Any]]) -> Callable[[int], Awaitable[Any]]:
    import greenback

    body = _body(greenback.await_, make)
    return lambda n: greenback.with_portal_run_sync(body, n)


def candidates(kind: str, only: str | None = None) -> dict[str, Callable[[int], Awaitable[Any]]]:
    """What awaits `n` times, by name, for the `kind` of awaitable (the peers installed), or
    only the candidate named `only`."""
    make = _awaitable(kind)
    makers: dict[str, Callable[[], Callable[[int], Awaitable[Any]]]] = {
        "native async def": lambda: _native(make),
        "SQLAlchemy await_only": lambda: _sqlalchemy(make),
        "greenback await_": lambda: _greenback(make),
    }
    for impl in ("pure", "compiled"):
        if impl in _IMPLEMENTATIONS:
            makers[f"ours, {impl}"] = lambda impl=impl: _ours(impl, make)  # type: ignore[misc]
    found = {}
    for name, maker in makers.items():
        if only is None or name == only:
            try:
                found[name] = maker()
            except ImportError:  # a peer not installed here
                pass
    return found


_LOOP = asyncio.new_event_loop()


def timed_on_loop(run: Callable[[int], Awaitable[Any]]) -> Callable[[int], float]:
    """A `_harness.Bench`: the seconds `run(n)` takes on the benchmark's event loop."""

    async def measure(n: int) -> float:
        start = time.perf_counter()
        await run(n)
        return time.perf_counter() - start

    return lambda n: _LOOP.run_until_complete(measure(n))


def counted(kind: str, name: str, n: int) -> None:
    """One run of one candidate (what callgrind counts): n awaits, collector off."""
    bench = timed_on_loop(candidates(kind, only=name)[name])
    gc.collect()
    gc.disable()
    bench(n)


def instructions(kind: str, name: str, n: int) -> float:
    """(I(2N) - I(N)) / N for one candidate, each run importing from .pyc files (`count`)."""
    from .count import callgrind  # valgrind is needed only for --count

    def argv(ops: int) -> list[str]:
        return ["-m", "benchmarks.bench_aio", "--one", kind, name, str(ops)]

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, *argv(10)], env=env, check=True)  # writes the .pyc files
    return (callgrind(argv(2 * n), pure=False) - callgrind(argv(n), pure=False)) / n


def table(paths: list[str]) -> str:
    """The rows of `--out` files (one per CPython) as one Markdown table per kind of
    awaitable: ns and instructions per await, each with its ratio to SQLAlchemy's."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        with open(path) as f:
            rows += json.load(f)
    versions = sorted({r["python"] for r in rows}, key=lambda v: tuple(map(int, v.split("."))))
    out = []
    for kind in KINDS:
        title = "completes at once" if kind == "ready" else "asyncio.sleep(0)"
        out += [f"{kind} ({title}) | " + " | ".join(f"CPython {v}" for v in versions)]
        out += ["|".join(["---"] * (len(versions) + 1))]
        names = list(dict.fromkeys(r["name"] for r in rows if r["kind"] == kind))
        for name in names:
            cells = []
            for v in versions:
                r = next(
                    (r for r in rows if (r["kind"], r["name"], r["python"]) == (kind, name, v)),
                    None,
                )
                base = next(
                    (
                        b
                        for b in rows
                        if (b["kind"], b["name"], b["python"]) == (kind, "SQLAlchemy await_only", v)
                    ),
                    None,
                )
                if r is None:
                    cells.append("")
                    continue
                cell = f"{r['ns']:,.0f} ns ({r['ratio']:.2f}x)"
                if r.get("instructions") and base and base.get("instructions"):
                    ratio = r["instructions"] / base["instructions"]
                    cell += f", {r['instructions']:,.0f} instr ({ratio:.2f}x)"
                cells.append(cell)
            out += [f"{name} | " + " | ".join(cells)]
        out += [""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--awaits", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", action="store_true", help="callgrind instructions too")
    parser.add_argument("--count-awaits", type=int, default=40_000)
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--table", nargs="+", metavar="JSON", help="print --out files as Markdown")
    parser.add_argument("--one", nargs=3, metavar=("KIND", "NAME", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        counted(args.one[0], args.one[1], int(args.one[2]))
        return
    if args.table:
        print(table(args.table))
        return
    version = ".".join(map(str, sys.version_info[:2]))
    rows = []
    print(f"CPython {version}: ns per await (best of {args.rounds}), against SQLAlchemy")
    for kind in KINDS:
        found = candidates(kind)
        base = "SQLAlchemy await_only" if "SQLAlchemy await_only" in found else "ours, pure"
        ops = args.awaits if kind == "ready" else args.awaits // 5
        results = compare({k: timed_on_loop(v) for k, v in found.items()}, base, ops, args.rounds)
        counts = {}
        if args.count:
            n = args.count_awaits if kind == "ready" else args.count_awaits // 5
            counts = {r.name: instructions(kind, r.name, n) for r in results}
        print(f"\n{kind}: {'completes at once' if kind == 'ready' else 'asyncio.sleep(0)'}")
        for r in results:
            line = f"  {r.name:<24} {r.seconds_per_op * 1e9:8.0f} ns  {r.ratio:5.2f}x"
            if counts:
                base_count = counts[base]
                line += f"  {counts[r.name]:9.0f} instr  {counts[r.name] / base_count:5.2f}x"
            print(line)
            rows.append(
                {
                    "python": version,
                    "kind": kind,
                    "name": r.name,
                    "ns": r.seconds_per_op * 1e9,
                    "ratio": r.ratio,
                    "instructions": counts.get(r.name),
                }
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
