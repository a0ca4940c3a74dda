#!/bin/sh
# bench/spf/run.sh — SPF benchmark: @asmtpd/spf vs pyspf (python3-spf) vs libspf2 (spfquery's
# library), same rfc7208 zone, same loopback DNS server (UDP 127.0.0.1:53 + DoH over http).
# Needs root (port 53, a private mount namespace whose /etc/resolv.conf points at 127.0.0.1 —
# the host's resolv.conf is untouched) and: apt-get install python3-spf spfquery libspf2-dev.
# Usage: bench/spf/run.sh [--repeat N] [--rounds N] [--concurrency N] [--parallel N] [--json FILE]
#        BENCH=query-cost bench/spf/run.sh [--count N] [--rounds N]   (cost of one query, query-cost.mjs)
set -eu
cd "$(dirname "$0")/../.."
npx tsc -b packages/spf
cc -O2 -o /tmp/asmtpd-bench-libspf2 bench/spf/libspf2-driver.c -lspf2
RESOLV=$(mktemp /tmp/asmtpd-bench-resolv.XXXXXX)
printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:1\n' > "$RESOLV"
trap 'rm -f "$RESOLV"' EXIT
unshare -m --propagation private sh -c "mount --bind '$RESOLV' /etc/resolv.conf && exec node bench/spf/${BENCH:-bench}.mjs $*"
