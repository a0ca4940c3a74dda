#!/usr/bin/env node
// bench/runner/bench.mjs — the cost of one script decision: raw Node spawn of `/bin/sh -c true`
// against the avenger runner running a one-line `accept` script as a real non-root user (created
// for the run, removed afterwards), and optionally against another build of the runner.
//
//   npx tsc -b packages/avenger-runner && node bench/runner/bench.mjs [--n N] [--rounds R] [--old CHECKOUT] [--no-script]
//
// --no-script: the user has no ~/.avenger (the common case at RCPT): the runner answers `none`
// without starting anything.
// --old CHECKOUT: also the runner of another checkout (built), e.g. df3c8d8's, in the same run —
// its request form is detected from its package (before issue 13 a request carried uid, gid and
// directory; since, it names an account). Each round measures every case once, in rotating order
// (this machine's speed drifts), at concurrency 1, 2 and 8; the table gives medians over the
// rounds of requests/s, p50 and p99 latency, and CPU per request: the runner's own user+system
// time plus its spawner's and the spawner's reaped children's (/proc/PID/stat), so the scripts'
// own CPU is included for every runner alike. Needs root for a real user switch.
import { spawn, execFileSync } from 'node:child_process';
import {
  mkdtempSync,
  mkdirSync,
  writeFileSync,
  chmodSync,
  chownSync,
  rmSync,
  readFileSync,
  readdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const N = Number(opt('n', 600));
const ROUNDS = Number(opt('rounds', 3));
const OLD = opt('old', null);
const CONCURRENCY = [1, 2, 8];
const isRoot = process.getuid() === 0;
const TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString());

function makeUser(withScript) {
  const base = mkdtempSync('/tmp/asmtpd-bench-');
  chmodSync(base, 0o755);
  const home = join(base, 'home');
  mkdirSync(join(home, '.avenger'), { recursive: true });
  if (withScript) writeFileSync(join(home, '.avenger', 'rcpt'), 'accept\n');
  else rmSync(join(home, '.avenger'), { recursive: true });
  if (!isRoot) return { base, home, uid: process.getuid(), gid: process.getgid(), name: process.env.USER ?? 'self' };
  const name = `avb${process.pid % 100000}`;
  execFileSync('useradd', ['-M', '-d', home, '-s', '/usr/sbin/nologin', '-U', name]);
  const uid = Number(execFileSync('id', ['-u', name]).toString());
  const gid = Number(execFileSync('id', ['-g', name]).toString());
  for (const p of withScript ? [home, join(home, '.avenger'), join(home, '.avenger', 'rcpt')] : [home])
    chownSync(p, uid, gid);
  chmodSync(home, 0o700);
  return { base, home, uid, gid, name };
}

function removeUser(user) {
  if (isRoot) execFileSync('userdel', [user.name]);
  rmSync(user.base, { recursive: true, force: true });
}

/** user+system seconds of pid, with its reaped children's when asked (/proc/PID/stat 14-17). */
function cpuSeconds(pid, withChildren) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return (f[11] + f[12] + (withChildren ? f[13] + f[14] : 0)) / TICKS;
  } catch {
    return 0;
  }
}

