#!/usr/bin/env node
// Runs every compiled test file (packages/*/dist/**/*.test.js, test/dist/**/*.test.js)
// with node:test. Extra arguments are passed to `node --test` (e.g. --test-name-pattern).
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const files = [];
for (const pkg of readdirSync(join(root, 'packages'))) collect(join(root, 'packages', pkg, 'dist'), files);
collect(join(root, 'test', 'dist'), files);
const only = process.env.TEST_FILTER;
const selected = only ? files.filter((f) => f.includes(only)) : files;
if (selected.length === 0) {
  console.error('run-tests: no test files found (did the build run?)');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...process.argv.slice(2), ...selected], {
  stdio: 'inherit',
});
// Workers (issue 21): the end-to-end files that exercise what `Workers 2` changes — one listening
// socket shared by two processes, the limits counted by the primary, the runner and the network
// facts reached through it, SIGHUP/SIGTERM passed on, MetricsListen summed — run a second time with
// ASMTPD_TEST_WORKERS=2 (test/support/daemon.ts). Not the whole of test/e2e, to keep CI short; the
// whole was run with Workers 2 once by hand (docs/performance.md "Workers"). TEST_WORKERS2=0 skips.
const WORKERS2 = [
  'e2e/limits.test.js', // MaxClients, MaxClientsPerIP, SMTPTimeout, MaxErrors over two workers
  'e2e/faults-signals.test.js', // SIGHUP every 250 ms and SIGTERM with 30 sessions in DATA
  'e2e/config-reload.test.js', // SIGHUP's new configuration in every worker
  'e2e/policy.test.js', // script decisions through the primary's one runner
  'e2e/body-tests.test.js', // body tests: the runner reads the worker's spool file
  'e2e/auth.test.js', // AuthMaxFailures counted by the primary; STARTTLS in workers
  'e2e/blocklist.test.js', // dictionary-attack blocks seen by every worker (state database)
  'e2e/metrics.test.js', // MetricsListen: one endpoint, the figures of every process summed
  'e2e/synfp-loopback.test.js', // the SYN table of the network facts process reached from a worker
  'e2e/privileges.test.js', // every worker gives up root
  'e2e/half-close.test.js', // the front end's socket handling in a worker
];
let status = r.status ?? 1;
if (!only && process.env.TEST_WORKERS2 !== '0') {
  const twice = selected.filter((f) => WORKERS2.some((w) => f.endsWith(`test/dist/${w}`)));
  console.log(`run-tests: ${twice.length} end-to-end files again with ASMTPD_TEST_WORKERS=2`);
  const w = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...process.argv.slice(2), ...twice], {
    stdio: 'inherit',
    env: { ...process.env, ASMTPD_TEST_WORKERS: '2' },
  });
  if (status === 0) status = w.status ?? 1;
}
process.exit(status);
