"""Instructions per operation for every timed benchmark row, counted by callgrind, for both
implementations.

    python -m benchmarks.count [--quick] [--jobs 2] [--out benchmarks/results]
    python -m benchmarks.count GROUP CANDIDATE N    # one run (what callgrind counts)

Each row of the timed groups (`benchmarks.run.GROUPS`) runs its candidate for N and for 2N
operations under ``valgrind --tool=callgrind`` with PYTHONHASHSEED=0; (I(2N) - I(N)) / N is
the cost of one operation, start-up and set-up cancelled out. Every row is counted twice, with
the accelerator and with ``COROUTINE_PURE=1``, so the rows that never touch `coroutine` (raw
greenlet, generators) are counted in both processes too: their two counts agree within the
noise of where stacks and heaps lie (under 4%, docs/explanation/performance.md), which is the
check that the subtraction cancelled what it should. Counts are repeatable on a shared, noisy
machine, where times are not; `benchmarks.run` gives the times, `benchmarks.report`
puts both in RESULTS.md.

The candidate runs as the timing harness runs it: collector disabled after a collection. Every
run imports from ``.pyc`` files, written by one warm-up import before anything is counted: a
run that compiles its sources instead leaves a different heap, which moves a round trip by
about 80 instructions (1.5%: 3.11's `Run`, 5,458 compiling and 5,541 from .pyc files)
although the compiling itself cancels out.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# Operations per count (N; 2N is also run), by group: enough that (I(2N) - I(N)) / N is
# stable to a few instructions, few enough that the slowest rows (depth 1000 copies the stack,
# a thread handoff goes through valgrind's scheduler) take minutes, not hours.
COUNT_OPS = {"roundtrip": 20_000, "create": 10_000, "depth": 5_000, "typecheck": 20_000}
QUICK_OPS = {group: ops // 10 for group, ops in COUNT_OPS.items()}


def callgrind(argv: list[str], pure: bool) -> int:
    """Instructions callgrind counts for `python argv...`, accelerated or pure."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # Every run imports from the .pyc files the warm-up wrote: a run that compiles its
    # sources instead starts ~220M instructions higher and leaves a different heap behind.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("COROUTINE_PURE", None)
    if pure:
        env["COROUTINE_PURE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        proc = subprocess.run(cmd + argv, capture_output=True, text=True, env=env)
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or found is None:
            raise RuntimeError(f"callgrind run {argv} failed:\n{proc.stderr[-2000:]}")
        return int(found[1])


def warm_up(modules: list[str]) -> None:
    """Import `modules` in both implementations once, writing their .pyc files."""
    for pure in (True, False):
        callgrind(["-c", "import " + ", ".join(modules)], pure)


def per_op(argv_for: Any, n: int, pure: bool) -> float:
    """(I(2N) - I(N)) / N, where ``argv_for(n)`` is the command line of a run of n ops."""
    return (callgrind(argv_for(2 * n), pure) - callgrind(argv_for(n), pure)) / n


def _module(group: str) -> Any:
    # Only the group's own module: importing every group (as benchmarks.run does) adds ~250M
    # instructions at start-up, which cancel out but make every run slower.
    return importlib.import_module(f"benchmarks.bench_{group}")


def run_once(group: str, candidate: str, n: int) -> None:
    """Run one candidate for n operations, as `_harness.compare` runs it."""
    bench = _module(group).CANDIDATES[candidate]
    gc.collect()
    gc.disable()
    bench(n)


def count_all(ops: dict[str, int], jobs: int) -> dict[str, Any]:
    """Every row of every group, both implementations: {group: [{name, pure, accelerated}]}."""
    rows = [(g, name) for g in ops for name in _module(g).CANDIDATES]

    def count(row: tuple[str, str], pure: bool) -> float:
        group, name = row
        return per_op(lambda n: ["-m", "benchmarks.count", group, name, str(n)], ops[group], pure)

    with ThreadPoolExecutor(jobs) as pool:  # each job is a valgrind process: one per core
        pure = pool.map(lambda row: count(row, True), rows)
        fast = pool.map(lambda row: count(row, False), rows)
        report: dict[str, Any] = {g: [] for g in ops}
        for (group, name), p, f in zip(rows, pure, fast, strict=True):
            report[group].append({"name": name, "pure": p, "accelerated": f, "n": ops[group]})
            print(f"  {group:9s} {name:34s} pure {p:10,.0f}  accelerated {f:10,.0f}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N / 10 (a smoke run)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    import coroutine

    if not coroutine.ACCELERATED:
        sys.exit("benchmarks.count: the accelerator is not built here; both columns need it")
    v = sys.version_info
    print(f"CPython {v.major}.{v.minor}: instructions per operation (callgrind, N and 2N)")
    ops = QUICK_OPS if args.quick else COUNT_OPS
    warm_up(["benchmarks.count", *(f"benchmarks.bench_{group}" for group in ops)])
    report = {"python": f"{v.major}.{v.minor}", "groups": count_all(ops, args.jobs)}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"instructions-{v.major}.{v.minor}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {path}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in COUNT_OPS:
        run_once(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    else:
        main()
