#!/usr/bin/env bash
# Set up and run the whole test suite, from a clean clone, on every CPython 3.10-3.13 found.
#
#   ./scripts/test.sh            every version found (one is enough on a developer's machine)
#   ./scripts/test.sh 3.12       one version only
#   ./scripts/test.sh --check    say which versions and services were found, run nothing
#
# Each version gets its own virtualenv under .venv-test/ with the package installed
# editable with its dev extra (which compiles the C accelerator, coroutine._speedups). The
# runtime suite runs twice on every version: accelerated, then pure Python with
# COROUTINE_PURE=1 (tests/test_speedups.py fails the first run if the extension did not
# load, so CI cannot test the pure path twice); coverage is measured on the pure run, whose
# Python code is the reference the extension compiles. The static checks
# (mypy --strict, ruff, the typing and plugin suites) and the coverage report run once, on
# PRIMARY (3.11 by default, else the oldest version found), since they do not depend on the
# interpreter running them; so does the documentation site's build (docs/conf.py: Sphinx
# with -W, into a temporary directory), which fails on a broken link or an undocumented
# public name.
#
# Services. The workflow tests use Redis 127.0.0.1:6379, PostgreSQL 127.0.0.1:5432 (database
# `test`, trust auth) and RabbitMQ 127.0.0.1:5672 (guest/guest) over real connections. On a
# developer's machine, a test whose service is not running is skipped, and the run ends with
# one line naming each missing service and how to start it (tests/services.py).
#
# CI (CI=true, set by .ci/run): all four CPythons and all three services are required; a
# missing one fails the run at once, by name.
#
# The workflow layer's suite (tests/workflow: real worker processes, SIGKILL and SIGSTOP, the
# services) runs on PRIMARY, accelerated at full size and on the pure Python core at a
# quarter of it (WORKFLOW_TEST_SCALE=small, never skipped): it has one implementation
# itself, and the core under it runs its own suites on both implementations on every
# version. (The workflow suite on every version would take the run past CI's budget of 45
# minutes on two cores: about 4 minutes each.)
#
# Speed: every version's venv is set up at once; each pytest run uses one process per core
# (pytest-xdist, TEST_JOBS=N to choose; coverage follows its workers).
set -euo pipefail
cd "$(dirname "$0")/.."

check_only=0
if [ "${1:-}" = "--check" ]; then check_only=1; shift; fi
case "${CI:-}" in 1|true|TRUE|yes) ci=1 ;; *) ci=0 ;; esac

PRIMARY="${PRIMARY:-3.11}"
wanted=("${@:-3.10 3.11 3.12 3.13}")
read -r -a wanted <<<"${wanted[*]}"

source scripts/_pythons.sh

