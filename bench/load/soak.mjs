#!/usr/bin/env node
// Soak: steady load for a long time, the daemon's memory sampled (issue 7, item 5). By hand, as
// root, from the repo root, ALONE on a quiet machine (it is a memory measurement, but the latency
// figures and the CPU column assume nothing else runs):
//
//   pnpm build
//   node bench/load/soak.mjs [--minutes 30] [--rate 30] [--json /tmp/load-soak.json]
//
// One asmtpd (`asmtpd -d -f CONF` as root, dropping to DaemonUser asmtpd; RelayHost = Postfix's smtp-sink;
// a quiet loopback DNS server; LocalDomain example.test without users; RelayNet 127.0.0.1/32;
// SMTPTimeout 10s, MaxErrors 5, MaxMsgSize 1M, MaxClients 500, MaxClientsPerIP 200) gets --rate
// units of work a second (a token bucket shared by --clients client loops; a message is one unit,
// a bad session one unit) for --minutes:
//   good sessions (1 - --bad of the units, from 127.0.0.1): 1-3 messages on one connection,
//     1-2 recipients at relay.test, 1-32 KB bodies; each must get 250 and reach the sink
//   bad sessions (--bad, from 127.0.0.2-4), in turn: relaying denied (550 5.7.1), unknown local
//     user (550 5.1.1), garbage commands until MaxErrors (421 4.7.0), an HTTP request (502, then
//     421), a message cut off mid-DATA (FIN or RST), a 1.1 MB message (552 5.3.4), a bare LF in
//     the body (554 5.6.0), connect-and-vanish, an idle client and a byte-a-second dripper, both
//     left to SMTPTimeout (421 4.4.2; up to 20 of them at a time, not waited for)
// Every --sample seconds: VmRSS of the daemon and its process tree (runner, spawner), the
// daemon's heap (process.memoryUsage() through a preload, no forced GC), open fds, CPU, counts.
// At the end of the warm-up (--warmup-minutes) and at the end, also heap and RSS after a full GC.
// Reported: first/last/min/max and the least-squares trend (MiB per hour) of RSS, tree RSS and
// heap, over the samples after the warm-up; latency of the good messages (MAIL → 250 after the
// dot) and of the banner; outcomes per session kind; sink count vs messages accepted; the
// daemon's error lines.
// Aim: flat: RSS trend after the warm-up below --flat-mib-per-hour (10), and the GC'd heap at
// the end within 10 % (or 2 MiB) of the one after the warm-up.
//
// Options:
//   --minutes N          length of the measured run (30)
//   --warmup-minutes N   start of the trend window (5)
//   --rate N             units (messages or bad sessions) per second (30)
//   --clients N          concurrent client loops (4)
//   --bad F              share of units that are bad sessions (0.15)
//   --sample S           sampling period in seconds (10)
//   --flat-mib-per-hour N  verdict threshold for the RSS trend (10)
//   --json FILE          write every sample and figure as JSON
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { cpus, totalmem } from 'node:os';
import {
  body,
  connectRaw,
  cpuBusy,
  cpuTimes,
  fmt,
  linearTrend,
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
  CLK_TCK,
  smaps,
  smapsSummary,
  smapsGrowth,
} from './lib.mjs';

