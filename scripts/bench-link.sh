#!/usr/bin/env bash
# The page over a simulated link (issue 18): the servers (nginx, mitmproxy, pipgate) run in a
# network namespace of their own, the client (pipgate-bench) outside it, joined by a veth pair
# whose both ends tc netem shapes to RATE and DELAY each way, so every byte between client and
# server crosses the link (round trip: 2 × DELAY). pipgate and nginx talk over the namespace's
# loopback, as a proxy beside its upstream would. Needs root (ip netns, tc).
#
# Usage: scripts/bench-link.sh [--rate 100mbit] [--delay 10ms] [pipgate-bench args...]
#   e.g. scripts/bench-link.sh --reps 5 --pipgate-config '[limits]\npage_compression = "gzip"'
# Builds like scripts/bench.sh; expects nginx and the mitmproxy venv that `bench.sh --nginx`
# installs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
RATE=100mbit
DELAY=10ms
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE="$2"; shift 2 ;;
        --delay) DELAY="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
NS=pgbench$$
HOST_IF=pgb$$a
NS_IF=pgb$$b
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$HOST_IF" 2>/dev/null || true
}
trap cleanup EXIT

cargo build --release -p pipgate-proxy -p pipgate-bench >&2
ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "$NS_IF"
ip link set "$NS_IF" netns "$NS"
ip addr add 10.231.0.1/30 dev "$HOST_IF"
ip link set "$HOST_IF" up
ip -n "$NS" addr add 10.231.0.2/30 dev "$NS_IF"
ip -n "$NS" link set "$NS_IF" up
ip -n "$NS" link set lo up
# Each direction: DELAY, and RATE (netem's own rate shaping, so its queue is the bottleneck's).
# A kernel without sch_netem (the Firecracker VMs this was written on) gets RATE alone, from
# tbf: the figures then hold no propagation delay, which only costs the bigger answer more
# (more round trips of TCP slow start).
if tc qdisc add dev "$HOST_IF" root netem delay "$DELAY" rate "$RATE" limit 100000 2>/dev/null; then
    tc -n "$NS" qdisc add dev "$NS_IF" root netem delay "$DELAY" rate "$RATE" limit 100000
    shaped="$RATE and $DELAY each way (tc netem)"
else
    tc qdisc add dev "$HOST_IF" root tbf rate "$RATE" burst 64kb latency 200ms
    tc -n "$NS" qdisc add dev "$NS_IF" root tbf rate "$RATE" burst 64kb latency 200ms
    shaped="$RATE each way (tc tbf; no sch_netem in this kernel, so no added delay)"
fi
echo "bench-link.sh: client ⇄ servers over a veth pair, $shaped; ping RTT $(ping -c 3 -q 10.231.0.2 | tail -1 | cut -d/ -f5) ms" >&2

VENV="$TARGET/bench-mitmproxy"
PIPGATE_BENCH_NETNS="$NS" PIPGATE_BENCH_IP=10.231.0.2 \
    "$TARGET/release/pipgate-bench" --pipgate "$TARGET/release/pipgate" \
    --nginx "$(command -v nginx || echo /usr/sbin/nginx)" --mitmdump "$VENV/bin/mitmdump" \
    --nginx-only --only page ${args[@]+"${args[@]}"}
