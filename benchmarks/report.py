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

BUDGETS = {
    ("roundtrip", "Run"): 1.3,
    ("roundtrip", "Next/Send/Recv"): 1.45,
    ("create", "New + Next + Next"): 0.25,
    ("memory", "coroutine"): 1.2,
}


def load(folder: Path) -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("cpython-*.json"))]
    return sorted(runs, key=lambda r: tuple(int(x) for x in r["python"].split(".")[:2]))


def _cell(row: dict[str, Any], group: str) -> str:
    if group == "memory":
        return f"{row['bytes'] / 1024:.1f} KiB ({row['ratio']:.2f}x)"
    return f"{row['seconds_per_op'] * 1e6:.3f} µs ({row['ratio']:.2f}x)"


def table(runs: list[dict[str, Any]], group: str) -> list[str]:
    versions = [r["python"] for r in runs]
    names = [row["name"] for row in runs[0]["groups"][group]]
    lines = [
        "| | " + " | ".join(f"CPython {v}" for v in versions) + " | budget |",
        "|---|" + "---|" * (len(versions) + 1),
    ]
    for name in names:
        cells = []
        for run in runs:
            row = next((x for x in run["groups"][group] if x["name"] == name), None)
            cells.append(_cell(row, group) if row else "")
        budget = BUDGETS.get((group, name))
        limit = f"<= {budget}x" if budget else ""
        label = name.replace("|", "\\|")  # a type like `int | None` inside a table cell
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {limit} |")
    return lines


TITLES = {
    "roundtrip": "Round trip (resume + yield, an int each way); ratio to a raw greenlet pair",
    "create": "Create + run to completion, one yield; ratio to a fresh raw greenlet",
    "depth": "Round trip through `Run` with the yield N calls deep; ratio to depth 1",
    "typecheck": "Run-time type checks: round trip by yielded type; ratio to `Any` (no check)",
    "memory": "Memory per suspended coroutine (100,000 alive); ratio to a raw greenlet",
}


def write_markdown(runs: list[dict[str, Any]], path: Path) -> None:
    out = [
        "# Benchmark results",
        "",
        "Made by `./scripts/bench.sh` (`python -m benchmarks.run` on each CPython, then",
        "`python -m benchmarks.report`). Every ratio compares candidates measured side by side,",
        "interleaved, in one process run (best of 7 rounds); absolute times are shown beside",
        "them but depend on the machine and its load (2 shared cores here).",
        "",
    ]
    for group, title in TITLES.items():
        if group not in runs[0]["groups"]:
            continue
        out += [f"## {title}", "", *table(runs, group), ""]
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
    for run in runs:
        depth = [r for r in run["groups"]["depth"] if r["name"].startswith("depth ")]
        xs = [int(r["name"].split()[1]) for r in depth]
        left.plot(xs, [r["seconds_per_op"] * 1e6 for r in depth], marker="o", label=run["python"])
        checks = run["groups"]["typecheck"]
        right.plot(
            range(len(checks)),
            [r["seconds_per_op"] * 1e6 for r in checks],
            marker="o",
            label=run["python"],
        )
    left.set_xscale("log")
    left.set_xlabel("Python calls between the body's entry and the yield")
    left.set_ylabel("round trip through Run (µs)")
    left.set_ylim(bottom=0)
    left.set_title("Cost against depth")
    names = [r["name"] for r in runs[0]["groups"]["typecheck"]]
    right.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    right.set_ylabel("round trip through Run (µs)")
    right.set_ylim(bottom=0)
    right.set_title("Cost against yielded type and payload size")
    for ax in (left, right):
        ax.legend(title="CPython", fontsize=8)
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
