#!/usr/bin/env bash
# Installs the system tools the test suite drives, only when one is missing: openssl (certificate
# checks), iproute2 + nftables/iptables (transparent-mode tests in network namespaces), systemd-analyze
# (unit file check), chromium (the admin dashboard, rendered headless). Idempotent and quiet when everything is there.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v curl >/dev/null || need+=(curl)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-system: missing ${need[*]}; run as root or install them (tests that need them skip)" >&2
    exit 0
  fi
  echo "setup-system: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$(dirname "$0")/../target"
echo "setup-system: ok"
