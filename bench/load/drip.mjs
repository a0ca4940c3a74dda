#!/usr/bin/env node
// Slow drip at scale (issue 7, item 5). By hand, as root, from the repo root, on a quiet machine:
//
//   pnpm build
//   node bench/load/drip.mjs [--drippers 2000] [--seconds 120] [--json /tmp/load-drip.json]
//
// One asmtpd (as in idle.mjs: root, drops to DaemonUser asmtpd, prlimit, quiet DNS, RelayHost = smtp-sink;
// SMTPTimeout --timeout, MaxClients/MaxClientsPerIP 20000). First --baseline seconds of normal
// clients alone; then --drippers connections from 127.0.0.10 … (--addresses of them) each read
// the banner and send one byte of "NOOP\r\n" every --every seconds — a byte well within the
// timeout, a whole command far beyond it — and connect again as soon as they are cut, for
// --seconds; the normal clients go on all the time. A normal client is --normal loops of whole
// sessions from 127.0.0.1 (connect → 220 → EHLO … DATA → 250 → QUIT → 221, 1 KB, to the sink),
// one after the other, --normal-gap ms apart.
// Reported: how many drip connections were cut, and when: the time from connect() to the
// 421 4.4.2 minus SMTPTimeout ("late", p50/p99/max: includes the accept and the 421's way back;
// "early" if any came before the timeout);
// anything else a dripper got; normal-session latency before and during the drip (p50/p99/max),
// errors; the daemon's CPU and RSS.
// Aim: drippers cut on time (late p99 < 1 s), normal sessions all served with their usual latency.
//
// Options:
//   --drippers N     concurrent drip connections (2000)
//   --addresses N    dripper source addresses 127.0.0.10 … (4)
//   --every S        seconds between a dripper's bytes (3)
//   --timeout S      SMTPTimeout of the daemon (10)
//   --seconds N      length of the drip phase (120)
//   --baseline N     seconds of normal clients alone first (20)
//   --normal N       normal client loops (2)
//   --normal-gap MS  pause between a loop's sessions (50)
//   --json FILE      write every figure as JSON
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import {
  connectRaw,
  cpuBusy,
  ensureNofile,
  fmt,
  loadAverage,
  log,
  memory,
  mib,
  parseOptions,
  requireRoot,
  sleep,
  startAsmtpd,
  startQuietDns,
  startSmtpSink,
  summary,
  transaction,
  CLK_TCK,
} from './lib.mjs';

