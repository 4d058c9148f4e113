#!/usr/bin/env bash
# Run the benchmark suite on every CPython 3.10-3.13 found, then write benchmarks/RESULTS.md
# and the plot. `./scripts/bench.sh --quick` for a smoke run (results not comparable).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_pythons.sh
rm -f benchmarks/results/cpython-*.json  # (the durable-growth notes there are kept)
last=""
for v in 3.10 3.11 3.12 3.13; do
    py="$(find_python "$v" || true)"
    [ -n "$py" ] || { echo "bench.sh: CPython $v not found, skipped"; continue; }
    venv=".venv-bench/$v"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[bench]'
    "$venv/bin/python" -m benchmarks.run "$@"
    last="$venv"
done
[ -n "$last" ] || { echo "bench.sh: no CPython 3.10-3.13 found" >&2; exit 1; }
"$last/bin/python" -m benchmarks.report
