#!/usr/bin/env node
// Workers (issue 21, item 1): does throughput grow with SMTP worker processes?
//
//   node bench/workers/run.mjs [--messages 3000] [--sessions 20] [--size 4096] [--rounds 2] [--ipc-only]
//
// As root (the daemon gives up root as in production), from the repo root after `pnpm build`.
// The load generator (Postfix's smtp-source, a new connection per message, 20 sessions) and the
// sink (smtp-sink, as RelayHost) run pinned to CPU 0 with `taskset -c 0`; so does this script and
// its quiet loopback DNS server (NXDOMAIN for every name: the connect-time facts are asked, and
// cheap). asmtpd runs in four placements, in a rotating order, `rounds` times:
//   W1@cpu1   Workers 1, asmtpd pinned to CPU 1 (one core of its own)
//   W2@cpu1   Workers 2 on that same one core: the price of the primary hop, nothing to gain
//   W1@all    Workers 1, free to use both cores (the load takes part of CPU 0)
//   W2@all    Workers 2, free to use both cores: what the workers add
// Figures per run: messages/s (smtp-source's wall time for `messages`, after a 300-message warm-up
// per daemon) and CPU per message summed over every process of the daemon (primary, workers, the
// script runner), from /proc/PID/stat before and after.
// --ipc-only: the cost of one IPC round trip of daemon/ipc.ts (what a worker pays per connection
// for MaxClients/MaxClientsPerIP), 20,000 sequential calls to a forked child.
import { spawn, spawnSync, fork } from 'node:child_process';
import { mkdtempSync, writeFileSync, chmodSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createServer } from 'node:net';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const MESSAGES = arg('messages', 3000);
const SESSIONS = arg('sessions', 20);
const SIZE = arg('size', 4096);
const ROUNDS = arg('rounds', 2);
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const { createIpc } = await import(pathToFileURL(join(root, 'packages/asmtpd/dist/daemon/ipc.js')).href);

if (process.argv[2] === '--ipc-child') {
  createIpc(process, { admit: () => 'ok' });
} else if (process.argv.includes('--ipc-only')) {
  console.log(JSON.stringify(await ipcCost()));
  process.exit(0);
} else {
  await main();
}

async function ipcCost() {
  const child = fork(fileURLToPath(import.meta.url), ['--ipc-child']);
  const ipc = createIpc(child, {});
  for (let i = 0; i < 2000; i++) await ipc.call('admit', { ip: '127.0.0.1', maxClients: 500, maxPerIp: 10 });
  const n = 20_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await ipc.call('admit', { ip: '127.0.0.1', maxClients: 500, maxPerIp: 10 });
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  child.kill();
  return { ipc_round_trip_us: Number(us.toFixed(1)), calls: n };
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** CPU seconds of a process and all its descendants (alive now) */
function treeCpu(pid) {
  const kids = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      const cpu = (Number(fields[11]) + Number(fields[12])) / TICKS;
      kids.set(Number(name), { ppid, cpu });
    } catch {
      /* gone */
    }
  }
  let total = 0;
  const walk = (p) => {
    const me = kids.get(p);
    if (me) total += me.cpu;
    for (const [k, v] of kids) if (v.ppid === p) walk(k);
  };
  walk(pid);
  return total;
}

