#!/bin/sh
# bench/fair setup (by hand, as root, once per machine): Debian's unbound (the caching resolver
# every server of the run resolves through; its service is not started: the run starts its own
# on loopback) and Haraka 3.3.4 into bench/fair/haraka/ with npm from its own lockfile (outside
# the pnpm workspace: Haraka installs only with the npm overrides in haraka/package.json).
# Postfix (smtp-source, smtp-sink, the private instance) comes with .ci/run's packages.
set -eu
cd "$(dirname "$0")"
if ! command -v unbound >/dev/null 2>&1 && ! test -x /usr/sbin/unbound; then
  apt-get install -y --no-install-recommends unbound
fi
cd haraka
npm ci --no-audit --no-fund --ignore-scripts
node node_modules/Haraka/bin/haraka --version
