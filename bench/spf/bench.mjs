// bench.mjs — SPF checks/second, latency, CPU and DNS queries per check for @asmtpd/spf, pyspf and
// libspf2 on the rfc7208 suite's checks, against the same loopback DNS server in the same run.
// Run through bench/spf/run.sh (it gives pyspf and libspf2 a resolv.conf pointing at 127.0.0.1
// in a private mount namespace). Options:
//   --repeat N       passes over each scenario's checks per measurement (default 20)
//   --rounds N       whole measurements, implementations in rotating order (default 3); the
//                    summary gives the median of the rounds (this VM drifts ±30 % in minutes)
//   --concurrency N  checks in flight in our one process, throughput mode (default 32)
//   --parallel N     pyspf / libspf2 processes side by side, throughput mode (default 4)
//   --json FILE      also write every round's figures as JSON
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { cpus } from 'node:os';
import { loadSuite } from '../../packages/spf/dist/testing/zone.js';
import { SUITES } from '../../packages/spf/dist/testing/suites.js';
import { arg, here, median, runDriver, startZoneServerChild } from './common.mjs';

const REPEAT = Number(arg('--repeat', '20'));
const ROUNDS = Number(arg('--rounds', '3'));
const CONCURRENCY = Number(arg('--concurrency', '32'));
const PARALLEL = Number(arg('--parallel', '4'));
const JSON_OUT = arg('--json', undefined);
const LIBSPF2 = arg('--libspf2-driver', '/tmp/asmtpd-bench-libspf2');
const PYTHON = arg('--python', '/usr/bin/python3');

const scenarios = loadSuite(SUITES.rfc7208);
const server = await startZoneServerChild();
const { addr } = server;
const load = async (i) => {
  const r = await server.command(`load ${i}`);
  if (r !== 'ok') throw new Error(`zone server: ${r}`);
};
/** questions the server received since the last call */
const queriesSinceLast = async () => Number(await server.command('count'));

// Ours: asmtpd-driver.mjs, one long-lived process per resolver (tangerine with cache off and one
// try over a keep-alive node:http pool, exactly as spf-check builds it; node's c-ares Resolver
// over UDP). Theirs: pyspf-driver.py, libspf2-driver.c, one process per measurement. Every
// driver times only its own check calls and gets one unmeasured warm-up pass first.
function startOurs(kind, serverAddr) {
  const p = spawn(process.execPath, [here('./asmtpd-driver.mjs'), kind, serverAddr], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: p.stdout })[Symbol.asyncIterator]();
  return {
    async ask(cmd) {
      p.stdin.write(`${JSON.stringify(cmd)}\n`);
      const r = await lines.next();
      if (r.done) throw new Error(`asmtpd-driver ${kind} exited`);
      return JSON.parse(r.value);
    },
    end() {
      p.stdin.end();
    },
  };
}

const external = (file, args) => ({
  sequential: (input) => runDriver(file, [...args, String(REPEAT), '1'], input),
  // PARALLEL processes measure the same window: each waits after its warm-up until startAt
  async parallel(input, marginMs) {
    const startAt = process.hrtime.bigint() + BigInt(marginMs) * 1_000_000n;
    const runs = await Promise.all(
      Array.from({ length: PARALLEL }, () => runDriver(file, [...args, String(REPEAT), '1', String(startAt)], input)),
    );
    const start = Math.min(...runs.map((r) => r.span[0]));
    const end = Math.max(...runs.map((r) => r.span[1]));
    return { ns: end - start, cpuNs: runs.reduce((a, r) => a + r.cpuNs, 0), late: runs.some((r) => r.late) };
  },
});

const impls = [
  { key: 'tangerine', label: '@asmtpd/spf, tangerine (DoH over http)', ours: startOurs('doh', addr.doh) },
  {
    key: 'cares',
    label: '@asmtpd/spf, node c-ares resolver (UDP)',
    ours: startOurs('udp', `${addr.udp.host}:${addr.udp.port}`),
  },
  { key: 'pyspf', label: 'pyspf 2.0.14', theirs: external(PYTHON, [here('./pyspf-driver.py')]), marginMs: 400 },
  { key: 'libspf2', label: 'libspf2 1.2.10', theirs: external(LIBSPF2, []), marginMs: 150 },
];

const emptyStats = () => ({
  lat: [],
  ok: 0,
  n: 0,
  cpuNs: 0,
  queries: 0,
  asked: 0,
  tputChecks: 0,
  tputNs: 0,
  tputCpuNs: 0,
  late: 0,
});

