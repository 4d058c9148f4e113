#!/usr/bin/env bash
# Build the prototype for the given interpreter (default: python3): ./build.sh PYTHON
set -euo pipefail
cd "$(dirname "$0")"
py="${1:-python3}"
inc="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
ext="$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
gcc -O2 -shared -fPIC -I"$inc" -o "_fastpath$ext" _fastpath.c
echo "built _fastpath$ext"
