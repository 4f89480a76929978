#!/usr/bin/env bash
# Builds every Python installer of the real-client matrix (issue 4) into DIR, one venv per client.
#
# Usage: scripts/setup-clients.sh [DIR]      (default: <repo>/target/clients)
#
# Layout, read by integration-tests/src/clients.rs:
#   DIR/<id>/venv/         the client's virtualenv
#   DIR/<id>/READY         written last, key=value lines (kind, version, python): the marker that
#                          makes a second run skip this client
#   DIR/<id>/SKIP          the reason, when the interpreter is missing on this machine
#   DIR/<id>/setup.log     what the build printed
#
# Idempotent: a client with READY is left alone; a half-built one is removed and rebuilt.
# "Newest" (pip-latest-*, uv, pip-tools, poetry) means newest when first built: remove a client's
# directory to pick up a newer release.
# Installs from PyPI under `env -i` so the machine's REQUESTS_CA_BUNDLE/PIP_* exports cannot leak
# in; builds run two at a time (the machine has two cores).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$REPO/target/clients}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
JOBS="${SETUP_CLIENTS_JOBS:-2}"
PYENV_ROOT_DIR="${PYENV_ROOT:-/root/.pyenv}"
if command -v pyenv >/dev/null 2>&1; then
    PYENV_ROOT_DIR="$(pyenv root)"
fi

# id | kind | interpreter (pyenv version prefix) | package spec installed into the venv
CLIENTS=(
    "pip-8.1.2-py3.6|pip|3.6|pip==8.1.2"
    "pip-9.0.3-py3.6|pip|3.6|pip==9.0.3"
    "pip-10.0.1-py3.6|pip|3.6|pip==10.0.1"
    "pip-18.1-py3.6|pip|3.6|pip==18.1"
    "pip-9.0.3-py2.7|pip|2.7|pip==9.0.3"
    "pip-20.3.4-py2.7|pip|2.7|pip==20.3.4"
    "pip-19.3.1-py3.11|pip|3.11|pip==19.3.1"
    "pip-20.3.4-py3.11|pip|3.11|pip==20.3.4"
    "pip-21.3.1-py3.11|pip|3.11|pip==21.3.1"
    "pip-22.3.1-py3.11|pip|3.11|pip==22.3.1"
    "pip-23.1.2-py3.11|pip|3.11|pip==23.1.2"
    "pip-23.3.2-py3.11|pip|3.11|pip==23.3.2"
    "pip-24.0-py3.11|pip|3.11|pip==24.0"
    "pip-24.3.1-py3.11|pip|3.11|pip==24.3.1"
    "pip-25.3-py3.11|pip|3.11|pip==25.3"
    "pip-latest-py3.11|pip|3.11|pip"
    "pip-latest-py3.13|pip|3.13|pip"
    "uv|uv|3.11|uv"
    "pip-tools|pip-tools|3.11|pip-tools"
    "poetry|poetry|3.11|poetry"
)

# The newest pyenv interpreter whose version is $1.N (e.g. 3.6 -> 3.6.15), or nothing.
find_python() {
    local prefix="$1" best
    best="$(ls -1 "$PYENV_ROOT_DIR/versions" 2>/dev/null |
        grep -E "^${prefix//./\\.}\.[0-9]+$" | sort -V | tail -1 || true)"
    if [ -n "$best" ] && [ -x "$PYENV_ROOT_DIR/versions/$best/bin/python" ]; then
        printf '%s' "$PYENV_ROOT_DIR/versions/$best/bin/python"
    fi
}

# A clean environment: nothing from this machine's CA/pip exports reaches the installers, except
# the site pip.conf, which only names the system bundle PyPI is reached with. HOME is a throwaway
# dir, so pip's cache goes with it (PIP_NO_CACHE_DIR=1 would crash pip 18.1 on Python 3.6).
clean() {
    env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$BUILD_HOME" LANG=C.UTF-8 \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=120 "$@"
}

# Python 2.7 has no venv module: a helper venv holds `virtualenv<20.22`, the last line that
# still creates 2.7 environments.
VIRTUALENV_HELPER="$DIR/.virtualenv-helper"
ensure_virtualenv_helper() {
    [ -f "$VIRTUALENV_HELPER/READY" ] && return 0
    local py311
    py311="$(find_python 3.11)"
    [ -n "$py311" ] || return 1
    rm -rf "$VIRTUALENV_HELPER"
    mkdir -p "$VIRTUALENV_HELPER"
    local BUILD_HOME="$VIRTUALENV_HELPER/home"
    mkdir -p "$BUILD_HOME"
    {
        clean "$py311" -m venv "$VIRTUALENV_HELPER/venv" &&
            clean "$VIRTUALENV_HELPER/venv/bin/python" -m pip install -q 'virtualenv<20.22'
    } >"$VIRTUALENV_HELPER/setup.log" 2>&1 || return 1
    touch "$VIRTUALENV_HELPER/READY"
}