const USAGE = readFileSync(new URL(import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('//'))
  .map((l) => l.slice(3))
  .join('\n');
const opts = parseOptions(
  {
    drippers: 2000,
    addresses: 4,
    every: 3,
    timeout: 10,
    seconds: 120,
    baseline: 20,
    normal: 2,
    'normal-gap': 50,
    json: '',
  },
  USAGE,
);
requireRoot();
ensureNofile(opts.drippers * 2 + 2000);

const result = {
  options: opts,
  node: process.version,
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  memGiB: totalmem() / 2 ** 30,
  loadBefore: loadAverage(),
  cpuBusyBefore: await cpuBusy(2000),
};
log(`load average ${result.loadBefore.join(' ')}, CPU busy ${(result.cpuBusyBefore * 100).toFixed(0)} % before start`);
const dns = await startQuietDns();
const sink = await startSmtpSink();
const daemon = await startAsmtpd({
  name: 'drip',
  dns,
  conf: [
    'MaxClients 20000',
    'MaxClientsPerIP 20000',
    `SMTPTimeout ${opts.timeout}s`,
    'LocalDomain example.test',
    'RelayNet 127.0.0.1/32',
    `RelayHost 127.0.0.1:${sink.port}`,
  ],
});
log(`asmtpd pid ${daemon.pid} port ${daemon.port}, smtp-sink port ${sink.port}, log ${daemon.logFile}`);

const timeoutMs = opts.timeout * 1000;
const TEXT = 'NOOP\r\n';
const drip = { cuts: 0, lateMs: [], early: 0, other: {}, connectErrors: 0, bytes: 0, open: 0, maxOpen: 0 };
let dripping = false;
const normal = { phase: 'baseline', baseline: [], during: [], after: [], errors: [] };
let stopNormal = false;

async function dripper(i) {
  const addr = `127.0.0.${10 + (i % opts.addresses)}`;
  // spread the first connections over one byte period
  await sleep(Math.random() * opts.every * 1000);
  while (dripping) {
    let c;
    // the daemon arms SMTPTimeout when it accepts the connection: timed from just before connect()
    const connectAt = Date.now();
    try {
      c = await connectRaw(daemon.port, addr);
    } catch {
      drip.connectErrors++;
      await sleep(1000);
      continue;
    }
    drip.open++;
    drip.maxOpen = Math.max(drip.maxOpen, drip.open);
    let timer = null;
    try {
      const b = await c.reply(60_000);
      if (b.code !== 220) {
        drip.other[b.last] = (drip.other[b.last] ?? 0) + 1;
        continue;
      }
      let n = 0;
      timer = setInterval(() => {
        c.write(TEXT[n++ % TEXT.length]);
        drip.bytes++;
      }, opts.every * 1000);
      const r = await c.reply(timeoutMs + 60_000);
      const ms = Date.now() - connectAt;
      if (r.last.startsWith('421 4.4.2 ')) {
        drip.cuts++;
        if (ms < timeoutMs - 5) drip.early++;
        drip.lateMs.push(ms - timeoutMs);
      } else drip.other[r.last] = (drip.other[r.last] ?? 0) + 1;
    } catch (e) {
      drip.other[e.message.slice(0, 60)] = (drip.other[e.message.slice(0, 60)] ?? 0) + 1;
    } finally {
      if (timer) clearInterval(timer);
      c.destroy();
      drip.open--;
    }
  }
}

async function normalLoop() {
  while (!stopNormal) {
    try {
      const r = await transaction(daemon.port, { localAddress: '127.0.0.1' });
      normal[normal.phase].push(r.done);
    } catch (e) {
      normal.errors.push(`${normal.phase}: ${e.message}`);
    }
    await sleep(opts['normal-gap']);
  }
}

let exit = 1;
try {
  // warm-up, then the baseline
  for (let i = 0; i < 100; i++) await transaction(daemon.port, { localAddress: '127.0.0.1' });
  const loops = Array.from({ length: opts.normal }, normalLoop);
  await sleep(opts.baseline * 1000);
  result.before = memory(daemon.pid);
  const ticks0 = result.before.ticks;
  log(`baseline: ${normal.baseline.length} normal sessions, RSS ${fmt(mib(result.before.rss))} MiB`);

  normal.phase = 'during';
  dripping = true;
  const started = Date.now();
  const drippers = Array.from({ length: opts.drippers }, (_, i) => dripper(i));
  const samples = [];
  while (Date.now() - started < opts.seconds * 1000) {
    await sleep(10_000);
    const m = memory(daemon.pid);
    samples.push({
      s: (Date.now() - started) / 1000,
      rss: m.rss,
      fds: m.fds,
      open: drip.open,
      cuts: drip.cuts,
      normal: normal.during.length,
    });
    log(
      `${fmt((Date.now() - started) / 1000, 0)} s: ${drip.open} drip connections open, ${drip.cuts} cut, normal sessions ${normal.during.length} ` +
        `(errors ${normal.errors.length}), RSS ${fmt(mib(m.rss))} MiB, fds ${m.fds}`,
    );
  }
  const during = memory(daemon.pid);
  result.daemonCpuDuring = (during.ticks - ticks0) / CLK_TCK / ((Date.now() - started) / 1000);
  dripping = false;
  normal.phase = 'after';
  await Promise.all(drippers);
  await sleep(5000);
  stopNormal = true;
  await Promise.all(loops);
  result.samples = samples;
  result.maxRss = Math.max(...samples.map((s) => s.rss));
  result.drip = {
    cuts: drip.cuts,
    late: summary(drip.lateMs),
    early: drip.early,
    other: drip.other,
    connectErrors: drip.connectErrors,
    bytes: drip.bytes,
    maxOpen: drip.maxOpen,
  };
  result.normal = {
    baseline: summary(normal.baseline),
    during: summary(normal.during),
    after: summary(normal.after),
    errors: normal.errors.slice(0, 20),
    errorCount: normal.errors.length,
  };
  const logText = readFileSync(daemon.logFile, 'utf8');
  result.daemonLogErrors = (logText.match(/"level":"(error|fatal)"/g) ?? []).length;
  result.loadAfter = loadAverage();

  const n = result.normal;
  log(
    `drip: ${drip.cuts} connections cut with 421 4.4.2 (max ${drip.maxOpen} open at once, ${drip.bytes} bytes dripped); after SMTPTimeout + ` +
      `p50 ${fmt(result.drip.late.p50, 0)} p99 ${fmt(result.drip.late.p99, 0)} max ${fmt(result.drip.late.max, 0)} ms; early ${drip.early}; other ${JSON.stringify(drip.other)}`,
  );
  for (const k of ['baseline', 'during', 'after'])
    log(`normal sessions ${k}: ${n[k].n}, p50 ${fmt(n[k].p50, 1)} p99 ${fmt(n[k].p99, 1)} max ${fmt(n[k].max, 1)} ms`);
  log(
    `normal errors: ${n.errorCount}${n.errorCount ? ' ' + JSON.stringify(n.errors.slice(0, 3)) : ''}; daemon CPU during the drip ${fmt(result.daemonCpuDuring * 100, 0)} % of a core (tree); ` +
      `RSS ${fmt(mib(result.before.rss))} → max ${fmt(mib(result.maxRss))} MiB; error lines in the daemon log ${result.daemonLogErrors}`,
  );
  log(`load average ${result.loadAfter.join(' ')} at the end`);
  result.verdict = {
    cutOnTime: drip.cuts > 0 && drip.early === 0 && result.drip.late.p99 < 1000 && Object.keys(drip.other).length === 0,
    normalServed: n.errorCount === 0 && n.during.n > 0,
    normalLatencyKept: n.during.p99 < Math.max(100, 2 * n.baseline.p99),
  };
  log(`verdict: ${JSON.stringify(result.verdict)}`);
  exit = Object.values(result.verdict).every(Boolean) ? 0 : 1;
} catch (e) {
  console.error(e);
  console.error(daemon.tail());
} finally {
  dripping = false;
  stopNormal = true;
  await daemon.stop();
  sink.stop();
  await dns.stop();
  if (opts.json) writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
}
process.exit(exit);
