// bench.mjs — SPF checks/second and latency for @asmtpd/spf, pyspf and libspf2 on the
// rfc7208 suite's checks, against the same loopback DNS server in the same run.
// Run through bench/spf/run.sh (it gives pyspf and libspf2 a resolv.conf pointing at
// 127.0.0.1 in a private mount namespace). Options: --repeat N (default 20).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { loadSuite } from '../../packages/spf/dist/testing/zone.js';
import { SUITES } from '../../packages/spf/dist/testing/suites.js';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
};
const REPEAT = Number(arg('--repeat', '20'));
const CONCURRENCY = Number(arg('--concurrency', '32'));
const LIBSPF2 = arg('--libspf2-driver', '/tmp/asmtpd-bench-libspf2');
const PYTHON = arg('--python', '/usr/bin/python3');

const scenarios = loadSuite(SUITES.rfc7208);
const server = spawn(process.execPath, [here('./zone-server.mjs'), SUITES.rfc7208], { stdio: ['pipe', 'pipe', 'inherit'] });
const serverLines = createInterface({ input: server.stdout })[Symbol.asyncIterator]();
const addr = JSON.parse((await serverLines.next()).value);
async function load(i) {
  server.stdin.write(`load ${i}\n`);
  const r = await serverLines.next();
  if (r.value !== 'ok') throw new Error(`zone server: ${r.value}`);
}

// Every implementation runs in its own process and times only its own check calls:
// asmtpd-driver.mjs (ours, one long-lived process per resolver: tangerine with cache off and
// one try over a keep-alive node:http pool, exactly as spf-check builds it; node's c-ares
// Resolver over UDP), pyspf-driver.py, libspf2-driver.c. Each gets one unmeasured warm-up pass
// of the scenario before its measured passes.
function startOurs(kind, serverAddr) {
  const p = spawn(process.execPath, [here('./asmtpd-driver.mjs'), kind, serverAddr], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: p.stdout })[Symbol.asyncIterator]();
  return {
    async ask(cmd) {
      p.stdin.write(`${JSON.stringify(cmd)}\n`);
      const r = await lines.next();
      if (r.done) throw new Error(`asmtpd-driver ${kind} exited`);
      return r.value;
    },
    end() { p.stdin.end(); },
  };
}
const ourDrivers = {
  'asmtpd-spf (tangerine DoH)': startOurs('doh', addr.doh),
  'asmtpd-spf (node c-ares UDP)': startOurs('udp', `${addr.udp.host}:${addr.udp.port}`),
};

const impls = {
  'asmtpd-spf (tangerine DoH)': { lat: [], ok: 0, n: 0 },
  'asmtpd-spf (node c-ares UDP)': { lat: [], ok: 0, n: 0 },
  'pyspf 2.0.14 (python3-spf)': { lat: [], ok: 0, n: 0 },
  'libspf2 1.2.10 (spfquery library)': { lat: [], ok: 0, n: 0 },
};
const concurrent = { 'asmtpd-spf (tangerine DoH)': { checks: 0, ms: 0 }, 'asmtpd-spf (node c-ares UDP)': { checks: 0, ms: 0 } };

function record(name, t, result, ns) {
  const s = impls[name];
  s.lat.push(ns);
  s.n++;
  if (t.results.includes(String(result).toLowerCase())) s.ok++;
}

function runDriver(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(out.trim().split('\n')) : reject(new Error(`${cmd} exited ${code}`))));
    c.stdin.end(input);
  });
}

async function ours(name, checks, tests) {
  const d = ourDrivers[name];
  const out = (await d.ask({ checks, repeat: REPEAT, warmup: 1 })).split(',');
  out.forEach((l, k) => { const [res, ns] = l.split(' '); record(name, tests[k % tests.length], res, Number(ns)); });
  // throughput with several checks in flight
  const ms = Number(await d.ask({ checks, repeat: REPEAT, concurrency: CONCURRENCY }));
  concurrent[name].checks += REPEAT * tests.length;
  concurrent[name].ms += ms;
}

// warm-up of our long-lived driver processes (JIT, connections): one pass of every scenario,
// not measured (pyspf and libspf2 have no JIT; every driver also gets a per-scenario warm-up pass)
for (let i = 0; i < scenarios.length; i++) {
  await load(i);
  const checks = scenarios[i].tests.map((t) => [t.host, t.mailfrom === '' ? '<>' : t.mailfrom, t.helo]);
  for (const d of Object.values(ourDrivers)) await d.ask({ checks, repeat: 0, warmup: 1 });
}

for (let i = 0; i < scenarios.length; i++) {
  const sc = scenarios[i];
  await load(i);
  const checks = sc.tests.map((t) => [t.host, t.mailfrom === '' ? '<>' : t.mailfrom, t.helo]);
  const input = checks.map((c) => `${c.join('\t')}\n`).join('');
  await ours('asmtpd-spf (tangerine DoH)', checks, sc.tests);
  await ours('asmtpd-spf (node c-ares UDP)', checks, sc.tests);
  const py = await runDriver(PYTHON, [here('./pyspf-driver.py'), String(REPEAT), '1'], input);
  py.forEach((l, k) => { const [res, ns] = l.split('\t'); record('pyspf 2.0.14 (python3-spf)', sc.tests[k % sc.tests.length], res, Number(ns)); });
  const c = await runDriver(LIBSPF2, [String(REPEAT), '1'], input);
  c.forEach((l, k) => { const [res, ns] = l.split('\t'); record('libspf2 1.2.10 (spfquery library)', sc.tests[k % sc.tests.length], res, Number(ns)); });
  process.stderr.write(`scenario ${i + 1}/${scenarios.length} done\n`);
}
for (const d of Object.values(ourDrivers)) d.end();
server.stdin.write('quit\n');

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
console.log(`machine: ${cpus().length} CPUs, ${cpus()[0]?.model}; node ${process.version}; ${REPEAT} passes over ${scenarios.reduce((n, s) => n + s.tests.length, 0)} rfc7208 checks`);
console.log('implementation | checks/s (one at a time) | p50 ms | p99 ms | agrees with suite');
for (const [name, s] of Object.entries(impls)) {
  const sorted = [...s.lat].sort((a, b) => a - b);
  const total = sorted.reduce((a, b) => a + b, 0);
  console.log(`${name} | ${(s.n / (total / 1e9)).toFixed(0)} | ${(pct(sorted, 50) / 1e6).toFixed(3)} | ${(pct(sorted, 99) / 1e6).toFixed(3)} | ${s.ok}/${s.n}`);
}
for (const [name, c] of Object.entries(concurrent)) {
  console.log(`${name}, ${CONCURRENCY} checks in flight | ${(c.checks / (c.ms / 1000)).toFixed(0)} checks/s`);
}
process.exit(0);
