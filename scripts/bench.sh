#!/usr/bin/env bash
# pipgate's performance benchmark (issue 5): one command, everything on 127.0.0.1.
#
# Usage: scripts/bench.sh [--reps N] [--quick] [--origin-http1] [--pipgate-log FILTER]
#                         [--only keepalive,handshake,download,latency,page,gib,mint,root,auth,idle]
#        BENCH_CRITERION=0 scripts/bench.sh ...   skips the criterion figures at the end
#
# Builds pipgate and pipgate-bench in release mode (CARGO_TARGET_DIR, default <repo>/target),
# then pipgate-bench starts a local TLS origin (Rust: hyper + rustls, h2 and http/1.1) serving a
# 200 B file, a 10 MiB file, a generated 1 GiB stream, a 2.2 MB / 8,000-link project page and a
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

"$TARGET/release/pipgate-bench" --pipgate "$TARGET/release/pipgate" "$@"

if [ "${BENCH_CRITERION:-1}" != 0 ]; then
    echo
    echo "criterion (one core, in process):"
    for b in "pipgate-policy pages" "pipgate-certs mint"; do
        set -- $b
        cargo bench -p "$1" --bench "$2" -- --noplot 2>/dev/null \
            | grep -E '^[A-Za-z0-9_/ -]+$|time:|thrpt:' | sed 's/^/    /'
    done
fi