async function measure(impl, sc, st) {
  const checks = sc.tests.map((t) => [t.host, t.mailfrom === '' ? '<>' : t.mailfrom, t.helo]);
  const input = checks.map((c) => `${c.join('\t')}\n`).join('');
  const n = checks.length;
  // one at a time (the warm-up pass included in the query count: every pass asks the same)
  const seq = impl.ours
    ? await impl.ours.ask({ checks, repeat: REPEAT, warmup: 1 })
    : await impl.theirs.sequential(input);
  const results = impl.ours ? seq.results.split(',').map((l) => l.split(' ')) : seq.results;
  results.forEach(([res, ns], k) => {
    st.lat.push(Number(ns));
    st.n++;
    if (sc.tests[k % n].results.includes(String(res).toLowerCase())) st.ok++;
  });
  st.cpuNs += seq.cpuNs;
  st.queries += await queriesSinceLast();
  st.asked += (REPEAT + 1) * n;
  // throughput: ours with CONCURRENCY checks in flight in one process, theirs in PARALLEL processes
  if (impl.ours) {
    const t = await impl.ours.ask({ checks, repeat: REPEAT, concurrency: CONCURRENCY });
    st.tputChecks += REPEAT * n;
    st.tputNs += t.ms * 1e6;
    st.tputCpuNs += t.cpuNs;
  } else {
    const t = await impl.theirs.parallel(input, impl.marginMs);
    st.tputChecks += PARALLEL * REPEAT * n;
    st.tputNs += t.ns;
    st.tputCpuNs += t.cpuNs;
    if (t.late) st.late++;
  }
  await queriesSinceLast();
}

// warm-up of our long-lived driver processes (JIT, connections): one pass of every scenario,
// not measured (pyspf and libspf2 have no JIT; every driver also gets a per-scenario warm-up pass)
for (let i = 0; i < scenarios.length; i++) {
  await load(i);
  const checks = scenarios[i].tests.map((t) => [t.host, t.mailfrom === '' ? '<>' : t.mailfrom, t.helo]);
  for (const impl of impls) if (impl.ours) await impl.ours.ask({ checks, repeat: 0, warmup: 1 });
}
await queriesSinceLast();

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
function summarize(st) {
  const sorted = [...st.lat].sort((a, b) => a - b);
  const total = sorted.reduce((a, b) => a + b, 0);
  return {
    perSecond: st.n / (total / 1e9),
    p50ms: pct(sorted, 50) / 1e6,
    p99ms: pct(sorted, 99) / 1e6,
    cpuUsPerCheck: st.cpuNs / 1e3 / st.n,
    queriesPerCheck: st.queries / st.asked,
    agrees: `${st.ok}/${st.n}`,
    throughput: st.tputChecks / (st.tputNs / 1e9),
    throughputCpuUsPerCheck: st.tputCpuNs / 1e3 / st.tputChecks,
    late: st.late,
  };
}

const f = (x, d = 0) => x.toFixed(d);
const rounds = [];
for (let round = 0; round < ROUNDS; round++) {
  const stats = Object.fromEntries(impls.map((i) => [i.key, emptyStats()]));
  const order = impls.map((_, k) => impls[(k + round) % impls.length]);
  for (let i = 0; i < scenarios.length; i++) {
    await load(i);
    for (const impl of order) await measure(impl, scenarios[i], stats[impl.key]);
  }
  const r = Object.fromEntries(impls.map((i) => [i.key, summarize(stats[i.key])]));
  rounds.push(r);
  console.log(`round ${round + 1}/${ROUNDS} (order ${order.map((i) => i.key).join(', ')})`);
  console.log(
    'implementation | one at a time checks/s | p50 ms | p99 ms | CPU µs/check | queries/check | agrees | throughput checks/s | CPU µs/check',
  );
  for (const impl of impls) {
    const s = r[impl.key];
    const mode = impl.ours
      ? `${CONCURRENCY} in flight`
      : `${PARALLEL} processes${s.late ? `, ${s.late} late starts` : ''}`;
    console.log(
      `${impl.label} | ${f(s.perSecond)} | ${f(s.p50ms, 3)} | ${f(s.p99ms, 3)} | ${f(s.cpuUsPerCheck, 1)} | ${f(s.queriesPerCheck, 2)} | ${s.agrees} | ${f(s.throughput)} (${mode}) | ${f(s.throughputCpuUsPerCheck, 1)}`,
    );
  }
}
for (const impl of impls) impl.ours?.end();
server.quit();
console.log(
  `\nmachine: ${cpus().length} CPUs, ${cpus()[0]?.model}; node ${process.version}; ${ROUNDS} rounds of ${REPEAT} passes over ${scenarios.reduce((n, s) => n + s.tests.length, 0)} rfc7208 checks`,
);
console.log('median of the rounds | one at a time checks/s | CPU µs/check | throughput checks/s | its CPU µs/check');
for (const impl of impls) {
  const m = (k) => median(rounds.map((r) => r[impl.key][k]));
  console.log(
    `${impl.label} | ${f(m('perSecond'))} | ${f(m('cpuUsPerCheck'), 1)} | ${f(m('throughput'))} | ${f(m('throughputCpuUsPerCheck'), 1)}`,
  );
}
for (const ref of ['libspf2', 'pyspf']) {
  const ratio = (k) => rounds.map((r) => r.cares[k] / r[ref][k]);
  console.log(
    `c-ares / ${ref}, per round: one at a time ${ratio('perSecond')
      .map((x) => f(x, 2))
      .join(' ')} (median ${f(median(ratio('perSecond')), 2)}); throughput ${ratio('throughput')
      .map((x) => f(x, 2))
      .join(' ')} (median ${f(median(ratio('throughput')), 2)})`,
  );
}
if (JSON_OUT)
  writeFileSync(
    JSON_OUT,
    JSON.stringify({ repeat: REPEAT, concurrency: CONCURRENCY, parallel: PARALLEL, rounds }, null, 1),
  );
process.exit(0);
