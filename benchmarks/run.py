"""Run every benchmark on this interpreter; print the tables and save them as JSON.

    python -m benchmarks.run [--quick] [--out benchmarks/results]

Each group's candidates are measured side by side, interleaved, in this one process run
(memory: one fresh subprocess per candidate). The implementation is the one `coroutine`
imports: run it once as is and once with ``COROUTINE_PURE=1`` for both (the files are
``cpython-3.X.json`` and ``cpython-3.X-pure.json``). `scripts/bench.sh` does that on every
CPython found, counts instructions (`benchmarks.count`), and then `benchmarks.report` writes
RESULTS.md and the plot.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from . import bench_create, bench_depth, bench_memory, bench_roundtrip, bench_typecheck
from ._harness import Result, compare

# (group, module, operations per measurement, quick operations)
GROUPS: list[tuple[str, Any, int, int]] = [
    ("roundtrip", bench_roundtrip, 50_000, 5_000),
    ("create", bench_create, 20_000, 2_000),
    ("depth", bench_depth, 50_000, 5_000),
    ("typecheck", bench_typecheck, 50_000, 5_000),
]


def _table(results: list[Result]) -> str:
    lines = [f"  {'':34s} {'µs/op':>9s} {'ratio':>7s}"]
    lines += [f"  {r.name:34s} {r.micros:9.3f} {r.ratio:6.2f}x" for r in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    import coroutine

    version = platform.python_version()
    implementation = "accelerated" if coroutine.ACCELERATED else "pure"
    report: dict[str, Any] = {
        "python": version,
        "machine": platform.machine(),
        "implementation": implementation,
        "groups": {},
    }
    print(f"CPython {version} on {platform.machine()}, {implementation}")
    for name, module, ops, quick_ops in GROUPS:
        results = compare(module.CANDIDATES, module.BASELINE, quick_ops if args.quick else ops)
        print(f"\n{name} (baseline: {module.BASELINE})\n{_table(results)}")
        report["groups"][name] = [
            {"name": r.name, "seconds_per_op": r.seconds_per_op, "ratio": r.ratio} for r in results
        ]
    count = 10_000 if args.quick else bench_memory.COUNT
    memory = bench_memory.measure(count)
    base = memory["raw greenlet"]
    print(f"\nmemory per suspended coroutine ({count:,} alive)")
    for kind, size in memory.items():
        print(f"  {kind:34s} {size:9.0f} B {size / base:6.2f}x")
    report["groups"]["memory"] = [
        {"name": k, "bytes": v, "ratio": v / base} for k, v in memory.items()
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if coroutine.ACCELERATED else "-pure"
    path = args.out / f"cpython-{sys.version_info[0]}.{sys.version_info[1]}{suffix}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
