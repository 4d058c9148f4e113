#!/usr/bin/env bash
# Run the benchmark suite on every CPython 3.10-3.13 found, then write benchmarks/RESULTS.md
# and the plot. On each CPython: times with the accelerator and with COROUTINE_PURE=1
# (benchmarks.run), then instructions per row under callgrind for both (benchmarks.count:
# needs valgrind, about 10 minutes per CPython on 2 cores).
#   ./scripts/bench.sh               everything
#   ./scripts/bench.sh --quick       a smoke run (results not comparable)
#   ./scripts/bench.sh --times-only  times again; the saved instruction counts are kept
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_pythons.sh
quick=() counts=1
for arg in "$@"; do
    case "$arg" in
        --quick) quick=(--quick) ;;
        --times-only) counts=0 ;;
        *) echo "bench.sh: unknown option $arg (--quick, --times-only)" >&2; exit 2 ;;
    esac
done
if [ "$counts" = 1 ] && ! command -v valgrind >/dev/null; then
    echo "bench.sh: valgrind not found (apt install valgrind), or --times-only" >&2
    exit 1
fi
rm -f benchmarks/results/cpython-*.json  # (the durable-growth notes there are kept)
[ "$counts" = 1 ] && rm -f benchmarks/results/instructions-*.json
last=""
for v in 3.10 3.11 3.12 3.13; do
    py="$(find_python "$v" || true)"
    [ -n "$py" ] || { echo "bench.sh: CPython $v not found, skipped"; continue; }
    venv=".venv-bench/$v"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[bench]'
    "$venv/bin/python" -m benchmarks.run "${quick[@]}"
    COROUTINE_PURE=1 "$venv/bin/python" -m benchmarks.run "${quick[@]}"
    [ "$counts" = 1 ] && "$venv/bin/python" -m benchmarks.count "${quick[@]}"
    last="$venv"
done
[ -n "$last" ] || { echo "bench.sh: no CPython 3.10-3.13 found" >&2; exit 1; }
"$last/bin/python" -m benchmarks.report