build_client() {
    local id="$1" kind="$2" pyver="$3" spec="$4"
    local out="$DIR/$id"
    if [ -f "$out/READY" ]; then
        echo "$id: ready (cached)"
        return 0
    fi
    local py
    py="$(find_python "$pyver")"
    rm -rf "$out"
    mkdir -p "$out"
    if [ -z "$py" ]; then
        echo "interpreter Python $pyver not found under $PYENV_ROOT_DIR/versions" >"$out/SKIP"
        echo "$id: SKIP (no Python $pyver)"
        return 0
    fi
    local BUILD_HOME="$out/home"
    mkdir -p "$BUILD_HOME"
    local venv="$out/venv" log="$out/setup.log" start=$SECONDS
    # Steps are chained with && because `set -e` is inert inside a tested subshell.
    if ! (
        if [ "$pyver" = 2.7 ]; then
            # --no-download: virtualenv's embedded pip (20.3.4 for 2.7) bootstraps, then pip
            # moves itself to the wanted version.
            [ -f "$VIRTUALENV_HELPER/READY" ] &&
                clean "$VIRTUALENV_HELPER/venv/bin/virtualenv" -p "$py" --no-download \
                    --no-wheel --no-setuptools "$venv"
        else
            clean "$py" -m venv "$venv"
        fi &&
            if [ "$kind" = pip ]; then
                clean "$venv/bin/python" -m pip install -U "$spec"
            else
                clean "$venv/bin/python" -m pip install -U pip &&
                    clean "$venv/bin/python" -m pip install -U "$spec"
            fi
    ) >"$log" 2>&1; then
        echo "$id: FAILED after $((SECONDS - start))s (see $log)"
        return 1
    fi
    local version python
    python="$(clean "$venv/bin/python" -c 'import platform; print(platform.python_version())')"
    case "$kind" in
    pip) version="$(clean "$venv/bin/python" -c 'import pip; print(pip.__version__)')" ;;
    uv) version="$(clean "$venv/bin/uv" --version | awk '{print $2}')" ;;
    pip-tools) version="$(clean "$venv/bin/pip-compile" --version | awk '{print $NF}')" ;;
    poetry) version="$(clean "$venv/bin/poetry" --version | sed -E 's/.*version ([^ )]+).*/\1/')" ;;
    esac
    if [ -z "$version" ]; then
        echo "$id: FAILED: could not read the installed version (see $log)"
        return 1
    fi
    # The pip version pip-tools runs with matters as much as its own.
    local extra=""
    if [ "$kind" = pip-tools ]; then
        extra="pip=$(clean "$venv/bin/python" -c 'import pip; print(pip.__version__)')"
    fi
    rm -rf "$BUILD_HOME"
    {
        echo "id=$id"
        echo "kind=$kind"
        echo "version=$version"
        echo "python=$python"
        [ -n "$extra" ] && echo "$extra"
    } >"$out/READY.tmp"
    mv "$out/READY.tmp" "$out/READY"
    echo "$id: built $kind $version on Python $python in $((SECONDS - start))s"
}

main() {
    local total_start=$SECONDS
    echo "setup-clients: building ${#CLIENTS[@]} clients into $DIR ($JOBS at a time)"
    # The 2.7 clients share the virtualenv helper: build it once before the parallel phase.
    if [ -n "$(find_python 2.7)" ]; then
        ensure_virtualenv_helper || echo "setup-clients: the virtualenv helper failed (see $VIRTUALENV_HELPER/setup.log)"
    fi
    local status_dir
    status_dir="$(mktemp -d)"
    local entry id kind pyver spec running=0
    for entry in "${CLIENTS[@]}"; do
        IFS='|' read -r id kind pyver spec <<<"$entry"
        (
            if build_client "$id" "$kind" "$pyver" "$spec"; then
                : >"$status_dir/$id.ok"
            fi
        ) &
        running=$((running + 1))
        if [ "$running" -ge "$JOBS" ]; then
            wait -n || true
            running=$((running - 1))
        fi
    done
    wait || true
    local ok=0 skipped=0 failed=0 failed_ids=""
    for entry in "${CLIENTS[@]}"; do
        IFS='|' read -r id _ _ _ <<<"$entry"
        if [ -f "$DIR/$id/SKIP" ]; then
            skipped=$((skipped + 1))
        elif [ -f "$status_dir/$id.ok" ]; then
            ok=$((ok + 1))
        else
            failed=$((failed + 1))
            failed_ids="$failed_ids $id"
        fi
    done
    rm -rf "$status_dir"
    echo "setup-clients: $ok ready, $skipped skipped, $failed failed${failed_ids:+ (}${failed_ids# }${failed_ids:+)} in $((SECONDS - total_start))s"
    [ "$failed" -eq 0 ]
}

main
