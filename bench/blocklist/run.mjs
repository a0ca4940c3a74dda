#!/usr/bin/env node
// Abuse-blocking benchmark (issue 19). Run by hand, as root, from the repo root:
//
//   pnpm build
//   node bench/blocklist/run.mjs [options]
//
// New connections per second that asmtpd takes from blocked clients (refused at once: the
// 421 4.7.1 banner from one in-memory lookup, then closed) against ordinary clients (a full short
// session: 220, EHLO, MAIL FROM, RCPT TO a local account, QUIT), in the same run, on the same
// daemon, in a rotating order over rounds; and the CPU of the daemon's process tree per
// connection. The aim (issue 19): a harvester flood costs far less than a normal session,
// ≥ 5× the connection rate.
//
// asmtpd: BindAddr 127.0.0.1, LocalDomain example.test, RelayNet 192.0.2.0/24 (the clients are
// outsiders), an empty EtcDir (no scripts), a quiet loopback DNS server (bench/smtp/dns-child.mjs,
// zone 'empty': every name NXDOMAIN, nothing cached, so each ordinary client costs its reverse
// lookup), SMTPCB no, SynFP no, MaxClients/MaxClientsPerIP 1000. Before the rounds
// `asmtpd --blocklist add 127.0.20.0/24 1h` blocks the blocked clients' network (the daemon picks
// it up within a second, block.reload).
// Clients: --sessions workers, each connecting again and again from its own source address
// (blocked: 127.0.20.N, ordinary: 127.0.21.N), one connection at a time, for --seconds per phase.
// A connection's replies are checked (blocked: 421 then the server's close; ordinary: 220, 250,
// 250, 250, 221); anything else is an error and counted.
// CPU: the daemon's process tree (/proc, bench/smtp/lib.mjs treeCpu) before and after each
// phase; the machine's busy time over the phase minus the daemon's and this process's is the
// "other load" (in cores) — the machine is shared. The loopback DNS server's CPU is shown apart.
//
// Options:
//   --sessions N     parallel client connections (20)
//   --seconds S      length of each phase (5)
//   --rounds N       (5)
//   --warmup S       seconds of each kind before the rounds (2)
//   --rcpt ADDR      the ordinary session's recipient (avenger@example.test: AvengerUser, no scripts)
//   --json FILE      also write the results as JSON
import { fork, spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Conn } from '../smtp/latency-client.mjs';
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
  treeCpu,
  waitGreeting,
} from '../smtp/lib.mjs';

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : def;
};
const SESSIONS = Number(opt('sessions', 20));
const SECONDS = Number(opt('seconds', 5));
const ROUNDS = Number(opt('rounds', 5));
const WARMUP = Number(opt('warmup', 2));
const RCPT = opt('rcpt', 'avenger@example.test');
const JSON_FILE = opt('json', null);
if (process.getuid?.() !== 0) throw new Error('run as root: the daemon binds, drops privileges and reads accounts');

const harness = await loadHarness();
const bin = join(root, 'packages', 'asmtpd', 'bin', 'asmtpd');

// ---------------------------------------------------------------- DNS and asmtpd
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