function childrenOf(pid) {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((p) => {
      try {
        const s = readFileSync(`/proc/${p}/stat`, 'utf8');
        return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    });
}

/** CPU of a runner: itself, and its spawner with the scripts it reaped. */
function runnerCpu(runnerPid) {
  return cpuSeconds(runnerPid, false) + childrenOf(runnerPid).reduce((s, p) => s + cpuSeconds(p, true), 0);
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

async function measure(task, concurrency, cpu) {
  const latencies = [];
  let started = 0;
  const cpu0 = cpu();
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
  return { rate: N / seconds, p50: pick(0.5), p99: pick(0.99), cpuMs: ((cpu() - cpu0) * 1000) / N };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A runner of a checkout, with the request form of its version; `missing`: a file the user does not have. */
async function runnerOf(checkout, label, user, missing = false) {
  const mod = await import(pathToFileURL(join(checkout, 'packages/avenger-runner/dist/index.js')).href);
  const accountForm = 'DEFAULT_LIMITS' in mod;
  const settings = {
    etcDir: user.base,
    avengerUser: user.name,
    passwdFile: null,
    spoolDir: null,
    daemonUid: null,
    deniedUids: [],
    envNames: ['SENDER', 'RECIPIENT'],
    fixedEnv: {},
    toolsDir: null,
    limits: mod.DEFAULT_LIMITS,
  };
  const client = accountForm
    ? await mod.startRunner({ settings, onLog: () => {} })
    : await mod.startRunner({ onLog: () => {} });
  const env = { SENDER: 'a@b.example', RECIPIENT: `${user.name}@example` };
  const candidates = ['rcpt'];
  const request = accountForm
    ? { kind: 'rcpt', scope: 'user', account: user.name, candidates, env, timeoutMs: 10_000 }
    : {
        kind: 'rcpt',
        uid: user.uid,
        gid: user.gid,
        groups: [user.gid],
        user: user.name,
        home: user.home,
        dir: join(user.home, '.avenger'),
        candidates,
        env,
        timeoutMs: 10_000,
      };
  const task = async () => {
    const r = await client.run(request);
    const ok = missing ? r.kind === 'none' : r.kind === 'ran' && r.decision?.verb === 'accept';
    if (!ok) throw new Error(`${label}: ${JSON.stringify(r)}`);
  };
  await task();
  return { label, task, cpu: () => runnerCpu(client.pid), close: () => client.close() };
}

const user = makeUser(!args.includes('--no-script'));
const here = new URL('../../', import.meta.url).pathname;
const cases = [
  {
    label: "spawn('/bin/sh -c true')",
    task: rawSpawn,
    cpu: () => cpuSeconds(process.pid, true),
    close: async () => {},
  },
];
try {
  const missing = args.includes('--no-script');
  const what = missing ? 'no script' : 'accept';
  cases.push(await runnerOf(here, `runner, ${what} (this checkout)`, user, missing));
  if (OLD) cases.push(await runnerOf(OLD, `runner, ${what} (${OLD})`, user, missing));
  console.log(
    `node ${process.version}, ${N} requests x ${ROUNDS} rounds, root=${isRoot}, user uid ${user.uid}; CPU ms/request: runner + spawner + scripts (raw: this process + the shells)`,
  );
  console.log(`${'case'.padEnd(40)} conc   req/s   p50 ms   p99 ms  CPU ms/req  of raw`);
  for (const c of CONCURRENCY) {
    const results = cases.map(() => []);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < cases.length; k++) {
        const i = (k + r) % cases.length;
        results[i].push(await measure(cases[i].task, c, cases[i].cpu));
      }
    }
    const rawRate = median(results[0].map((x) => x.rate));
    cases.forEach((cs, i) => {
      const rs = results[i];
      const rate = median(rs.map((x) => x.rate));
      console.log(
        `${cs.label.slice(0, 40).padEnd(40)} ${String(c).padStart(4)} ${rate.toFixed(0).padStart(7)} ${median(
          rs.map((x) => x.p50),
        )
          .toFixed(2)
          .padStart(8)} ` +
          `${median(rs.map((x) => x.p99))
            .toFixed(2)
            .padStart(8)} ${median(rs.map((x) => x.cpuMs))
            .toFixed(2)
            .padStart(10)} ${i === 0 ? '' : `${((rate / rawRate) * 100).toFixed(0)}%`.padStart(7)}`,
      );
    });
    if (OLD && ROUNDS > 1) {
      const ratios = results[1].map((x, r) => (x.rate / results[2][r].rate).toFixed(2));
      console.log(`${''.padEnd(40)}      this/old per round: ${ratios.join(' ')}`);
    }
  }
} finally {
  for (const c of cases) await c.close();
  removeUser(user);
}