declare -A pythons=()
missing=()
for v in "${wanted[@]}"; do
    p="$(find_python "$v" || true)"
    if [ -n "$p" ]; then pythons[$v]="$p"; else missing+=("$v"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$ci" = 1 ]; then
        echo "test.sh: CI=true requires CPython ${wanted[*]}; not found: ${missing[*]} (looked on PATH and in ${PYENV_ROOT:-$HOME/.pyenv}/versions)" >&2
        exit 1
    fi
    echo "test.sh: CPython ${missing[*]} not found, skipped"
fi
if [ "${#pythons[@]}" -eq 0 ]; then
    echo "test.sh: no CPython 3.10-3.13 found on PATH or in ${PYENV_ROOT:-$HOME/.pyenv}/versions" >&2
    exit 1
fi
if [ -z "${pythons[$PRIMARY]:-}" ]; then
    PRIMARY="$(printf '%s\n' "${!pythons[@]}" | sort -V | head -n1)"
fi
echo "test.sh: CPython $(printf '%s\n' "${!pythons[@]}" | sort -V | tr '\n' ' ')(primary $PRIMARY)"

if [ "$ci" = 1 ]; then  # fail now, by name, rather than in every test that needs a service
    if ! "${pythons[$PRIMARY]}" tests/services.py >&2; then
        echo "test.sh: CI=true requires every service above" >&2
        exit 1
    fi
fi
[ "$check_only" = 1 ] && exit 0

jobs="${TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}"
par=()  # one pytest process per core; a file's tests stay together, in order
if [ "$jobs" -gt 1 ]; then par=(-n "$jobs" --dist loadfile); fi
versions=$(printf '%s\n' "${!pythons[@]}" | sort -V)

setup() {  # the version's venv with what the package needs (not the package: see below)
    local v="$1" venv=".venv-test/$1"
    if [ ! -x "$venv/bin/python" ]; then "${pythons[$v]}" -m venv "$venv"; fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r .venv-test/requirements.txt
}

status=0
# Every version's venv at once: the installs wait on the network and the disk more than on a CPU.
mkdir -p .venv-test
# What '.[dev,workflow]' asks for, its extras that name the package itself expanded, so that
# the venvs fill at once; the package itself is then installed editable into each in turn
# (the builds share the tree's egg-info and build directories).
"${pythons[$PRIMARY]}" - >.venv-test/requirements.txt <<'PY'
import re, sys
if sys.version_info < (3, 11):
    from pip._vendor import tomli as tomllib  # a 3.10-only machine: pip's copy
else:
    import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras, seen, out = project["optional-dependencies"], set(), list(project["dependencies"])
todo = ["dev", "workflow"]
while todo:
    name = todo.pop()
    if name in seen:
        continue
    seen.add(name)
    for req in extras[name]:
        own = re.fullmatch(project["name"] + r"\[([\w,\s-]+)\]", req.strip())
        if own:
            todo += [e.strip() for e in own.group(1).split(",")]
        elif req not in out:
            out.append(req)
print("\n".join(out))
PY
declare -A setting_up=()
for v in $versions; do
    setup "$v" >".venv-test/setup-$v.log" 2>&1 &
    setting_up[$v]=$!
done
ready=()
for v in $versions; do
    if wait "${setting_up[$v]}"; then ready+=("$v"); else
        echo "test.sh: setting up CPython $v failed:" >&2
        cat ".venv-test/setup-$v.log" >&2
        status=1
    fi
done
for v in "${ready[@]}"; do  # one at a time: see above
    ".venv-test/$v/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e . \
        || { echo "test.sh: installing the package on CPython $v failed" >&2; exit 1; }
done
if [ "${#ready[@]}" -gt 0 ] && [[ ! " ${ready[*]} " =~ " $PRIMARY " ]]; then
    PRIMARY="$(printf '%s\n' "${ready[@]}" | sort -V | head -n1)"  # its setup failed
fi

core="*/coroutine/_coroutine.py,*/coroutine/_context.py,*/coroutine/_worker.py"
core="$core,*/coroutine/_signature.py,*/coroutine/_typecheck.py,*/coroutine/_run.py"
core="$core,*/coroutine/_async.py,*/coroutine/_errors.py,*/coroutine/_yield.py"
core="$core,*/coroutine/_lifecycle.py,*/coroutine/_driver.py,*/coroutine/_new.py"
core="$core,*/coroutine/_accel.py,*/coroutine/_durability.py"

covered() {  # coverage of the core runtime, over the suites below the workflow layer
    local venv="$1"
    "$venv/bin/python" -m coverage erase || status=1
    "$venv/bin/python" -m coverage run -m pytest -q "${par[@]}" --ignore=tests/typing \
        --ignore=tests/workflow || status=1
    "$venv/bin/python" -m coverage combine -q || status=1
    "$venv/bin/python" -m coverage report --skip-covered --include="$core" || status=1
}

for v in "${ready[@]}"; do
    venv=".venv-test/$v"
    echo "=== CPython $v (${pythons[$v]}) ==="
    if [ "$v" = "$PRIMARY" ]; then export WORKFLOW_TEST_SCALE=full; else export WORKFLOW_TEST_SCALE=small; fi
    if [ "$v" = "$PRIMARY" ]; then
        echo "--- static checks (CPython $v) ---"
        "$venv/bin/python" -m mypy || status=1
        lint_paths=(src tests)
        for d in examples benchmarks docs/conf.py docs/_ext; do [ -e "$d" ] && lint_paths+=("$d"); done
        "$venv/bin/python" -m ruff check "${lint_paths[@]}" || status=1
        "$venv/bin/python" -m ruff format --check "${lint_paths[@]}" || status=1
        echo "--- documentation site (CPython $v): Sphinx, warnings as errors ---"
        docs_out="$(mktemp -d)"  # never inside the tree
        "$venv/bin/python" -m sphinx -W --keep-going -q -c docs -b html . "$docs_out" || status=1
        rm -rf "$docs_out"
    fi
    echo "--- runtime suite, accelerated (CPython $v) ---"
    # The workflow layer (tests/workflow: real worker processes and services, minutes of
    # waiting) on PRIMARY; the core's suites on every version.
    skip_workflow=(--ignore=tests/workflow)
    if [ "$v" = "$PRIMARY" ]; then skip_workflow=(); fi
    "$venv/bin/python" -m pytest -q "${par[@]}" --ignore=tests/typing "${skip_workflow[@]}" || status=1
    # The pure Python run: the whole suite on PRIMARY (the workflow layer at the small
    # scale); elsewhere all but the workflow layer.
    echo "--- runtime suite, pure Python (CPython $v, COROUTINE_PURE=1) ---"
    export COROUTINE_PURE=1
    if [ "$v" = "$PRIMARY" ]; then
        # Greenlet-aware branch coverage of the core runtime (see .coveragerc).
        covered "$venv"
        WORKFLOW_TEST_SCALE=small "$venv/bin/python" -m pytest -q "${par[@]}" tests/workflow || status=1
    elif [ "$v" = "3.12" ]; then
        # Line coverage through sys.monitoring, exact across greenlet switches.
        export COVERAGE_CORE=sysmon COVERAGE_RCFILE=.coveragerc.lines
        covered "$venv"
        unset COVERAGE_CORE COVERAGE_RCFILE
    else
        "$venv/bin/python" -m pytest -q "${par[@]}" --ignore=tests/typing \
            --ignore=tests/workflow || status=1
    fi
    unset COROUTINE_PURE
    if [ "$v" = "$PRIMARY" ] && [ -d tests/typing ]; then
        echo "--- typing suite (CPython $v) ---"
        PATH="$PWD/$venv/bin:$PATH" "$venv/bin/python" -m pytest -q "${par[@]}" tests/typing || status=1
    fi
done
exit "$status"
