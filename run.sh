#!/usr/bin/env bash
# fpgaflow's two entry points for a fresh Debian machine with Python 3.11:
#   ./run.sh demo   set everything up, then run the main job (the end-to-end demo)
#   ./run.sh test   set everything up, then lint and run the default test suite
# Setup is idempotent: Debian packages and the virtualenv are only installed when
# missing or when pyproject.toml / constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")"

DEB_PACKAGES=(g++ make nlohmann-json3-dev ghdl yosys)
VENV=${FPGAFLOW_VENV:-.venv}

log() { printf '[run.sh] %s\n' "$*" >&2; }

setup_debian() {
    local missing=() p
    for p in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "installing Debian packages: ${missing[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

find_python() {
    local c
    for c in "${PYTHON:-}" python3.11 python3; do
        [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 || continue
        if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    log "Python 3.11 not found (set PYTHON=/path/to/python3.11)"; return 1
}

setup_python() {
    local want stamp="$VENV/.fpgaflow-installed"
    want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    local py; py=$(find_python)
    log "creating $VENV with $py and installing fpgaflow with its pinned front end (a few minutes the first time)"
    "$py" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[frontend,node,speed,test,bench]"
    echo "$want" > "$stamp"
}

setup() { setup_debian; setup_python; }

case "${1:-}" in
    setup) setup ;;
    demo)  setup; shift; exec "$VENV/bin/fpgaflow" demo "$@" ;;
    test)  setup; shift
           "$VENV/bin/ruff" check .
           "$VENV/bin/ruff" format --check .
           exec "$VENV/bin/python" -m pytest -n 2 "$@" ;;
    *) echo "usage: ./run.sh demo|test|setup [args]" >&2; exit 2 ;;
esac
