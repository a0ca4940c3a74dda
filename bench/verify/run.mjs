#!/usr/bin/env node
// Recipient verification benchmark (issue 18). Run by hand, as root, from the repo root:
//
//   pnpm build
//   node bench/verify/run.mjs [options]
//
// What one RCPT costs when asmtpd verifies a RelayDomain recipient against its backend, cold
// (every RCPT a backend query) and cached (the answer from the state database), next to RCPTs
// that are not verified. The backend is a private Postfix (test/support/postfix.ts, maildir mode
// with `recipients`: virtual_mailbox_maps = texthash of --recipients valid addresses
// u0..uN-1@bench.test; any other bench.test address gets 550 5.1.1 at RCPT). asmtpd runs with
//   RelayDomain bench.test 127.0.0.1:PFPORT, LocalDomain example.test, RelayNet 192.0.2.0/24
//   (the load client on 127.0.0.1 is an outsider, whose relay-domain recipients are verified),
//   RcptVerifySkip 127.0.0.2/32 (the `skipped` baseline), an empty EtcDir (no system scripts),
//   a quiet loopback DNS server (bench/smtp/dns-child.mjs, zone 'empty': NXDOMAIN for everything;
//   asmtpd never asks the machine's resolver), SMTPCB no, SynFP no, BlockUnknownRcpts off,
//   RelayHost = an smtp-sink.
//
// Scenarios, each measured twice: a load phase (--sessions sessions, --rcpts RCPTs: rate, CPU)
// and a latency phase (--latency-sessions sessions, --latency-rcpts RCPTs: the latency a single
// RCPT takes without queueing behind other sessions):
//   local         RCPT TO:<avenger@example.test> (--local-rcpt) again and again: a LocalDomain account with no
//                 ~/.avenger (no script; the session's decision cache answers after the first)
//   skipped       distinct valid bench.test addresses from 127.0.0.2 (RcptVerifySkip): the same
//                 route and policy as the verified ones (EtcDir relay/default absent), no verifier
//   cold          distinct valid bench.test addresses never asked before: one backend query each
//   cached        the addresses of `cold` again: cache hits in the state database, no query
//   invalid-cold  distinct unknown bench.test addresses: one query each, 550 5.1.1 from Postfix
// A load-client session: connect, EHLO, MAIL FROM, then RCPTs one at a time (one reply awaited per
// RCPT, no pipelining), RSET + MAIL FROM again after every --per-tx RCPTs, QUIT at the end. The
// latency of an RCPT is from writing it to its reply.
// Rounds: each round starts a fresh asmtpd (a new DBDir: an empty cache) and measures the units
// [local] [skipped] [cold, cached] [invalid-cold] in a rotating order (round N starts with the Nth),
// after a warm-up. Figures are medians over rounds.
// Backend queries are counted in Postfix's log: smtpd's "disconnect from ... rcpt=N[/M]" lines
// (M, the RCPTs asked, when some were refused); after each scenario the bench waits until every
// verifier session has closed (idle ones after 5 s), so each scenario's queries are its own.
//
// Options:
//   --recipients N        valid recipients in the backend's map (20000)
//   --rcpts N             RCPTs per load phase (4000)
//   --sessions N          parallel sessions in the load phase (20)
//   --latency-rcpts N     RCPTs per latency phase (2000; 0 = skip)
//   --latency-sessions N  sessions in the latency phase (1)
//   --per-tx N            RCPTs per transaction before RSET (100)
//   --warmup N            warm-up RCPTs per round, for each of local / cold+cached (1000)
//   --rounds N            (3)
//   --scenarios LIST      local,skipped,cold,cached,invalid-cold (all; cached needs cold)
//   --asmtpd-set 'D V'    extra config line for asmtpd (repeatable), e.g. 'RcptVerifyConnections 8'
//   --asmtpd-node-args 'A' node options for asmtpd, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'
//                         (the directory must be writable by the daemon user)
//   --probe N             calls of the in-process cache hit probe, run first (200000; 0 = skip):
//                         RecipientVerifier.verify over the state database alone, no sockets
//   --local-rcpt ADDR     the local scenario's recipient (avenger@example.test)
//   --json FILE           also write the results as JSON
import { fork, spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Conn, percentile } from '../smtp/latency-client.mjs';
import {
  busyPercent,
  CLK_TCK,
  cpuBusy,
  loadHarness,
  log,
  machine,
  median,
  root,
  sleep,
  startSink,
  treeCpu,
  waitGreeting,
} from '../smtp/lib.mjs';

