# Sourced by the scripts: find_python 3.X prints the path of a CPython 3.X, or nothing.
# It looks on PATH, then in pyenv's versions ($PYENV_ROOT, by default ~/.pyenv).

find_python() {  # print the path of a CPython $1 (e.g. 3.12), or nothing
    local v="$1" p
    for p in "python$v" "${PYENV_ROOT:-$HOME/.pyenv}/versions/$v".*/bin/python; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$v'.split('.')))" 2>/dev/null; then
            command -v "$p"
            return
        fi
    done
}
