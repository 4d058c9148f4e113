"""Write benchmarks/RESULTS.md and benchmarks/depth_and_payload.png from the saved results.

    python -m benchmarks.report [benchmarks/results]

Needs matplotlib for the plot (the `bench` extra); without it, only RESULTS.md is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
IMPLEMENTATIONS = {
    "accelerated": "with the C accelerator",
    "pure": "pure Python (`COROUTINE_PURE=1`)",
}

# Stated in issue 11 for the accelerated implementation; the creation budget in instructions
# is against a pooled raw greenlet cycle, a floor only `benchmarks.instructions` measures.
BUDGETS = {
    ("roundtrip", "Run"): "time <= 1.3x, instructions <= 1.25x",
    ("roundtrip", "Next/Send/Recv"): "instructions <= 1.45x",
    ("create", "New + Next + Next"): "time <= 0.25x",
    ("memory", "coroutine"): "<= 1.2x",
}


def load(folder: Path) -> list[dict[str, Any]]:
    """One entry per CPython: {"python", "accelerated", "pure", "counts"} (a part may be None)."""
    found: dict[str, dict[str, Any]] = {}
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        minor = ".".join(data["python"].split(".")[:2])
        entry = found.setdefault(minor, {"python": minor, "accelerated": None, "pure": None})
        if path.name.startswith("instructions-"):
            entry["counts"] = data["groups"]
        else:
            entry[data.get("implementation", "accelerated")] = data
            entry["python"] = data["python"]
    return sorted(found.values(), key=lambda r: tuple(int(x) for x in r["python"].split(".")[:2]))


def _count(entry: dict[str, Any], impl: str, group: str, name: str) -> float | None:
    rows = (entry.get("counts") or {}).get(group, [])
    row = next((r for r in rows if r["name"] == name), None)
    return row[impl] if row else None


def _cell(entry: dict[str, Any], impl: str, group: str, name: str, baseline: str) -> str:
    run = entry[impl]
    row = next((x for x in run["groups"][group] if x["name"] == name), None) if run else None
    if row is None:
        return ""
    if group == "memory":
        return f"{row['bytes'] / 1024:.1f} KiB ({row['ratio']:.2f}x)"
    time = f"{row['seconds_per_op'] * 1e6:.3f} µs ({row['ratio']:.2f}x)"
    count, base = _count(entry, impl, group, name), _count(entry, impl, group, baseline)
    if count is None or not base:
        return f"{time} · n/a"
    return f"{time} · {count:,.0f} ({count / base:.2f}x)"


def table(runs: list[dict[str, Any]], group: str, impl: str) -> list[str]:
    first = next(r[impl] for r in runs if r[impl])
    names = [row["name"] for row in first["groups"][group]]
    baseline = next(row["name"] for row in first["groups"][group] if row["ratio"] == 1.0)
    budgets = impl == "accelerated"
    head = "| | " + " | ".join(f"CPython {r['python']}" for r in runs)
    lines = [head + (" | budget |" if budgets else " |"), "|---|" + "---|" * (len(runs) + budgets)]
    for name in names:
        cells = [_cell(entry, impl, group, name, baseline) for entry in runs]
        label = name.replace("|", "\\|")  # a type like `int | None` inside a table cell
        line = f"| {label} | " + " | ".join(cells) + " |"
        if budgets:
            line += f" {BUDGETS.get((group, name), '')} |"
        lines.append(line)
    return lines


TITLES = {
    "roundtrip": "Round trip (resume + yield, an int each way); ratio to a raw greenlet pair",
    "create": "Create + run to completion, one yield; ratio to a fresh raw greenlet",
    "depth": "Round trip through `Run` with the yield N calls deep; ratio to depth 1",
    "typecheck": "Run-time type checks: round trip by yielded type; ratio to `Any` (no check)",
    "memory": "Memory per suspended coroutine (100,000 alive); ratio to a raw greenlet",
}

INTRO = """\
# Benchmark results

Made by `./scripts/bench.sh`: on each CPython, `python -m benchmarks.run` twice (with the
accelerator, then with `COROUTINE_PURE=1`), `python -m benchmarks.count`, then
`python -m benchmarks.report`.

Each cell is **time per operation (ratio) · instructions per operation (ratio)**, each ratio
to the table's first row measured the same way, by the same implementation:

- Times: every candidate measured side by side, interleaved, in one process run (best of 7
  rounds). Absolute times depend on the machine and its load (2 shared cores here).
- Instructions: callgrind (`valgrind --tool=callgrind`, PYTHONHASHSEED=0), each candidate run
  for N and for 2N operations, (I(2N) - I(N)) / N; repeatable where times are not, though
  the same work in two processes can differ by up to 4% with where their stacks and heaps lie
  (docs/explanation/performance.md): read smaller differences as none. They count what the
  CPU executes, not time spent waiting in the kernel (the thread handoff row's futex sleeps)
  or in page faults (a fresh greenlet's stack).
- Rows that never touch `coroutine` (raw greenlet, generators, threads) appear in both
  implementations' tables: measured again in each run, they are that run's baseline.
"""


def write_markdown(runs: list[dict[str, Any]], path: Path) -> None:
    out = [INTRO]
    for group, title in TITLES.items():
        for impl, how in IMPLEMENTATIONS.items():
            if not any(r[impl] and group in r[impl]["groups"] for r in runs):
                continue
            out += [f"## {title}: {how}", "", *table(runs, group, impl), ""]
    out += ["![cost against depth and payload](depth_and_payload.png)", ""]
    path.write_text("\n".join(out))


def write_plot(runs: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]')", file=sys.stderr)
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names: list[str] = []
    for i, entry in enumerate(runs):
        for impl, style in (("accelerated", "-"), ("pure", "--")):
            run = entry[impl]
            if run is None:
                continue
            line = {"marker": "o", "linestyle": style, "color": f"C{i}"}
            label = entry["python"] + ("" if impl == "accelerated" else ", pure")
            depth = [r for r in run["groups"]["depth"] if r["name"].startswith("depth ")]
            xs = [int(r["name"].split()[1]) for r in depth]
            left.plot(xs, [r["seconds_per_op"] * 1e6 for r in depth], label=label, **line)
            checks = run["groups"]["typecheck"]
            names = [r["name"] for r in checks]
            ys = [r["seconds_per_op"] * 1e6 for r in checks]
            right.plot(range(len(checks)), ys, label=label, **line)
    left.set_xscale("log")
    left.set_xlabel("Python calls between the body's entry and the yield")
    left.set_ylabel("round trip through Run (µs)")
    left.set_ylim(bottom=0)
    left.set_title("Cost against depth")
    right.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    right.set_ylabel("round trip through Run (µs)")
    right.set_ylim(bottom=0)
    right.set_title("Cost against yielded type and payload size")
    left.legend(title="CPython (dashed: pure)", fontsize=7)  # one legend serves both
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results"
    runs = load(folder)
    if not runs:
        sys.exit(f"no results in {folder}: run python -m benchmarks.run first")
    write_markdown(runs, HERE / "RESULTS.md")
    write_plot(runs, HERE / "depth_and_payload.png")
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