async function startAsmtpd(dir, conf, cpus) {
  writeFileSync(join(dir, 'asmtpd.conf'), conf);
  const bin = join(root, 'packages/asmtpd/bin/asmtpd');
  const proc = spawn('taskset', ['-c', cpus, process.execPath, bin, '-d', '-f', join(dir, 'asmtpd.conf')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let text = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`asmtpd did not start: ${text.slice(-2000)}`)), 30_000);
    proc.stderr.on('data', (d) => {
      if (text.length < 100_000) text += d.toString();
      if (text.includes('"event":"daemon.start"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`asmtpd exited ${code}: ${text.slice(-2000)}`)));
  });
  proc.stderr.removeAllListeners('data');
  proc.stderr.resume();
  return proc;
}

/** smtp-source, asynchronously: the DNS server answers from this process's event loop */
function source(port, messages) {
  const t0 = process.hrtime.bigint();
  const args = ['-c', '0', 'smtp-source', '-s', String(SESSIONS), '-m', String(messages), '-l', String(SIZE)];
  args.push('-f', 'a@bench-source.test', '-t', 'r@elsewhere.test', `127.0.0.1:${port}`);
  const p = spawn('taskset', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => (err += d.toString()));
  return new Promise((resolve, reject) =>
    p.once('exit', (code) =>
      code === 0
        ? resolve(Number(process.hrtime.bigint() - t0) / 1e9)
        : reject(new Error(`smtp-source: ${code} ${err}`)),
    ),
  );
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root (the daemon gives up root as in production)');
  spawnSync('taskset', ['-cp', '0', String(process.pid)]);
  const { startDnsServer } = await import(pathToFileURL(join(root, 'test/dist/support/dns-server.js')).href);
  const dns = await startDnsServer({ doh: false });
  const sinkPort = await freePort();
  const sink = spawn('taskset', ['-c', '0', 'smtp-sink', '-u', 'nobody', `127.0.0.1:${sinkPort}`, '256'], {
    stdio: 'ignore',
  });
  await new Promise((r) => setTimeout(r, 300));
  const placements = [
    { name: 'W1@cpu1', workers: 1, cpus: '1' },
    { name: 'W2@cpu1', workers: 2, cpus: '1' },
    { name: 'W1@all', workers: 1, cpus: '0,1' },
    { name: 'W2@all', workers: 2, cpus: '0,1' },
  ];
  const results = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const order = placements.map((_, i) => placements[(i + round) % placements.length]);
      for (const p of order) {
        const dir = mkdtempSync(join(tmpdir(), 'asmtpd-bench-workers-'));
        chmodSync(dir, 0o755);
        const port = await freePort();
        const conf = [
          `SMTPPort ${port}`,
          'BindAddr 127.0.0.1',
          `DBDir ${join(dir, 'db')}`,
          `EtcDir ${dir}`,
          'Hostname mx.bench.test',
          'DNSResolver system',
          `DNSServer 127.0.0.1:${dns.udp.port}`,
          'SMTPCB no',
          'SynFP no',
          'BlockUnknownRcpts off',
          `RelayHost 127.0.0.1:${sinkPort}`,
          'RelayNet 127.0.0.1/32',
          'MaxClientsPerIP 500',
          'MaxClients 1000',
          `Workers ${p.workers}`,
        ].join('\n');
        const d = await startAsmtpd(dir, conf + '\n', p.cpus);
        try {
          await source(port, 300);
          const cpu0 = treeCpu(d.pid);
          const secs = await source(port, MESSAGES);
          const cpu = treeCpu(d.pid) - cpu0;
          const row = {
            round,
            placement: p.name,
            msgs_per_s: Math.round(MESSAGES / secs),
            cpu_ms_per_msg: Number(((cpu * 1000) / MESSAGES).toFixed(3)),
          };
          results.push(row);
          console.log(JSON.stringify(row));
        } finally {
          d.kill('SIGTERM');
          await new Promise((r) => d.once('exit', r));
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    sink.kill();
    await dns.close();
  }
  const summary = {};
  for (const p of placements) {
    const rows = results.filter((r) => r.placement === p.name);
    const med = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    summary[p.name] = {
      msgs_per_s: med(rows.map((r) => r.msgs_per_s)),
      cpu_ms_per_msg: med(rows.map((r) => r.cpu_ms_per_msg)),
    };
  }
  console.log(JSON.stringify({ messages: MESSAGES, sessions: SESSIONS, size: SIZE, rounds: ROUNDS, summary }, null, 1));
  console.log(JSON.stringify(await ipcCost()));
}
