#!/usr/bin/env node
// 10,000 concurrent idle connections (issue 7, item 5). By hand, as root, from the repo root,
// on a quiet machine:
//
//   pnpm build
//   node bench/load/idle.mjs [--connections 10000] [--json /tmp/load-idle.json]
//
// One asmtpd (`asmtpd -d -f CONF` as root, dropping to DaemonUser asmtpd; MaxClients and MaxClientsPerIP
// 20000, SMTPTimeout 30m so nobody is cut during the run, RelayNet 127.0.0.1/32, RelayHost =
// Postfix's smtp-sink, a quiet loopback DNS server) started through `prlimit --nofile=65536:65536`;
// this script re-executes itself through prlimit too when its own RLIMIT_NOFILE is too low.
//
//   1. warm-up: --warmup whole transactions (JIT, allocator, spool), then a quiet pause
//   2. baseline: RSS of the daemon and its process tree (runner, spawner), heap (preload),
//      then --probes probes one at a time, --probe-gap ms apart, alternately: connect → 220
//      ("banner") and a whole session connect → 220 → EHLO … DATA → 250 → QUIT → 221 ("session")
//      to the sink; all probes come from 127.0.0.1
//   3. open --connections idle connections from --addresses source addresses (127.0.0.10,
//      127.0.0.11, …; spreads the ephemeral ports), --concurrency connects in flight; each
//      reads its 220 banner and then sits; RSS sampled every 1,000
//   4. with all of them open: settle, RSS and heap, the same probes again, RSS again
//   5. one more connection beyond MaxClients is not tried here (the CI test does it)
//   6. close them all, wait until the daemon has no session, RSS after (and after a full GC)
// Aim: RSS with the connections open < 1 GiB; p99 of new-client service < 100 ms.
//
// Options:
//   --connections N   idle connections (10000)
//   --addresses N     client source addresses 127.0.0.10 … (10)
//   --concurrency N   connects in flight while opening (200)
//   --probes N        probes per phase, half banner, half session (200)
//   --probe-gap MS    pause between probes (20)
//   --warmup N        warm-up transactions (300)
//   --settle MS       pause before memory is read (5000)
//   --max-clients N   MaxClients and MaxClientsPerIP (20000)
//   --json FILE       write every figure as JSON
import { writeFileSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import {
  bannerTime,
  connectRaw,
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
  nofileLimit,
  CLK_TCK,
  cpuBusy,
} from './lib.mjs';

const USAGE = readFileSync(new URL(import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('//'))
  .map((l) => l.slice(3))
  .join('\n');
const opts = parseOptions(
  {
    connections: 10_000,
    addresses: 10,
    concurrency: 200,
    probes: 200,
    'probe-gap': 20,
    warmup: 300,
    settle: 5000,
    'max-clients': 20_000,
    json: '',
  },
  USAGE,
);
requireRoot();
ensureNofile(opts.connections + 2000);

const result = {
  options: opts,
  node: process.version,
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  memGiB: totalmem() / 2 ** 30,
  loadBefore: loadAverage(),
  cpuBusyBefore: await cpuBusy(2000),
  nofile: nofileLimit(),
};
log(`load average ${result.loadBefore.join(' ')}, CPU busy ${(result.cpuBusyBefore * 100).toFixed(0)} % before start`);

const dns = await startQuietDns();
const sink = await startSmtpSink();
const daemon = await startAsmtpd({
  name: 'idle',
  dns,
  conf: [
    `MaxClients ${opts['max-clients']}`,
    `MaxClientsPerIP ${opts['max-clients']}`,
    'SMTPTimeout 30m',
    'LocalDomain example.test',
    'RelayNet 127.0.0.1/32',
    `RelayHost 127.0.0.1:${sink.port}`,
  ],
});
result.daemonNofile = nofileLimit(daemon.pid);
log(
  `asmtpd pid ${daemon.pid} port ${daemon.port} (RLIMIT_NOFILE ${result.daemonNofile.soft}), smtp-sink port ${sink.port}, log ${daemon.logFile}`,
);

const idle = [];
let exit = 1;
const memLine = (label, m, h) =>
  `${label}: daemon RSS ${fmt(mib(m.rss))} MiB, tree ${fmt(mib(m.treeRss))} MiB (${m.tree.map((r) => `${r.name} ${fmt(mib(r.rss))}`).join(', ')}), fds ${m.fds}` +
  (h
    ? `, heap used ${fmt(mib(h.heapUsed))} of ${fmt(mib(h.heapTotal))} MiB, external ${fmt(mib(h.external))} MiB`
    : '');

async function probes(label) {
  const banner = [];
  const session = [];
  const accepted = [];
  const errors = [];
  const t = Date.now();
  const ticks0 = memory(daemon.pid).ticks;
  for (let i = 0; i < opts.probes; i++) {
    try {
      if (i % 2 === 0) banner.push(await bannerTime(daemon.port, '127.0.0.1'));
      else {
        const r = await transaction(daemon.port, { localAddress: '127.0.0.1' });
        session.push(r.done);
        accepted.push(r.accepted);
      }
    } catch (e) {
      errors.push(e.message);
    }
    await sleep(opts['probe-gap']);
  }
  const r = {
    banner: summary(banner),
    session: summary(session),
    accepted: summary(accepted),
    errors,
    seconds: (Date.now() - t) / 1000,
    daemonCpuSeconds: (memory(daemon.pid).ticks - ticks0) / CLK_TCK,
  };
  log(
    `${label} probes: banner p50 ${fmt(r.banner.p50, 2)} p99 ${fmt(r.banner.p99, 2)} max ${fmt(r.banner.max, 2)} ms; ` +
      `session p50 ${fmt(r.session.p50, 2)} p99 ${fmt(r.session.p99, 2)} max ${fmt(r.session.max, 2)} ms; errors ${errors.length}${errors.length ? ' ' + JSON.stringify(errors.slice(0, 3)) : ''}`,
  );
  return r;
}

/** Open one idle connection: connect, read the 220, keep it. */
async function openIdle(i) {
  const addr = `127.0.0.${10 + (i % opts.addresses)}`;
  const start = process.hrtime.bigint();
  const c = await connectRaw(daemon.port, addr);
  const r = await c.reply(60_000);
  if (r.code !== 220) {
    c.destroy();
    throw new Error(`banner ${r.last}`);
  }
  c.bannerMs = Number(process.hrtime.bigint() - start) / 1e6;
  // anything the daemon says later (a 421) is noted; an idle client never writes
  c.socket.on('data', () => (c.spoke = true));
  return c;
}

try {
  // 1. warm-up
  for (let i = 0; i < opts.warmup; i++) await transaction(daemon.port, { localAddress: '127.0.0.1' });
  await sleep(opts.settle);
  // 2. baseline
  result.before = { ...memory(daemon.pid), heap: await daemon.heap('raw'), heapGc: await daemon.heap('gc') };
  await sleep(1000);
  result.before.rssAfterGc = memory(daemon.pid).rss;
  log(
    memLine('before', result.before, result.before.heap) +
      `; after a full GC: RSS ${fmt(mib(result.before.rssAfterGc))} MiB, heap used ${fmt(mib(result.before.heapGc.heapUsed))} MiB`,
  );
  result.probesBefore = await probes('idle server');

  // 3. open the idle connections
  const openStart = Date.now();
  const openTicks = memory(daemon.pid).ticks;
  const failures = [];
  const growth = [];
  let next = 0;
  const worker = async () => {
    while (next < opts.connections) {
      const i = next++;
      try {
        idle.push(await openIdle(i));
      } catch (e) {
        failures.push(`#${i}: ${e.message}`);
      }
      if (idle.length % 1000 === 0 && idle.length) {
        const m = memory(daemon.pid);
        growth.push({ open: idle.length, rss: m.rss, treeRss: m.treeRss, fds: m.fds, at: Date.now() - openStart });
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  const bannerMs = idle.map((c) => c.bannerMs);
  result.opening = {
    opened: idle.length,
    failures: failures.length,
    failureSample: failures.slice(0, 10),
    seconds: (Date.now() - openStart) / 1000,
    daemonCpuSeconds: (memory(daemon.pid).ticks - openTicks) / CLK_TCK,
    banner: summary(bannerMs),
    growth: growth.map((g) => ({ ...g, rssMiB: Number(fmt(mib(g.rss))) })),
  };
  log(
    `opened ${idle.length} idle connections in ${fmt(result.opening.seconds)} s (${failures.length} failed${failures.length ? ': ' + failures.slice(0, 3).join('; ') : ''}); ` +
      `banner under the connect storm p50 ${fmt(result.opening.banner.p50, 1)} p99 ${fmt(result.opening.banner.p99, 1)} ms`,
  );
  for (const g of growth)
    log(`  ${g.open} open: daemon RSS ${fmt(mib(g.rss))} MiB, tree ${fmt(mib(g.treeRss))} MiB, fds ${g.fds}`);

  // 4. with all of them open
  await sleep(opts.settle);
  result.open = { ...memory(daemon.pid), heap: await daemon.heap('raw') };
  log(memLine(`${idle.length} open`, result.open, result.open.heap));
  result.probesOpen = await probes(`${idle.length} open`);
  result.openAfterProbes = memory(daemon.pid);
  result.openGc = await daemon.heap('gc');
  await sleep(1000);
  result.openAfterGcRss = memory(daemon.pid).rss;
  log(
    memLine('after the probes', result.openAfterProbes) +
      `; after a full GC: RSS ${fmt(mib(result.openAfterGcRss))} MiB, heap used ${fmt(mib(result.openGc.heapUsed))} MiB`,
  );
  result.cutWhileOpen = idle.filter((c) => c.spoke || c.closed).length;
  if (result.cutWhileOpen)
    log(`WARNING: ${result.cutWhileOpen} idle connections were spoken to or closed by the daemon`);

  // 6. close them all
  const closeStart = Date.now();
  for (const c of idle.splice(0)) c.destroy();
  const baseFds = result.before.fds;
  while (Date.now() - closeStart < 60_000 && memory(daemon.pid).fds > baseFds + 20) await sleep(200);
  result.closeSeconds = (Date.now() - closeStart) / 1000;
  await sleep(opts.settle);
  result.after = { ...memory(daemon.pid), heap: await daemon.heap('raw'), heapGc: await daemon.heap('gc') };
  await sleep(1000);
  result.after.rssAfterGc = memory(daemon.pid).rss;
  log(
    memLine('after closing', result.after, result.after.heap) +
      `; after a full GC: RSS ${fmt(mib(result.after.rssAfterGc))} MiB, heap used ${fmt(mib(result.after.heapGc.heapUsed))} MiB`,
  );
  result.probesAfter = await probes('after closing');

  // the daemon's own account: sessions and anything bad in its log
  const logText = readFileSync(daemon.logFile, 'utf8');
  const count = (ev) => (logText.match(new RegExp(`"event":"${ev}"`, 'g')) ?? []).length;
  result.daemonLog = {
    connects: count('session.connect'),
    ends: count('session.end'),
    refused: count('session.refused'),
    errors: (logText.match(/"level":"(error|fatal)"/g) ?? []).length,
    daemonErrors: count('daemon.error'),
  };
  result.sinkMessages = sink.count();
  result.loadAfter = loadAverage();

  // verdicts
  const n = result.opening.opened;
  result.perConnectionKiB = (result.open.rss - result.before.rss) / n / 1024;
  result.perConnectionTreeKiB = (result.open.treeRss - result.before.treeRss) / n / 1024;
  result.perConnectionHeapKiB = (result.openGc.heapUsed - result.before.heapGc.heapUsed) / n / 1024;
  const worstP99 = Math.max(result.probesOpen.banner.p99, result.probesOpen.session.p99);
  result.verdict = {
    allOpened: n === opts.connections,
    rssUnder1GiB: Math.max(result.open.treeRss, result.openAfterProbes.treeRss) < 2 ** 30,
    serviceUnder100ms: worstP99 < 100 && result.probesOpen.errors.length === 0,
  };
  log(
    `per idle connection: daemon RSS ${fmt(result.perConnectionKiB)} KiB, tree ${fmt(result.perConnectionTreeKiB)} KiB, live heap ${fmt(result.perConnectionHeapKiB)} KiB`,
  );
  log(`daemon log: ${JSON.stringify(result.daemonLog)}; sink got ${result.sinkMessages} messages`);
  log(
    `verdict: all ${opts.connections} opened: ${result.verdict.allOpened}; RSS (tree) with them open ${fmt(mib(Math.max(result.open.treeRss, result.openAfterProbes.treeRss)))} MiB < 1 GiB: ${result.verdict.rssUnder1GiB}; ` +
      `new-client p99 ${fmt(worstP99, 1)} ms < 100 ms: ${result.verdict.serviceUnder100ms}`,
  );
  log(`load average ${result.loadAfter.join(' ')} at the end`);
  exit = Object.values(result.verdict).every(Boolean) && result.daemonLog.errors === 0 ? 0 : 1;
} catch (e) {
  console.error(e);
  console.error(daemon.tail());
} finally {
  for (const c of idle) c.destroy();
  await daemon.stop();
  sink.stop();
  await dns.stop();
  if (opts.json) writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
}
process.exit(exit);
