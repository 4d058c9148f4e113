#!/usr/bin/env bash
# Set up a virtualenv in .venv with the library installed, and run the retrofit demo.
# The install is skipped when .venv is current: .venv/.installed holds the checksum of the
# pyproject.toml it was installed from (the install is editable, so source edits need none).
set -euo pipefail
cd "$(dirname "$0")/.."
py=""
for p in python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 13)' 2>/dev/null; then
        py="$(command -v "$p")"
        break
    fi
done
[ -n "$py" ] || { echo "demo.sh: needs CPython 3.10 to 3.13 on PATH" >&2; exit 1; }
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=.venv/.installed
want="$(cksum < pyproject.toml)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e .
    printf '%s\n' "$want" > "$stamp"
fi
exec .venv/bin/python examples/retrofit.py