// ---------------------------------------------------------------- options
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : def;
};
const RECIPIENTS = Number(opt('recipients', 20000));
const RCPTS = Number(opt('rcpts', 4000));
const SESSIONS = Number(opt('sessions', 20));
const LAT_RCPTS = Number(opt('latency-rcpts', 2000));
const LAT_SESSIONS = Number(opt('latency-sessions', 1));
const PER_TX = Number(opt('per-tx', 100));
const WARMUP = Number(opt('warmup', 1000));
const ROUNDS = Number(opt('rounds', 3));
const SCENARIOS = opt('scenarios', 'local,skipped,cold,cached,invalid-cold').split(',');
const ASMTPD_SET = argv.flatMap((a, i) => (a === '--asmtpd-set' && argv[i + 1] ? [argv[i + 1]] : []));
const ASMTPD_NODE_ARGS = opt('asmtpd-node-args', '').split(' ').filter(Boolean);
const JSON_OUT = opt('json', '');
/** calls of the in-process cache-hit probe (0 = skip) */
const PROBE = Number(opt('probe', 200000));
const KNOWN = ['local', 'skipped', 'cold', 'cached', 'invalid-cold'];
for (const s of SCENARIOS) if (!KNOWN.includes(s)) throw new Error(`--scenarios: unknown ${s}`);
if (SCENARIOS.includes('cached') && !SCENARIOS.includes('cold')) throw new Error('cached needs cold');
// valid addresses per round: warm-up + cold load + cold latency + skipped load + skipped latency
const perRound = 2 * WARMUP + 2 * (RCPTS + LAT_RCPTS);
if (perRound > RECIPIENTS)
  throw new Error(`--recipients ${RECIPIENTS}: a round needs ${perRound} distinct valid addresses`);
if (process.getuid?.() !== 0) throw new Error('run as root (private Postfix instance, asmtpd as root)');

const DOMAIN = 'bench.test';
// AvengerUser (the daemon creates it): an account with no ~/.avenger, so no script
const LOCAL_RCPT = opt('local-rcpt', 'avenger@example.test');
const FROM = 'sender@bench-source.test';
const HELO = 'bench-client.test';
const SKIP_IP = '127.0.0.2';

// ---------------------------------------------------------------- the load client
/**
 * sessions sessions take the addresses in turn; each RCPT must get a reply of class `expect`.
 * @returns {{elapsedMs:number, latenciesMs:Float64Array, sent:number, errors:number, firstError?:string}}
 */
async function rcptLoad({ port, sessions, addresses, expect, localAddress }) {
  const lat = new Float64Array(addresses.length);
  let next = 0;
  let sent = 0;
  let errors = 0;
  let firstError;
  const t0 = performance.now();
  async function session() {
    let c = null;
    let inTx = 0;
    while (next < addresses.length) {
      const i = next++;
      try {
        if (!c) {
          c = new Conn('127.0.0.1', port, localAddress);
          c.sock.setNoDelay(true);
          await c.cmd(null, 2);
          await c.cmd(`EHLO ${HELO}\r\n`, 2);
          inTx = 0;
        }
        if (inTx >= PER_TX) {
          await c.cmd('RSET\r\n', 2);
          inTx = 0;
        }
        if (inTx === 0) await c.cmd(`MAIL FROM:<${FROM}>\r\n`, 2);
        const t = performance.now();
        await c.cmd(`RCPT TO:<${addresses[i]}>\r\n`, expect);
        lat[i] = performance.now() - t;
        inTx++;
        sent++;
      } catch (e) {
        errors++;
        lat[i] = NaN;
        firstError ??= `${addresses[i]}: ${String(e?.message ?? e)}`;
        c?.close();
        c = null;
      }
    }
    if (c) {
      c.sock.write('QUIT\r\n');
      await c.reply().catch(() => 0);
      c.close();
    }
  }
  await Promise.all(Array.from({ length: Math.min(sessions, addresses.length) }, session));
  const elapsedMs = performance.now() - t0;
  return {
    elapsedMs,
    /** by address index, NaN for a failed one */
    raw: lat,
    latenciesMs: lat.filter((x) => !Number.isNaN(x)).sort(),
    sent,
    errors,
    ...(firstError ? { firstError } : {}),
  };
}

