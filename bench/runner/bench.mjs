#!/usr/bin/env node
// bench/runner/bench.mjs — raw Node spawn of `/bin/sh -c true` vs the avenger runner running a
// trivial `accept` script as a real non-root user (created for the run, removed afterwards).
//
//   cd /work/main && npx tsc -b packages/avenger-runner && node bench/runner/bench.mjs [N] [ROUNDS]
//
// Prints requests/s, p50 and p99 latency for concurrency 1, 2 and 8, for the default runner
// (perl spawner) and, as root, for the runner with the setpriv launcher. Each figure is the median
// of ROUNDS rounds (default 3) of N requests (default 600); raw and runner rounds alternate so
// that background load hits both alike. Needs root (useradd); without root the runner case runs
// as the invoking user.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, chmodSync, chownSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startRunner } from '../../packages/avenger-runner/dist/index.js';

const N = Number(process.argv[2] ?? 600);
const ROUNDS = Number(process.argv[3] ?? 3);
const CONCURRENCY = [1, 2, 8];
const isRoot = process.getuid() === 0;

function makeUser() {
  const base = mkdtempSync('/tmp/asmtpd-bench-');
  chmodSync(base, 0o755);
  const home = join(base, 'home');
  mkdirSync(join(home, '.avenger'), { recursive: true });
  writeFileSync(join(home, '.avenger', 'rcpt'), 'accept\n');
  if (!isRoot) return { base, home, uid: process.getuid(), gid: process.getgid(), groups: [process.getgid()], name: 'self' };
  const name = `avb${process.pid % 100000}`;
  execFileSync('useradd', ['-M', '-d', home, '-s', '/usr/sbin/nologin', '-U', name]);
  const uid = Number(execFileSync('id', ['-u', name]).toString());
  const gid = Number(execFileSync('id', ['-g', name]).toString());
  for (const p of [home, join(home, '.avenger'), join(home, '.avenger', 'rcpt')]) chownSync(p, uid, gid);
  chmodSync(home, 0o700);
  return { base, home, uid, gid, groups: [gid], name };
}

function removeUser(user) {
  if (isRoot) execFileSync('userdel', [user.name]);
  rmSync(user.base, { recursive: true, force: true });
}

function rawSpawn() {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', 'true']);
    child.stdout.resume();
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', resolve);
  });
}

async function measure(task, concurrency) {
  const latencies = [];
  let started = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started++ < N) {
        const s = performance.now();
        await task();
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pick = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return { rate: N / seconds, p50: pick(0.5), p99: pick(0.99) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const user = makeUser();
const runner = await startRunner();
const setprivRunner = await startRunner({ launcher: 'setpriv' });
try {
  const request = {
    kind: 'rcpt', uid: user.uid, gid: user.gid, groups: user.groups, user: user.name, home: user.home,
    dir: join(user.home, '.avenger'), candidates: ['rcpt'], env: { SENDER: 'a@b.example', RECIPIENT: `${user.name}@example` },
    timeoutMs: 10_000,
  };
  const check = await runner.run(request);
  if (check.kind !== 'ran' || check.decision?.verb !== 'accept') throw new Error(`unexpected result ${JSON.stringify(check)}`);
  const runScriptWith = (client) => async () => {
    const r = await client.run(request);
    if (r.kind !== 'ran' || r.decision?.verb !== 'accept') throw new Error(JSON.stringify(r));
  };
  const runScript = runScriptWith(runner);
  const runSetpriv = runScriptWith(setprivRunner);
  console.log(`node ${process.version}, ${N} requests x ${ROUNDS} rounds, runner privileged=${runner.privileged}, user uid ${user.uid}`);
  console.log('case                     conc   req/s   p50 ms   p99 ms');
  for (const c of CONCURRENCY) {
    const raw = [], run = [], viaSetpriv = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await measure(rawSpawn, c));
      run.push(await measure(runScript, c));
      if (isRoot) viaSetpriv.push(await measure(runSetpriv, c));
    }
    const row = (name, rs) =>
      `${name.padEnd(24)} ${String(c).padStart(4)} ${median(rs.map((x) => x.rate)).toFixed(0).padStart(7)} ${median(rs.map((x) => x.p50)).toFixed(2).padStart(8)} ${median(rs.map((x) => x.p99)).toFixed(2).padStart(8)}`;
    console.log(row("spawn('/bin/sh -c true')", raw));
    const ratio = (rs) => `${((median(rs.map((x) => x.rate)) / median(raw.map((x) => x.rate))) * 100).toFixed(0)}%`;
    console.log(`${row('runner rcpt accept', run)}   ${ratio(run)} of raw`);
    if (isRoot) console.log(`${row('  same, setpriv launcher', viaSetpriv)}   ${ratio(viaSetpriv)} of raw`);
  }
} finally {
  await runner.close();
  await setprivRunner.close();
  removeUser(user);
}
