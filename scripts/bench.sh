#!/usr/bin/env bash
# pipgate's performance benchmark (issue 5): one command, everything on 127.0.0.1.
#
# Usage: scripts/bench.sh [--reps N] [--quick] [--origin-http1] [--one-thread-client] [--pipgate-log FILTER]
#                         [--only keepalive,handshake,download,latency,page,gib,mint,root,auth,idle]
#        scripts/bench.sh --nginx [--nginx-only] [--no-mitmproxy] ...
#        BENCH_CRITERION=0 scripts/bench.sh ...   skips the criterion figures at the end
#
# --nginx adds the issue-18 table after the own-origin one (--nginx-only: that table alone):
# Debian's nginx as the origin (installed with apt-get when missing; TLS, HTTP/2 with its
# default settings, the page pre-gzipped and served by gzip_static), every load direct,
# through mitmproxy 11 (mitmdump, regular proxy mode, pass-through; installed from PyPI into a
# venv under the target dir when missing) and through pipgate.
#
# Builds pipgate and pipgate-bench in release mode (CARGO_TARGET_DIR, default <repo>/target),
# then pipgate-bench starts a local TLS origin (Rust: hyper + rustls, h2 and http/1.1) serving a
# 200 B file, a 10 MiB file, a generated 1 GiB stream, a 2.2 MB / 4,700-link project page (PyPI markup) and a
# 57 MB / 600,000-name root listing, starts pipgate with [upstream.resolve] pointing pypi.org and files.pythonhosted.org at it, runs
# every load through pipgate and directly (interleaved, several repetitions), reads pipgate's
# CPU time and peak RSS from /proc, and prints the table (median [min–max], ratio to direct,
# the issue's targets). Nothing to install: the load generator and the origin are Rust.
# Then, unless BENCH_CRITERION=0, the criterion benches of policy (pages) and certs (mint).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"

echo "bench.sh: building pipgate and pipgate-bench (release) into $TARGET" >&2
cargo build --release -p pipgate-proxy -p pipgate-bench >&2

# 2,000 idle connections need ~4,000 descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 8192 ]; then
    echo "bench.sh: warning: only $(ulimit -n) file descriptors; the idle-connections load may fail" >&2
fi

args=()
nginx=0
mitm=1
for a in "$@"; do
    case "$a" in
        --nginx) nginx=1 ;;
        --nginx-only) nginx=1; args+=("$a") ;;
        --no-mitmproxy) mitm=0 ;;
        *) args+=("$a") ;;
    esac
done
if [ "$nginx" = 1 ]; then
    NGINX="$(command -v nginx || true)"
    [ -n "$NGINX" ] || NGINX=/usr/sbin/nginx
    if [ ! -x "$NGINX" ]; then
        echo "bench.sh: installing nginx (Debian package)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2
    fi
    # The package's own service is not wanted: the bench runs nginx with a config of its own.
    args+=(--nginx "$NGINX")
    if [ "$mitm" = 1 ]; then
        VENV="$TARGET/bench-mitmproxy"
        if [ ! -x "$VENV/bin/mitmdump" ]; then
            echo "bench.sh: installing mitmproxy 11 into $VENV" >&2
            python3 -m venv "$VENV" >&2
            "$VENV/bin/pip" install --quiet 'mitmproxy>=11,<12' >&2
        fi
        args+=(--mitmdump "$VENV/bin/mitmdump")
    fi
fi

"$TARGET/release/pipgate-bench" --pipgate "$TARGET/release/pipgate" ${args[@]+"${args[@]}"}

if [ "${BENCH_CRITERION:-1}" != 0 ]; then
    echo
    echo "criterion (one core, in process):"
    for b in "pipgate-policy pages" "pipgate-certs mint"; do
        set -- $b
        cargo bench -p "$1" --bench "$2" -- --noplot 2>/dev/null \
            | grep -E '^[A-Za-z0-9_/ -]+$|time:|thrpt:' | sed 's/^/    /'
    done
fi