// ---------------------------------------------------------------- the backend
const harness = await loadHarness();
const valid = Array.from({ length: RECIPIENTS }, (_, i) => `u${i}@${DOMAIN}`);

/** Verifier sessions opened and RCPTs asked so far, from Postfix's log. */
async function backendCounts(pf) {
  const text = await pf.log();
  let rcpts = 0;
  let disconnects = 0;
  for (const m of text.matchAll(/ disconnect from [^\n]*/g)) {
    disconnects++;
    const r = / rcpt=(\d+)(?:\/(\d+))?/.exec(m[0]);
    if (r) rcpts += Number(r[2] ?? r[1]);
  }
  const connects = (text.match(/ connect from /g) ?? []).length;
  const rejects = (text.match(/NOQUEUE: reject: RCPT from /g) ?? []).length;
  return { connects, disconnects, rcpts, rejects };
}

/** Until every session to the backend has ended (the verifier closes idle ones after 5 s). */
async function backendQuiet(pf, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await backendCounts(pf);
    if (c.connects === c.disconnects) return c;
    if (Date.now() > deadline) throw new Error(`backend sessions still open: ${JSON.stringify(c)}`);
    await sleep(250);
  }
}

// ---------------------------------------------------------------- DNS (bench/smtp/dns-child.mjs)
async function startDns() {
  const child = fork(
    join(root, 'bench', 'smtp', 'dns-child.mjs'),
    [JSON.stringify([{ name: 'asmtpd', zone: 'empty' }])],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const addrs = await new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`dns-child exited with ${code}`)));
  });
  return {
    pid: child.pid,
    doh: addrs.asmtpd.doh,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.send({ cmd: 'exit' });
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

// ---------------------------------------------------------------- asmtpd
async function startAsmtpd({ pfPort, sinkPort, doh, round }) {
  const bin = join(root, 'packages', 'asmtpd', 'bin', 'asmtpd');
  const dir = mkdtempSync(join(tmpdir(), 'bench-verify-'));
  chmodSync(dir, 0o755); // the SMTP process drops root and must reach DBDir
  const etc = join(dir, 'etc');
  const port = await harness.freePort();
  const conf = join(dir, 'asmtpd.conf');
  const lines = [
    `SMTPPort ${port}`,
    'BindAddr 127.0.0.1',
    'Hostname bench.asmtpd.test',
    `DBDir ${join(dir, 'db')}`,
    `EtcDir ${etc}`,
    'LocalDomain example.test',
    'RelayNet 192.0.2.0/24',
    `RelayDomain ${DOMAIN} 127.0.0.1:${pfPort}`,
    `RcptVerifySkip ${SKIP_IP}/32`,
    `RelayHost 127.0.0.1:${sinkPort}`,
    'MaxClients 1000',
    'MaxClientsPerIP 1000',
    'DNSResolver tangerine',
    'DNSProtocol http',
    `DNSServer ${doh}`,
    'SMTPCB no',
    'SynFP no',
    // the invalid-cold client collects thousands of unknown recipients on purpose: dictionary-attack
    // blocking (issue 19, on by default) would cut it off after 10 and block every later scenario
    'BlockUnknownRcpts off',
    ...ASMTPD_SET,
    '',
  ];
  mkdirSync(etc, { mode: 0o755 });
  writeFileSync(conf, lines.join('\n'));
  const logFile = join(tmpdir(), `bench-verify-asmtpd-${round}.log`); // kept after the run
  const logFd = openSync(logFile, 'w');
  const p = spawn(process.execPath, [...ASMTPD_NODE_ARGS, bin, '-d', '-f', conf], {
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  closeSync(logFd);
  try {
    await waitGreeting(port, 20000, p);
  } catch (e) {
    p.kill('SIGKILL');
    throw new Error(`asmtpd did not start: ${e.message}\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
  }
  return {
    port,
    pid: p.pid,
    logFile,
    conf: lines.filter((l) => !/^(SMTPPort|DBDir|EtcDir|DNSServer|RelayHost) /.test(l) && l),
    stop: async () => {
      p.kill('SIGTERM');
      await Promise.race([new Promise((r) => p.once('exit', r)), sleep(8000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- one scenario
/** What the daemon logged for the RCPTs of a scenario: verify= values (checks the figures mean what they say). */
function verifyValues(file, from) {
  const out = {};
  const text = readFileSync(file, 'utf8').slice(from);
  for (const line of text.split('\n')) {
    if (!line.includes('"rcpt.decision"')) continue;
    try {
      const j = JSON.parse(line);
      const k = j.verify ?? `(${j.route})`;
      out[k] = (out[k] ?? 0) + 1;
    } catch {
      /* not JSON */
    }
  }
  return out;
}

let ownPids = [];
function oursCpu() {
  return ownPids.reduce((a, p) => a + treeCpu(p), 0);
}

async function scenario(name, ctx, sets) {
  const { asmtpd, pf, pfPid } = ctx;
  const spec = {
    local: { load: Array(RCPTS).fill(LOCAL_RCPT), lat: Array(LAT_RCPTS).fill(LOCAL_RCPT), expect: 2 },
    skipped: { load: sets.skipLoad, lat: sets.skipLat, expect: 2, localAddress: SKIP_IP },
    cold: { load: sets.coldLoad, lat: sets.coldLat, expect: 2 },
    cached: { load: sets.coldLoad, lat: sets.coldLat, expect: 2 },
    'invalid-cold': { load: sets.badLoad, lat: sets.badLat, expect: 5 },
  }[name];
  await backendQuiet(pf);
  const b0 = await backendCounts(pf);
  const logFrom = readFileSync(asmtpd.logFile, 'utf8').length;
  const a0 = treeCpu(asmtpd.pid);
  const p0 = treeCpu(pfPid);
  const ours0 = oursCpu();
  const client0 = process.cpuUsage();
  const m0 = cpuBusy();
  const load = await rcptLoad({
    port: asmtpd.port,
    sessions: SESSIONS,
    addresses: spec.load,
    expect: spec.expect,
    localAddress: spec.localAddress,
  });
  const m1 = cpuBusy();
  const client = process.cpuUsage(client0);
  const aCpu = treeCpu(asmtpd.pid) - a0;
  const pCpu = treeCpu(pfPid) - p0;
  const secs = load.elapsedMs / 1000;
  const machineBusy = (m1.total - m1.idle - (m0.total - m0.idle)) / CLK_TCK;
  const otherCores = Math.max(0, machineBusy - (oursCpu() - ours0)) / secs;
  let lat = null;
  if (LAT_RCPTS > 0) {
    await sleep(200);
    lat = await rcptLoad({
      port: asmtpd.port,
      sessions: LAT_SESSIONS,
      addresses: spec.lat,
      expect: spec.expect,
      localAddress: spec.localAddress,
    });
  }
  // cached: one more session alternating a local RCPT and a cached one, so both kinds see the
  // same moment of a drifting machine (the aim's fairest comparison)
  let paired = null;
  if (name === 'cached' && LAT_RCPTS > 0 && SCENARIOS.includes('local')) {
    await sleep(200);
    const addrs = spec.lat.flatMap((a) => [LOCAL_RCPT, a]);
    const p = await rcptLoad({ port: asmtpd.port, sessions: 1, addresses: addrs, expect: 2 });
    const part = (odd) =>
      Float64Array.from(Array.from(p.raw).filter((x, i) => i % 2 === odd && !Number.isNaN(x))).sort();
    const loc = part(0);
    const hit = part(1);
    paired = {
      rcpts: p.sent,
      errors: p.errors,
      local: { p50: percentile(loc, 50), p90: percentile(loc, 90), p99: percentile(loc, 99) },
      cached: { p50: percentile(hit, 50), p90: percentile(hit, 90), p99: percentile(hit, 99) },
    };
  }
  const b1 = await backendQuiet(pf);
  await sleep(500); // the daemon writes its log in batches
  const r = {
    scenario: name,
    rcpts: load.sent,
    errors: load.errors + (lat?.errors ?? 0),
    ...(load.firstError || lat?.firstError ? { firstError: load.firstError ?? lat.firstError } : {}),
    perSec: load.sent / secs,
    asmtpdCpuMsPerRcpt: (aCpu * 1000) / load.sent,
    postfixCpuMsPerRcpt: (pCpu * 1000) / load.sent,
    clientCpuMsPerRcpt: (client.user + client.system) / 1000 / load.sent,
    otherCores,
    load: {
      p50: percentile(load.latenciesMs, 50),
      p90: percentile(load.latenciesMs, 90),
      p99: percentile(load.latenciesMs, 99),
    },
    ...(lat
      ? {
          latency: {
            rcpts: lat.sent,
            perSec: lat.sent / (lat.elapsedMs / 1000),
            p50: percentile(lat.latenciesMs, 50),
            p90: percentile(lat.latenciesMs, 90),
            p99: percentile(lat.latenciesMs, 99),
            p999: percentile(lat.latenciesMs, 99.9),
            max: lat.latenciesMs.at(-1) ?? NaN,
          },
        }
      : {}),
    ...(paired ? { paired } : {}),
    backend: {
      queries: b1.rcpts - b0.rcpts,
      sessions: b1.connects - b0.connects,
      rejects: b1.rejects - b0.rejects,
    },
    verify: verifyValues(asmtpd.logFile, logFrom),
  };
  if (otherCores > 0.25) log(`WARNING: ${name}: other processes used ${otherCores.toFixed(2)} cores`);
  log(
    `${name}: ${r.perSec.toFixed(0)} RCPT/s, load p50/p99 ${r.load.p50.toFixed(3)}/${r.load.p99.toFixed(3)} ms` +
      (lat ? `, 1-session p50/p99 ${r.latency.p50.toFixed(3)}/${r.latency.p99.toFixed(3)} ms` : '') +
      (paired
        ? `, paired local p50/p99 ${paired.local.p50.toFixed(3)}/${paired.local.p99.toFixed(3)} ms cached ${paired.cached.p50.toFixed(3)}/${paired.cached.p99.toFixed(3)} ms`
        : '') +
      `, CPU/RCPT asmtpd ${r.asmtpdCpuMsPerRcpt.toFixed(3)} ms postfix ${r.postfixCpuMsPerRcpt.toFixed(3)} ms, backend queries ${r.backend.queries} (${r.backend.sessions} sessions), verify ${JSON.stringify(r.verify)}, errors ${r.errors}${r.firstError ? ` (${r.firstError})` : ''}, other load ${otherCores.toFixed(2)} cores`,
  );
  return r;
}

// ---------------------------------------------------------------- the cache hit path, in process
/**
 * The cache hit path alone, without sockets, sessions or the policy: the daemon's own
 * createRecipientVerifier (dist) over a state database (openStateDb, WAL, as the daemon opens it)
 * holding `n` valid entries; each call `await verifier.verify(address, backends)` timed with
 * performance.now(), addresses in turn. A backend question would throw: every call must hit.
 */
async function cacheHitProbe(calls, n = 20000) {
  const dist = (f) => import(pathToFileURL(join(root, 'packages', 'asmtpd', 'dist', f)).href);
  const { openStateDb } = await dist('store/state-db.js');
  const { createRecipientVerifier } = await dist('relay/recipient-verifier.js');
  const dir = mkdtempSync(join(tmpdir(), 'bench-verify-probe-'));
  const db = openStateDb(join(dir, 'state.db'));
  const addrs = Array.from({ length: n }, (_, i) => `p${i}@${DOMAIN}`);
  const until = Date.now() + 86_400_000;
  for (const a of addrs) db.rcptVerifyCache.put(a, { valid: true, reply: '' }, until);
  const nop = () => undefined;
  const logger = { debug: nop, info: nop, warn: nop, error: nop, child: () => logger };
  const v = createRecipientVerifier({
    backends: {
      ask: async () => {
        throw new Error('probe: a cache miss');
      },
      stats: () => ({}),
      close: async () => undefined,
    },
    cache: () => db.rcptVerifyCache,
    validTtlMs: 86_400_000,
    invalidTtlMs: 3_000_000,
    tempfail: true,
    log: logger,
  });
  const backends = [{ host: '127.0.0.1', port: 25 }];
  for (let i = 0; i < Math.min(calls, 20000); i++) await v.verify(addrs[i % n], backends); // warm-up
  const lat = new Float64Array(calls);
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    const r = await v.verify(addrs[i % n], backends);
    lat[i] = performance.now() - t;
    if (r.status !== 'cached-valid') throw new Error(`probe: ${r.status}`);
  }
  const ms = performance.now() - t0;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  lat.sort();
  const us = (p) => percentile(lat, p) * 1000;
  return {
    calls,
    entries: n,
    perSec: calls / (ms / 1000),
    p50us: us(50),
    p90us: us(90),
    p99us: us(99),
    p999us: us(99.9),
    maxUs: lat.at(-1) * 1000,
  };
}

// ---------------------------------------------------------------- main
const busyBefore = await busyPercent(2000);
if (busyBefore > 10) log(`WARNING: the machine is already ${busyBefore.toFixed(0)}% busy before the benchmark`);
let probe = null;
if (PROBE > 0) {
  probe = await cacheHitProbe(PROBE);
  log(`cache-hit probe: ${JSON.stringify(probe)}`);
}
const results = [];
const notes = [];
const sink = await startSink(await harness.freePort());
const dns = await startDns();
log(`building the backend: ${RECIPIENTS} recipients`);
const pf = await harness.startPostfix({ mode: 'maildir', recipients: valid });
const pfPid = Number(readFileSync(join(pf.dir, 'spool', 'pid', 'master.pid'), 'utf8').trim());
ownPids = [process.pid, pfPid];
log(`backend Postfix on 127.0.0.1:${pf.port} (master ${pfPid}), sink ${sink.port}, DNS ${dns.doh}`);
let asmtpdConf = [];
try {
  const units = [['local'], ['skipped'], ['cold', 'cached'], ['invalid-cold']]
    .map((u) => u.filter((s) => SCENARIOS.includes(s)))
    .filter((u) => u.length);
  for (let round = 1; round <= ROUNDS; round++) {
    // the valid addresses of this round: never asked before in this run
    let at = ((round - 1) * perRound) % Math.max(1, RECIPIENTS - perRound + 1);
    const take = (n) => valid.slice(at, (at += n));
    const sets = {
      warm: take(WARMUP),
      skipWarm: take(WARMUP),
      coldLoad: take(RCPTS),
      coldLat: take(LAT_RCPTS),
      skipLoad: take(RCPTS),
      skipLat: take(LAT_RCPTS),
      badLoad: Array.from({ length: RCPTS }, (_, i) => `nx${round}-${i}@${DOMAIN}`),
      badLat: Array.from({ length: LAT_RCPTS }, (_, i) => `nx${round}-l${i}@${DOMAIN}`),
    };
    const asmtpd = await startAsmtpd({ pfPort: pf.port, sinkPort: sink.port, doh: dns.doh, round });
    asmtpdConf = asmtpd.conf;
    try {
      // warm-up: every code path once in a while (JIT), none of the measured addresses
      if (WARMUP > 0) {
        const w = [
          await rcptLoad({
            port: asmtpd.port,
            sessions: SESSIONS,
            addresses: Array(WARMUP).fill(LOCAL_RCPT),
            expect: 2,
          }),
          await rcptLoad({ port: asmtpd.port, sessions: SESSIONS, addresses: sets.warm, expect: 2 }),
          await rcptLoad({ port: asmtpd.port, sessions: SESSIONS, addresses: sets.warm, expect: 2 }),
          await rcptLoad({
            port: asmtpd.port,
            sessions: SESSIONS,
            addresses: sets.skipWarm,
            expect: 2,
            localAddress: SKIP_IP,
          }),
        ];
        const bad = w.find((x) => x.errors);
        if (bad) throw new Error(`warm-up: ${bad.errors} errors, the first: ${bad.firstError}`);
      }
      const order = units.map((_, i) => units[(i + round - 1) % units.length]).flat();
      log(`round ${round}/${ROUNDS}: ${order.join(', ')}`);
      for (const name of order) {
        const r = await scenario(name, { asmtpd, pf, pfPid }, sets);
        results.push({ round, ...r });
      }
    } catch (e) {
      notes.push(`round ${round}: FAILED: ${e.message.split('\n')[0]}`);
      log(`round ${round}: FAILED: ${e.stack}\n${readFileSync(asmtpd.logFile, 'utf8').slice(-2000)}`);
    } finally {
      await asmtpd.stop();
    }
  }
} finally {
  await pf.stop().catch((e) => log('postfix stop', e.message));
  await dns.stop();
  sink.stop();
}

// ---------------------------------------------------------------- report
const m = machine();
const f = (x, d = 2) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
function summary(name) {
  const rs = results.filter((r) => r.scenario === name);
  if (!rs.length) return null;
  const med = (g) => median(rs.map(g));
  return {
    scenario: name,
    rounds: rs.length,
    perSec: med((r) => r.perSec),
    perSecEach: rs.map((r) => r.perSec),
    loadP50: med((r) => r.load.p50),
    loadP90: med((r) => r.load.p90),
    loadP99: med((r) => r.load.p99),
    p50: med((r) => r.latency?.p50),
    p90: med((r) => r.latency?.p90),
    p99: med((r) => r.latency?.p99),
    p999: med((r) => r.latency?.p999),
    p99Each: rs.map((r) => r.latency?.p99),
    asmtpdCpu: med((r) => r.asmtpdCpuMsPerRcpt),
    postfixCpu: med((r) => r.postfixCpuMsPerRcpt),
    clientCpu: med((r) => r.clientCpuMsPerRcpt),
    otherCores: med((r) => r.otherCores),
    queries: rs.map((r) => r.backend.queries),
    sessions: rs.map((r) => r.backend.sessions),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    verify: rs.at(-1).verify,
  };
}
/** a figure of scenario `name` minus that of `base`, per round (same asmtpd), median over rounds */
function added(name, base, g) {
  const d = results
    .filter((r) => r.scenario === name)
    .map((r) => {
      const b = results.find((x) => x.round === r.round && x.scenario === base);
      return b ? g(r) - g(b) : NaN;
    });
  return { median: median(d), each: d };
}
const S = SCENARIOS.map(summary).filter(Boolean);
const lines = [];
lines.push(
  `Machine: ${m.cpu}, ${m.memGiB} GiB, ${m.os}, kernel ${m.kernel}, Node ${m.node}, Postfix ${m.postfix}, asmtpd ${m.asmtpdCommit}, tmpdir on ${m.tmpdirFs}`,
);
lines.push(`CPU busy (all cores) in the 2 s before the run: ${busyBefore.toFixed(0)}%`);
lines.push(
  `Command: node bench/verify/run.mjs ${argv.join(' ')}`.trim() +
    ` (recipients ${RECIPIENTS}, load ${RCPTS} RCPTs over ${SESSIONS} sessions, latency ${LAT_RCPTS} RCPTs over ${LAT_SESSIONS} session(s), ${PER_TX} RCPTs per transaction, warm-up ${WARMUP}, ${ROUNDS} rounds in rotating order, medians)`,
);
lines.push(`asmtpd: ${asmtpdConf.join('; ')}`);
lines.push('');
lines.push(
  '| scenario | RCPT/s (load) | load p50 / p90 / p99 ms | 1-session p50 / p90 / p99 / p99.9 ms | asmtpd CPU ms/RCPT | Postfix CPU ms/RCPT | client CPU ms/RCPT | backend queries, each round | backend sessions, each round | other load (cores) | RCPT/s, each round | 1-session p99, each round |',
);
lines.push('|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|');
for (const s of S)
  lines.push(
    `| ${s.scenario} | ${f(s.perSec, 0)} | ${f(s.loadP50)} / ${f(s.loadP90)} / ${f(s.loadP99)} | ${f(s.p50, 3)} / ${f(s.p90, 3)} / ${f(s.p99, 3)} / ${f(s.p999, 3)} | ${f(s.asmtpdCpu, 3)} | ${f(s.postfixCpu, 3)} | ${f(s.clientCpu, 3)} | ${s.queries.join(', ')} | ${s.sessions.join(', ')} | ${f(s.otherCores)} | ${s.perSecEach.map((x) => f(x, 0)).join(', ')} | ${s.p99Each.map((x) => f(x, 3)).join(', ')} |`,
  );
lines.push('');
lines.push(
  'Latency a verification adds (1-session phase; per round: scenario minus baseline, same asmtpd; median over rounds, then each round):',
);
lines.push('');
lines.push('| scenario | vs | + p50 ms | + p99 ms | + asmtpd CPU ms/RCPT | + p99 ms, each round |');
lines.push('|---|---|---:|---:|---:|---|');
let aim = null;
for (const name of ['cold', 'cached', 'invalid-cold', 'skipped'])
  for (const base of ['local', 'skipped']) {
    if (name === base || !SCENARIOS.includes(name) || !SCENARIOS.includes(base)) continue;
    const a50 = added(name, base, (r) => r.latency?.p50);
    const a99 = added(name, base, (r) => r.latency?.p99);
    const cpu = added(name, base, (r) => r.asmtpdCpuMsPerRcpt);
    if (name === 'cached' && base === 'local') aim = a99.median;
    lines.push(
      `| ${name} | ${base} | ${f(a50.median, 3)} | ${f(a99.median, 3)} | ${f(cpu.median, 3)} | ${a99.each.map((x) => f(x, 3)).join(', ')} |`,
    );
  }
const pr = results.filter((r) => r.paired);
let pairedAim = null;
if (pr.length) {
  const d50 = pr.map((r) => r.paired.cached.p50 - r.paired.local.p50);
  const d99 = pr.map((r) => r.paired.cached.p99 - r.paired.local.p99);
  pairedAim = median(d99);
  lines.push(
    `| cached (paired) | local (paired) | ${f(median(d50), 3)} | ${f(pairedAim, 3)} | - | ${d99.map((x) => f(x, 3)).join(', ')} |`,
  );
  lines.push('');
  lines.push(
    `Paired (one session alternating ${LOCAL_RCPT} and a cached address, ${LAT_RCPTS} of each; medians over rounds): local p50 / p90 / p99 ${f(median(pr.map((r) => r.paired.local.p50)), 3)} / ${f(median(pr.map((r) => r.paired.local.p90)), 3)} / ${f(median(pr.map((r) => r.paired.local.p99)), 3)} ms, cached ${f(median(pr.map((r) => r.paired.cached.p50)), 3)} / ${f(median(pr.map((r) => r.paired.cached.p90)), 3)} / ${f(median(pr.map((r) => r.paired.cached.p99)), 3)} ms`,
  );
}
lines.push('');
if (aim !== null)
  lines.push(
    `Aim (issue 18): the cache hit path adds < 0.2 ms at p99: cached p99 - local p99 = ${f(aim, 3)} ms (separate phases)${pairedAim !== null ? `, ${f(pairedAim, 3)} ms (paired)` : ''} -> ${Math.max(aim, pairedAim ?? -Infinity) < 0.2 ? 'MET' : 'NOT MET'}`,
  );
if (probe)
  lines.push(
    `Cache hit path in process (RecipientVerifier.verify over openStateDb with ${probe.entries} entries, ${probe.calls} awaited calls, no sockets; before the SMTP scenarios): p50 ${f(probe.p50us, 1)} µs, p90 ${f(probe.p90us, 1)} µs, p99 ${f(probe.p99us, 1)} µs, p99.9 ${f(probe.p999us, 1)} µs, max ${f(probe.maxUs, 0)} µs; ${f(probe.perSec, 0)} calls/s`,
  );
for (const s of S)
  lines.push(`Seen (${s.scenario}, last round): rcpt.decision verify= ${JSON.stringify(s.verify)}; errors ${s.errors}`);
for (const n of notes) lines.push(`Note: ${n}`);
console.log(lines.join('\n'));
if (JSON_OUT)
  writeFileSync(
    JSON_OUT,
    JSON.stringify(
      {
        machine: m,
        busyBeforePercent: busyBefore,
        params: { RECIPIENTS, RCPTS, SESSIONS, LAT_RCPTS, LAT_SESSIONS, PER_TX, WARMUP, ROUNDS, SCENARIOS },
        asmtpdConf,
        probe,
        summary: S,
        results,
        notes,
      },
      null,
      2,
    ) + '\n',
  );
