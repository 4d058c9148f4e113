#!/usr/bin/env bash
# Set up and run the whole test suite, from a clean clone, on every CPython 3.10-3.13 found.
#
#   ./scripts/test.sh            all versions found (at least two required)
#   ./scripts/test.sh 3.12       one version only
#
# Each version gets its own virtualenv under .venv-test/ with the package installed
# editable with its dev extra (which compiles the C accelerator, coroutine._speedups). The
# runtime suite runs twice on every version: accelerated, then pure Python with
# COROUTINE_PURE=1 (tests/test_speedups.py fails the first run if the extension did not
# load, so CI cannot test the pure path twice); coverage is measured on the pure run, whose
# Python code is the reference the extension compiles. The static checks
# (mypy --strict, ruff, the typing and plugin suites) and the coverage report run once, on
# PRIMARY (3.11 by default, else the oldest version found), since they do not depend on the
# interpreter running them.
#
# The workflow tests (tests/workflow) use real services, which must be running first: Redis
# 127.0.0.1:6379, PostgreSQL 127.0.0.1:5432 (database `test`, trust auth) and RabbitMQ
# 127.0.0.1:5672 (guest/guest). This script stops at once, naming any that is unreachable.
# The workflow crash and concurrency tests run at full size on PRIMARY and at a quarter of
# the size (WORKFLOW_TEST_SCALE=small, never skipped) on the other versions.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for service in "Redis 127.0.0.1 6379" "PostgreSQL 127.0.0.1 5432" "RabbitMQ 127.0.0.1 5672"; do
    read -r name host port <<<"$service"
    if ! timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
        missing+=("$name ($host:$port)")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "test.sh: the workflow tests need these services, which are not reachable:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    echo "test.sh: start them (see the comment at the top of this script) and run again" >&2
    exit 1
fi

PRIMARY="${PRIMARY:-3.11}"
wanted=("${@:-3.10 3.11 3.12 3.13}")
read -r -a wanted <<<"${wanted[*]}"

source scripts/_pythons.sh

declare -A pythons=()
for v in "${wanted[@]}"; do
    p="$(find_python "$v" || true)"
    if [ -n "$p" ]; then pythons[$v]="$p"; else echo "test.sh: CPython $v not found, skipped"; fi
done
if [ "$#" -eq 0 ] && [ "${#pythons[@]}" -lt 2 ]; then
    echo "test.sh: found ${#pythons[@]} of CPython 3.10-3.13; at least two are required" >&2
    exit 1
fi
if [ -z "${pythons[$PRIMARY]:-}" ]; then
    PRIMARY="$(printf '%s\n' "${!pythons[@]}" | sort -V | head -n1)"
fi

status=0
for v in $(printf '%s\n' "${!pythons[@]}" | sort -V); do
    venv=".venv-test/$v"
    echo "=== CPython $v (${pythons[$v]}) ==="
    if [ ! -x "$venv/bin/python" ]; then
        "${pythons[$v]}" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev,workflow]'
    if [ "$v" = "$PRIMARY" ]; then export WORKFLOW_TEST_SCALE=full; else export WORKFLOW_TEST_SCALE=small; fi
    if [ "$v" = "$PRIMARY" ]; then
        echo "--- static checks (CPython $v) ---"
        "$venv/bin/python" -m mypy || status=1
        lint_paths=(src tests)
        for d in examples benchmarks; do [ -d "$d" ] && lint_paths+=("$d"); done
        "$venv/bin/python" -m ruff check "${lint_paths[@]}" || status=1
        "$venv/bin/python" -m ruff format --check "${lint_paths[@]}" || status=1
    fi
    echo "--- runtime suite, accelerated (CPython $v) ---"
    "$venv/bin/python" -m pytest -q --ignore=tests/typing || status=1
    echo "--- runtime suite, pure Python (CPython $v, COROUTINE_PURE=1) ---"
    export COROUTINE_PURE=1
    core="*/coroutine/_coroutine.py,*/coroutine/_context.py,*/coroutine/_worker.py"
    core="$core,*/coroutine/_signature.py,*/coroutine/_typecheck.py,*/coroutine/_run.py"
    core="$core,*/coroutine/_async.py,*/coroutine/_errors.py,*/coroutine/_yield.py"
    core="$core,*/coroutine/_lifecycle.py,*/coroutine/_driver.py,*/coroutine/_new.py"
    core="$core,*/coroutine/_accel.py,*/coroutine/_durability.py"
    if [ "$v" = "$PRIMARY" ]; then
        # Once, with greenlet-aware branch coverage of the core runtime (see .coveragerc).
        "$venv/bin/python" -m coverage erase
        "$venv/bin/python" -m coverage run -m pytest -q --ignore=tests/typing || status=1
        "$venv/bin/python" -m coverage report --skip-covered --include="$core" || status=1
    elif [ "$v" = "3.12" ]; then
        # Once, line coverage through sys.monitoring, exact across greenlet switches.
        export COVERAGE_CORE=sysmon COVERAGE_RCFILE=.coveragerc.lines
        "$venv/bin/python" -m coverage erase
        "$venv/bin/python" -m coverage run -m pytest -q --ignore=tests/typing || status=1
        "$venv/bin/python" -m coverage report --skip-covered --include="$core" || status=1
        unset COVERAGE_CORE COVERAGE_RCFILE
    else
        "$venv/bin/python" -m pytest -q --ignore=tests/typing || status=1
    fi
    unset COROUTINE_PURE
    if [ "$v" = "$PRIMARY" ] && [ -d tests/typing ]; then
        echo "--- typing suite (CPython $v) ---"
        PATH="$PWD/$venv/bin:$PATH" "$venv/bin/python" -m pytest -q tests/typing || status=1
    fi
done
exit "$status"
