# Shared set-up for scripts/demo and scripts/test: a project venv with everything installed.
# Usage: source scripts/_env.sh [python-version]   (sets $VENV and $PY)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYVER=${1:-3.11}
VENV=${DURABLE_EXT_VENV:-$ROOT/.venv}
[ "$PYVER" = "3.11" ] || VENV=$ROOT/.venv-$PYVER
PY=$VENV/bin/python

find_python() {
    for cand in "python$PYVER" "$HOME/.pyenv/versions/$PYVER"*/bin/python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$cand"; return 0
        fi
    done
    echo "no Python $PYVER found; install it (e.g. 'pyenv install $PYVER')" >&2
    return 1
}

ensure_venv() {  # ensure_venv EXTRAS
    local extras=$1 stamp
    if [ ! -x "$PY" ]; then
        "$(find_python)" -m venv "$VENV"
        "$PY" -m pip install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
    fi
    stamp=$VENV/.durable-ext-$extras-$(cat "$ROOT/pyproject.toml" | sha1sum | cut -c1-12)
    if [ ! -f "$stamp" ]; then
        "$PY" -m pip install -q -e "$ROOT[$extras]" 2>&1 | grep -v 'is ignored' || true
        "$PY" -c 'import durable_ext' # fail early if the install did not work
        touch "$stamp"
    fi
}