const USAGE = readFileSync(new URL(import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('//'))
  .map((l) => l.slice(3))
  .join('\n');
const opts = parseOptions(
  { minutes: 30, 'warmup-minutes': 5, rate: 30, clients: 4, bad: 0.15, sample: 10, 'flat-mib-per-hour': 10, json: '' },
  USAGE,
);
requireRoot();

const result = {
  options: opts,
  node: process.version,
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  memGiB: totalmem() / 2 ** 30,
  loadBefore: loadAverage(),
  cpuBusyBefore: await cpuBusy(3000),
  startedAt: new Date().toISOString(),
  samples: [],
};
log(`load average ${result.loadBefore.join(' ')}, CPU busy ${(result.cpuBusyBefore * 100).toFixed(0)} % before start`);

const dns = await startQuietDns();
const sink = await startSmtpSink();
const daemon = await startAsmtpd({
  name: 'soak',
  dns,
  conf: [
    'MaxClients 500',
    'MaxClientsPerIP 200',
    'SMTPTimeout 10s',
    'MaxErrors 5',
    'MaxMsgSize 1M',
    'LocalDomain example.test',
    'RelayNet 127.0.0.1/32',
    `RelayHost 127.0.0.1:${sink.port}`,
  ],
});
log(`asmtpd pid ${daemon.pid} port ${daemon.port}, smtp-sink port ${sink.port}, log ${daemon.logFile}`);

// ------------------------------------------------------------------------ load
const BAD_KINDS = [
  'relay-denied',
  'unknown-user',
  'garbage',
  'http',
  'cut-fin',
  'cut-rst',
  'oversize',
  'bare-lf',
  'vanish',
  'idle',
  'drip',
];
const stats = {
  accepted: 0,
  messageMs: [],
  bannerMs: [],
  window: { messageMs: [] },
  outcomes: {},
  unexpected: [],
  detached: 0,
};
const outcome = (kind, what) => {
  const k = `${kind}: ${what}`;
  stats.outcomes[k] = (stats.outcomes[k] ?? 0) + 1;
};
const unexpected = (kind, what) => {
  outcome(kind, `UNEXPECTED ${what}`);
  if (stats.unexpected.length < 50) stats.unexpected.push({ at: Date.now(), kind, what });
};

// token bucket: `rate` units a second, shared by every client loop
let tokens = 0;
let lastFill = Date.now();
async function take(n = 1) {
  for (;;) {
    const now = Date.now();
    tokens = Math.min(opts.rate, tokens + ((now - lastFill) / 1000) * opts.rate);
    lastFill = now;
    if (tokens >= n) {
      tokens -= n;
      return;
    }
    await sleep(Math.max(5, ((n - tokens) / opts.rate) * 1000));
  }
}

let seq = 0;
const rnd = (a, b) => a + Math.floor(Math.random() * (b - a + 1));
const bodySize = () => Math.round(1024 * Math.exp(Math.random() * Math.log(32))); // 1-32 KB, log-uniform

async function good() {
  const n = rnd(1, 3);
  await take(1);
  const started = process.hrtime.bigint();
  const c = await connectRaw(daemon.port, '127.0.0.1');
  try {
    const b = await c.reply();
    if (b.code !== 220) return unexpected('good', `banner ${b.last}`);
    stats.bannerMs.push(Number(process.hrtime.bigint() - started) / 1e6);
    if ((await c.cmd('EHLO soak.client.test')).code !== 250) return unexpected('good', 'EHLO');
    for (let i = 0; i < n; i++) {
      if (i > 0) await take(1);
      const t = process.hrtime.bigint();
      const m = await c.cmd(`MAIL FROM:<soak${seq++}@client.test>`);
      if (m.code !== 250) return unexpected('good', `MAIL ${m.last}`);
      for (let r = rnd(1, 2); r > 0; r--) {
        const rr = await c.cmd(`RCPT TO:<user${r}@relay.test>`);
        if (rr.code !== 250) return unexpected('good', `RCPT ${rr.last}`);
      }
      if ((await c.cmd('DATA')).code !== 354) return unexpected('good', 'DATA');
      c.write(body(bodySize(), String(seq)) + '.\r\n');
      const e = await c.reply();
      if (e.code !== 250) return unexpected('good', `end of data ${e.last}`);
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      stats.messageMs.push(ms);
      stats.window.messageMs.push(ms);
      stats.accepted++;
    }
    const q = await c.cmd('QUIT');
    if (q.code !== 221) return unexpected('good', `QUIT ${q.last}`);
    outcome('good', `${n} message(s) accepted`);
  } finally {
    c.destroy();
  }
}

async function expectReply(c, kind, line, re) {
  const r = line === null ? await c.reply() : await c.cmd(line);
  if (!re.test(r.last)) throw Object.assign(new Error(`${line ?? 'reply'} → ${r.last}`), { soak: true });
  return r;
}

let detachedNow = 0;
async function bad(kind) {
  await take(1);
  const source = `127.0.0.${rnd(2, 4)}`;
  const needsRelay = kind === 'cut-fin' || kind === 'cut-rst' || kind === 'oversize' || kind === 'bare-lf';
  const c = await connectRaw(daemon.port, needsRelay ? '127.0.0.1' : source);
  let closeMe = true;
  try {
    await expectReply(c, kind, null, /^220 /);
    switch (kind) {
      case 'relay-denied':
        await expectReply(c, kind, 'EHLO bad.client.test', /^250 /);
        await expectReply(c, kind, 'MAIL FROM:<spam@client.test>', /^250 /);
        await expectReply(c, kind, 'RCPT TO:<victim@elsewhere.test>', /^550 5\.7\.1 /);
        await expectReply(c, kind, 'QUIT', /^221 /);
        break;
      case 'unknown-user':
        await expectReply(c, kind, 'EHLO bad.client.test', /^250 /);
        await expectReply(c, kind, 'MAIL FROM:<spam@client.test>', /^250 /);
        await expectReply(c, kind, `RCPT TO:<nobody${rnd(1, 1e6)}@example.test>`, /^550 5\.1\.1 /);
        await expectReply(c, kind, 'QUIT', /^221 /);
        break;
      case 'garbage':
        for (let i = 0; i < 4; i++) await expectReply(c, kind, `XYZZY ${i} ${'q'.repeat(rnd(0, 100))}`, /^500 /);
        await expectReply(c, kind, 'PLUGH', /^500 /);
        await expectReply(c, kind, null, /^421 4\.7\.0 /);
        if (!(await c.waitClosed(5000))) throw new Error('not closed after 421');
        break;
      case 'http':
        c.write(
          'GET / HTTP/1.1\r\nHost: mx.example\r\nUser-Agent: soak\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n',
        );
        await expectReply(c, kind, null, /^502 5\.7\.0 /);
        for (let i = 0; i < 4; i++) await expectReply(c, kind, null, /^500 /);
        await expectReply(c, kind, null, /^421 4\.7\.0 /);
        break;
      case 'cut-fin':
      case 'cut-rst': {
        await expectReply(c, kind, 'EHLO cut.client.test', /^250 /);
        await expectReply(c, kind, 'MAIL FROM:<cut@client.test>', /^250 /);
        await expectReply(c, kind, 'RCPT TO:<someone@relay.test>', /^250 /);
        await expectReply(c, kind, 'DATA', /^354 /);
        c.write(body(rnd(2000, 20000), 'cut').slice(0, 1500));
        await sleep(rnd(0, 50));
        if (kind === 'cut-rst') {
          c.socket.resetAndDestroy();
          closeMe = false;
        } else {
          // a half-closed client in the middle of DATA: the daemon must let go of it
          c.socket.end();
          if (!(await c.waitClosed(15_000)))
            throw new Error('the daemon kept a connection half-closed in DATA for 15 s');
        }
        break;
      }
      case 'oversize': {
        await expectReply(c, kind, 'EHLO big.client.test', /^250 /);
        await expectReply(c, kind, 'MAIL FROM:<big@client.test>', /^250 /);
        await expectReply(c, kind, 'RCPT TO:<someone@relay.test>', /^250 /);
        await expectReply(c, kind, 'DATA', /^354 /);
        const chunk = body(64 * 1024, 'big');
        const reply = expectReply(c, kind, null, /^552 5\.3\.4 /);
        for (let sent = 0; sent < 1.1 * 1048576 && !c.closed; sent += chunk.length) {
          c.write(chunk);
          if (c.socket.writableNeedDrain)
            await Promise.race([new Promise((r) => c.socket.once('drain', r)), reply.catch(() => undefined)]);
        }
        await reply;
        break;
      }
      case 'bare-lf':
        await expectReply(c, kind, 'EHLO lf.client.test', /^250 /);
        await expectReply(c, kind, 'MAIL FROM:<lf@client.test>', /^250 /);
        await expectReply(c, kind, 'RCPT TO:<someone@relay.test>', /^250 /);
        await expectReply(c, kind, 'DATA', /^354 /);
        c.write('Subject: bare\r\n\r\nline one\nline two\r\n.\r\n');
        await expectReply(c, kind, null, /^554 5\.6\.0 /);
        await expectReply(c, kind, 'QUIT', /^221 /);
        break;
      case 'vanish':
        break;
      case 'idle':
      case 'drip': {
        // left to SMTPTimeout, in the background (the loop goes on)
        closeMe = false;
        detachedNow++;
        stats.detached++;
        const timer = kind === 'drip' ? setInterval(() => c.write('N'), 1000) : null;
        const started = Date.now();
        void expectReply(c, kind, null, /^421 4\.4\.2 /)
          .then(() => outcome(kind, Date.now() - started < 13_000 ? '421 4.4.2 within 13 s' : '421 4.4.2 LATE'))
          .catch((e) => unexpected(kind, e.message))
          .finally(() => {
            if (timer) clearInterval(timer);
            detachedNow--;
            c.destroy();
          });
        return;
      }
    }
    outcome(kind, 'as expected');
  } catch (e) {
    unexpected(kind, e.message);
  } finally {
    if (closeMe) c.destroy();
  }
}

let running = true;
let badTurn = 0;
async function clientLoop() {
  while (running) {
    try {
      if (Math.random() < opts.bad) {
        let kind = BAD_KINDS[badTurn++ % BAD_KINDS.length];
        if ((kind === 'idle' || kind === 'drip') && detachedNow >= 20) kind = 'vanish';
        await bad(kind);
      } else await good();
    } catch (e) {
      unexpected('session', e.message);
      await sleep(100);
    }
  }
}

// ------------------------------------------------------------------------ sampling
const runStart = Date.now();
const warmupEnd = runStart + opts['warmup-minutes'] * 60_000;
const end = runStart + opts.minutes * 60_000;
const startTicks = memory(daemon.pid).ticks;
let prevTicks = startTicks;
let prevAt = Date.now();
let prevCpu = cpuTimes();
const selfTicks = () => {
  const f = readFileSync('/proc/self/stat', 'utf8');
  const x = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(x[11]) + Number(x[12]);
};
let prevSelf = selfTicks();
let lastMaps = [];
async function sample() {
  const m = memory(daemon.pid);
  const h = await daemon.heap('raw');
  lastMaps = smaps(daemon.pid);
  const kinds = smapsSummary(lastMaps);
  const now = Date.now();
  const cpu = (m.ticks - prevTicks) / CLK_TCK / ((now - prevAt) / 1000);
  // the whole machine, in cores, and what is neither the daemon's tree nor this process ("other")
  const ct = cpuTimes();
  const ncpu = cpus().length;
  const machine = (1 - (ct.idle - prevCpu.idle) / Math.max(1, ct.total - prevCpu.total)) * ncpu;
  const st = selfTicks();
  const bench = (st - prevSelf) / CLK_TCK / ((now - prevAt) / 1000);
  prevCpu = ct;
  prevSelf = st;
  prevTicks = m.ticks;
  prevAt = now;
  const w = stats.window.messageMs;
  stats.window.messageMs = [];
  const s = {
    min: (now - runStart) / 60_000,
    rss: m.rss,
    treeRss: m.treeRss,
    heapUsed: h?.heapUsed ?? null,
    heapTotal: h?.heapTotal ?? null,
    external: h?.external ?? null,
    fds: m.fds,
    cpu,
    bench,
    machine,
    other: Math.max(0, machine - cpu - bench),
    accepted: stats.accepted,
    sink: sink.count(),
    load: loadAverage()[0],
    p50: summary(w).p50,
    p99: summary(w).p99,
    msgs: w.length,
    maps: kinds,
  };
  result.samples.push(s);
  log(
    `${fmt(s.min, 1)} min: RSS ${fmt(mib(s.rss))} MiB, tree ${fmt(mib(s.treeRss))} MiB, heap ${fmt(mib(s.heapUsed ?? NaN))}/${fmt(mib(s.heapTotal ?? NaN))} MiB, ` +
      `fds ${s.fds}, CPU daemon ${fmt(s.cpu, 2)} bench ${fmt(s.bench, 2)} other ${fmt(s.other, 2)} cores, ${s.msgs} msgs (p50 ${fmt(s.p50, 1)} p99 ${fmt(s.p99, 1)} ms), accepted ${s.accepted}, sink ${s.sink}, load ${s.load}`,
  );
  if (!daemon.alive()) throw new Error('the daemon died');
}

let exit = 1;
try {
  const loops = Array.from({ length: opts.clients }, clientLoop);
  let warmGcDone = false;
  let warmMaps = [];
  while (Date.now() < end) {
    const nextAt = Math.min(end, Date.now() + opts.sample * 1000);
    await sleep(Math.max(0, nextAt - Date.now()));
    await sample();
    if (!warmGcDone && Date.now() >= warmupEnd) {
      warmGcDone = true;
      const g = await daemon.heap('gc');
      await sleep(500);
      result.warmupGc = {
        heapUsed: g?.heapUsed,
        heapTotal: g?.heapTotal,
        rss: memory(daemon.pid).rss,
        min: (Date.now() - runStart) / 60_000,
      };
      warmMaps = lastMaps;
      log(
        `end of warm-up, after a full GC: heap used ${fmt(mib(g?.heapUsed ?? NaN))} MiB, RSS ${fmt(mib(result.warmupGc.rss))} MiB`,
      );
    }
  }
  // where RSS grew after the warm-up, by mapping (both snapshots taken under load, at a sample)
  result.mapsGrowth = smapsGrowth(warmMaps, lastMaps).map((g) => ({
    ...g,
    beforeMiB: Number(fmt(mib(g.before), 2)),
    afterMiB: Number(fmt(mib(g.after), 2)),
  }));
  result.mapsKinds = { afterWarmup: smapsSummary(warmMaps), end: smapsSummary(lastMaps) };
  running = false;
  await Promise.all(loops);
  // the detached idle/drip clients end by SMTPTimeout
  const drainStart = Date.now();
  while (detachedNow > 0 && Date.now() - drainStart < 20_000) await sleep(200);
  await sleep(2000);
  result.endSample = memory(daemon.pid);
  const g = await daemon.heap('gc');
  await sleep(500);
  result.endGc = {
    heapUsed: g?.heapUsed,
    heapTotal: g?.heapTotal,
    rss: memory(daemon.pid).rss,
    fds: memory(daemon.pid).fds,
  };
  log(
    `end, idle, after a full GC: heap used ${fmt(mib(g?.heapUsed ?? NaN))} MiB, RSS ${fmt(mib(result.endGc.rss))} MiB, fds ${result.endGc.fds}`,
  );

  // ---------------------------------------------------------------- figures
  const after = result.samples.filter((s) => s.min >= opts['warmup-minutes']);
  // MiB (fds: a count), and the trend per hour
  const fig = (key, rows) => {
    const scale = key === 'fds' ? (x) => x : mib;
    const v = rows.map((s) => s[key]).filter((x) => x !== null);
    const tr = linearTrend(rows.filter((s) => s[key] !== null).map((s) => [s.min / 60, scale(s[key])]));
    return {
      first: scale(v[0]),
      last: scale(v.at(-1)),
      min: scale(Math.min(...v)),
      max: scale(Math.max(...v)),
      trendPerHour: tr.slope,
      r2: tr.r2,
    };
  };
  result.figures = {};
  for (const key of ['rss', 'treeRss', 'heapUsed', 'fds'])
    result.figures[key] = { all: fig(key, result.samples), afterWarmup: fig(key, after) };
  result.latency = { message: summary(stats.messageMs), banner: summary(stats.bannerMs) };
  result.cores = {
    daemon: summary(result.samples.map((x) => x.cpu)),
    bench: summary(result.samples.map((x) => x.bench)),
    other: summary(result.samples.map((x) => x.other)),
    load1: summary(result.samples.map((x) => x.load)),
  };
  result.outcomes = stats.outcomes;
  result.unexpected = stats.unexpected;
  result.accepted = stats.accepted;
  await sleep(1000);
  result.sinkMessages = sink.count();
  result.treeCpuSeconds = (memory(daemon.pid).ticks - startTicks) / CLK_TCK;
  result.loadAfter = loadAverage();
  result.daemonLog = await scanLog(daemon.logFile);

  for (const key of ['rss', 'treeRss', 'heapUsed']) {
    for (const [w, f] of Object.entries(result.figures[key])) {
      log(
        `${key} (${w}): first ${fmt(f.first)} last ${fmt(f.last)} min ${fmt(f.min)} max ${fmt(f.max)} MiB, trend ${fmt(f.trendPerHour, 2)} MiB/h (r² ${fmt(f.r2, 2)})`,
      );
    }
  }
  const kindsLine = (k) =>
    Object.entries(k)
      .map(([n, v]) => `${n} ${fmt(mib(v))}`)
      .join(', ');
  log(
    `RSS by mapping kind (MiB), after the warm-up: ${kindsLine(result.mapsKinds.afterWarmup)}; at the end: ${kindsLine(result.mapsKinds.end)}`,
  );
  log(
    `mappings that grew most: ${result.mapsGrowth.map((g) => `${g.name} ${g.perms} ${fmt(mib(g.size))} MiB: ${g.beforeMiB} → ${g.afterMiB}`).join('; ')}`,
  );
  const fd = result.figures.fds.afterWarmup;
  log(
    `fds after warm-up: first ${fd.first} last ${fd.last} min ${fd.min} max ${fd.max}, trend ${fmt(fd.trendPerHour, 1)}/h`,
  );
  log(
    `messages accepted ${stats.accepted} (${fmt(stats.accepted / (opts.minutes * 60), 1)}/s), at the sink ${result.sinkMessages}; ` +
      `message latency p50 ${fmt(result.latency.message.p50, 1)} p99 ${fmt(result.latency.message.p99, 1)} max ${fmt(result.latency.message.max, 1)} ms; ` +
      `banner p50 ${fmt(result.latency.banner.p50, 1)} p99 ${fmt(result.latency.banner.p99, 1)} ms`,
  );
  log(
    `cores used: daemon tree mean ${fmt(result.cores.daemon.mean, 2)}, this bench ${fmt(result.cores.bench.mean, 2)}, other (sink, DNS, rest of the machine) ` +
      `mean ${fmt(result.cores.other.mean, 2)} max ${fmt(result.cores.other.max, 2)}; load average (1 min) mean ${fmt(result.cores.load1.mean, 2)} max ${fmt(result.cores.load1.max, 2)}`,
  );
  log(`outcomes: ${JSON.stringify(stats.outcomes, null, 1)}`);
  if (stats.unexpected.length)
    log(`unexpected (first ${stats.unexpected.length}): ${JSON.stringify(stats.unexpected.slice(0, 10))}`);
  log(`daemon log: ${JSON.stringify(result.daemonLog)}`);
  log(`load average ${result.loadAfter.join(' ')} at the end`);

  const rssTrend = result.figures.rss.afterWarmup.trendPerHour;
  const heapGrowth = (result.endGc.heapUsed ?? 0) - (result.warmupGc?.heapUsed ?? 0);
  result.verdict = {
    rssFlat: rssTrend < opts['flat-mib-per-hour'],
    heapFlat: heapGrowth <= Math.max(2 * 1048576, 0.1 * (result.warmupGc?.heapUsed ?? 0)),
    allDelivered: result.sinkMessages === stats.accepted,
    nothingUnexpected: stats.unexpected.length === 0,
    alive: daemon.alive(),
  };
  log(
    `verdict: RSS trend ${fmt(rssTrend, 2)} MiB/h < ${opts['flat-mib-per-hour']}: ${result.verdict.rssFlat}; GC'd heap ${fmt(mib(result.warmupGc?.heapUsed ?? NaN))} → ` +
      `${fmt(mib(result.endGc.heapUsed ?? NaN))} MiB: ${result.verdict.heapFlat}; every accepted message at the sink: ${result.verdict.allDelivered}; ` +
      `no unexpected reply: ${result.verdict.nothingUnexpected}; daemon alive: ${result.verdict.alive}`,
  );
  exit = Object.values(result.verdict).every(Boolean) ? 0 : 1;
} catch (e) {
  console.error(e);
  console.error(daemon.tail());
} finally {
  running = false;
  await daemon.stop();
  sink.stop();
  await dns.stop();
  if (opts.json) writeFileSync(opts.json, JSON.stringify(result, null, 1) + '\n');
}
process.exit(exit);

/** Counts per event, and every error-level line grouped by event and message (the log may be large). */
async function scanLog(file) {
  const events = {};
  const errors = {};
  let lines = 0;
  let nonJson = 0;
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) {
    lines++;
    let l;
    try {
      l = JSON.parse(line);
    } catch {
      nonJson++;
      continue;
    }
    events[l.event] = (events[l.event] ?? 0) + 1;
    if (l.level === 'error' || l.level === 'fatal' || l.event === 'daemon.error') {
      const k = `${l.event}: ${String(l.error ?? l.msg ?? '')
        .replace(/\d+/g, 'N')
        .slice(0, 120)}`;
      errors[k] = (errors[k] ?? 0) + 1;
    }
  }
  return {
    lines,
    nonJson,
    errors,
    events: Object.fromEntries(
      Object.entries(events).filter(([k]) => /^(session\.(connect|end|refused|error)|data\.decision|daemon\.)/.test(k)),
    ),
  };
}