async function startAsmtpd(doh) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-blocklist-'));
  chmodSync(dir, 0o755);
  const etc = join(dir, 'etc');
  mkdirSync(etc, { mode: 0o755 });
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
    'MaxClients 1000',
    'MaxClientsPerIP 1000',
    'DNSResolver tangerine',
    'DNSProtocol http',
    `DNSServer ${doh}`,
    'SMTPCB no',
    'SynFP no',
    '',
  ];
  writeFileSync(conf, lines.join('\n'));
  const logFile = join(tmpdir(), 'bench-blocklist-asmtpd.log'); // kept after the run
  const logFd = openSync(logFile, 'w');
  const p = spawn(process.execPath, [bin, '-d', '-f', conf], {
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
    confPath: conf,
    logFile,
    conf: lines.filter((l) => l && !/^(SMTPPort|DBDir|EtcDir|DNSServer) /.test(l)),
    stop: async () => {
      p.kill('SIGTERM');
      await Promise.race([new Promise((r) => p.once('exit', r)), sleep(8000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- one connection of each kind
const closedOf = (c) => (c.closed ? Promise.resolve() : new Promise((r) => c.sock.once('close', r)));

async function blockedConnection(port, local) {
  const c = new Conn('127.0.0.1', port, local);
  try {
    await c.cmd(null, 4); // 421 4.7.1 at once
    await closedOf(c); // closed by the server
  } finally {
    c.close();
  }
}

async function ordinaryConnection(port, local) {
  const c = new Conn('127.0.0.1', port, local);
  try {
    await c.cmd(null, 2);
    await c.cmd('EHLO client.bench.test\r\n', 2);
    await c.cmd('MAIL FROM:<sender@bench-source.test>\r\n', 2);
    await c.cmd(`RCPT TO:<${RCPT}>\r\n`, 2);
    await c.cmd('QUIT\r\n', 2);
    await closedOf(c);
  } finally {
    c.close();
  }
}

/** --sessions workers connecting again and again for `seconds`: connections, errors, elapsed. */
async function phase(kind, port, seconds) {
  const one = kind === 'blocked' ? blockedConnection : ordinaryConnection;
  const net = kind === 'blocked' ? '127.0.20' : '127.0.21';
  const until = Date.now() + seconds * 1000;
  let done = 0;
  let errors = 0;
  let firstError;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, i) => {
      const local = `${net}.${i + 1}`;
      while (Date.now() < until) {
        try {
          await one(port, local);
          done++;
        } catch (e) {
          errors++;
          firstError ??= e.message;
        }
      }
    }),
  );
  return { connections: done, errors, firstError, elapsedMs: performance.now() - started };
}

async function measured(kind, asmtpd, dns) {
  const cpu0 = treeCpu(asmtpd.pid);
  const dns0 = treeCpu(dns.pid);
  const me0 = process.cpuUsage();
  const busy0 = cpuBusy();
  const r = await phase(kind, asmtpd.port, SECONDS);
  const busy1 = cpuBusy();
  const me = process.cpuUsage(me0);
  const asmtpdCpuS = treeCpu(asmtpd.pid) - cpu0;
  const clientCpuS = (me.user + me.system) / 1e6;
  const dnsCpuS = treeCpu(dns.pid) - dns0;
  const busyS = (busy1.total - busy1.idle - (busy0.total - busy0.idle)) / CLK_TCK;
  const s = r.elapsedMs / 1000;
  return {
    kind,
    ...r,
    perSec: r.connections / s,
    asmtpdCpuMsPerConn: (asmtpdCpuS * 1000) / Math.max(1, r.connections),
    asmtpdCores: asmtpdCpuS / s,
    clientCores: clientCpuS / s,
    dnsCores: dnsCpuS / s,
    otherCores: Math.max(0, busyS - asmtpdCpuS - clientCpuS - dnsCpuS) / s,
  };
}

// ---------------------------------------------------------------- main
const busyBefore = await busyPercent(2000);
if (busyBefore > 10) log(`WARNING: the machine is already ${busyBefore.toFixed(0)}% busy before the benchmark`);
const dns = await startDns();
const asmtpd = await startAsmtpd(dns.doh);
const results = [];
const notes = [];
try {
  const add = spawnSync(process.execPath, [bin, '--blocklist', '-f', asmtpd.confPath, 'add', '127.0.20.0/24', '1h'], {
    encoding: 'utf8',
  });
  if (add.status !== 0) throw new Error(`--blocklist add: ${add.stderr}`);
  for (let i = 0; i < 50 && !readFileSync(asmtpd.logFile, 'utf8').includes('"block.reload"'); i++) await sleep(100);
  if (WARMUP > 0) {
    const w = [await phase('blocked', asmtpd.port, WARMUP), await phase('ordinary', asmtpd.port, WARMUP)];
    const bad = w.find((x) => x.errors);
    if (bad) throw new Error(`warm-up: ${bad.errors} errors, the first: ${bad.firstError}`);
  }
  const kinds = ['blocked', 'ordinary'];
  for (let round = 1; round <= ROUNDS; round++) {
    const order = kinds.map((_, i) => kinds[(i + round - 1) % kinds.length]);
    for (const kind of order) {
      const r = await measured(kind, asmtpd, dns);
      results.push({ round, ...r });
      log(
        `round ${round} ${kind}: ${r.connections} connections, ${r.perSec.toFixed(0)}/s, ` +
          `asmtpd ${r.asmtpdCpuMsPerConn.toFixed(3)} ms CPU each, other load ${r.otherCores.toFixed(2)} cores, errors ${r.errors}`,
      );
      if (r.errors) notes.push(`round ${round} ${kind}: ${r.errors} errors, the first: ${r.firstError}`);
      await sleep(500); // let TIME_WAIT and the stats flush settle between phases
    }
  }
} finally {
  await asmtpd.stop();
  await dns.stop();
}

// ---------------------------------------------------------------- report
const m = machine();
const sum = (kind) => {
  const rs = results.filter((r) => r.kind === kind);
  const med = (g) => median(rs.map(g));
  return {
    kind,
    perSec: med((r) => r.perSec),
    perSecEach: rs.map((r) => Math.round(r.perSec)),
    cpuMs: med((r) => r.asmtpdCpuMsPerConn),
    asmtpdCores: med((r) => r.asmtpdCores),
    clientCores: med((r) => r.clientCores),
    dnsCores: med((r) => r.dnsCores),
    otherCores: med((r) => r.otherCores),
    errors: rs.reduce((a, r) => a + r.errors, 0),
  };
};
const B = sum('blocked');
const O = sum('ordinary');
const ratios = results
  .filter((r) => r.kind === 'blocked')
  .map((b) => b.perSec / (results.find((o) => o.kind === 'ordinary' && o.round === b.round)?.perSec ?? NaN));
const cpuRatios = results
  .filter((r) => r.kind === 'ordinary')
  .map(
    (o) =>
      o.asmtpdCpuMsPerConn /
      (results.find((b) => b.kind === 'blocked' && b.round === o.round)?.asmtpdCpuMsPerConn ?? NaN),
  );
const f = (x, d = 2) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
const lines = [
  `command: node bench/blocklist/run.mjs ${argv.join(' ')}`.trim(),
  `machine: ${m.cpu}, ${m.memGiB} GiB, ${m.os}, kernel ${m.kernel}, node ${m.node}, asmtpd ${m.asmtpdCommit}; busy before ${f(busyBefore, 0)}%`,
  `asmtpd: ${asmtpd.conf.join('; ')}`,
  `${ROUNDS} rounds × ${SECONDS} s per kind, ${SESSIONS} parallel connections, medians over rounds:`,
  '| clients | connections/s | each round | asmtpd CPU ms/connection | asmtpd cores | client cores | DNS server cores | other load (cores) | errors |',
  '|---|---|---|---|---|---|---|---|---|',
  ...[B, O].map(
    (s) =>
      `| ${s.kind} | ${f(s.perSec, 0)} | ${s.perSecEach.join(', ')} | ${f(s.cpuMs, 3)} | ${f(s.asmtpdCores)} | ${f(s.clientCores)} | ${f(s.dnsCores)} | ${f(s.otherCores)} | ${s.errors} |`,
  ),
  `rate ratio blocked/ordinary per round: ${ratios.map((x) => f(x, 1)).join(', ')} (median ${f(median(ratios), 1)}×; aim ≥ 5×)`,
  `asmtpd CPU per connection, ordinary/blocked per round: ${cpuRatios.map((x) => f(x, 1)).join(', ')} (median ${f(median(cpuRatios), 1)}×)`,
  ...notes,
];
console.log(lines.join('\n'));
if (JSON_FILE)
  writeFileSync(JSON_FILE, JSON.stringify({ machine: m, busyBefore, results, blocked: B, ordinary: O }, null, 2));
