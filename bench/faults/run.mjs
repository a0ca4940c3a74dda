#!/usr/bin/env node
// Faults, the long run (issue 7, item 4). By hand, as root, from the repo root:
//
//   pnpm build                       # builds test/dist (the sink, the load driver and the daemon helper live there)
//   node bench/faults/run.mjs        # results: docs/reliability.md, "Faults"
//
// Phases (each against a fresh asmtpd -d with RelayHost = durable sinks, see test/support/faults-sink.ts:
// a child process that appends and fsyncs each message before it answers 250):
//   kill   --kill-messages transactions from --concurrency clients while the downstream is SIGKILLed
//          every --kill-up-min..--kill-up-max ms and restarted 0..--kill-down ms later; clients try
//          4xx'd messages again (a client's queue). Checked: every 250 is in the record with its
//          body (lost 0), no unknown token, every attempt answered, everything delivered in the end.
//   hup    --hup-messages slow transactions (each body in 20 pieces --hup-pause ms apart) while the
//          configuration is reloaded every --hup-every ms, RelayHost alternating between two sinks.
//          Checked: every message 250 at the first attempt, at exactly one sink, byte for byte.
//   both   --both-messages transactions with kills AND reloads at once (kills of whichever sink is
//          current, retries as in `kill`). Checked as in `kill`.
//   term   --term-sessions sessions in the middle of a slow DATA, then SIGTERM. Checked: every one
//          gets 250 and is delivered once, none closed without a reply, exit 0.
// After each phase: the daemon is alive (but after `term`), logged no daemon.error; its VmRSS and
// open descriptors are reported.
//
// Options: --phases kill,hup,both,term  --concurrency N (20)  --kill-messages N (5000)
//   --hup-messages N (2000) --both-messages N (2000) --term-sessions N (100)
//   --kill-up-min MS (100) --kill-up-max MS (500) --kill-down MS (150) --jitter MS (15)
//   --hup-every MS (100) --hup-pause MS (50) --relay-connections N (the daemon's default: 20) --json FILE
// Exit status 0 when every check passed.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';

const here = new URL('.', import.meta.url);
const load = async (name) =>
  import(new URL(`../../test/dist/support/${name}.js`, here).href).catch((e) => {
    console.error(`cannot load test/dist/support/${name}.js (run pnpm build first): ${e.message}`);
    process.exit(2);
  });
const { startDaemon } = await load('daemon');
const { startDurableSink } = await load('faults-sink');
const { runLoad, compare, faultMessage } = await load('faults-load');
const { SmtpClient, dotStuff } = await load('smtp-client');

const opts = {
  phases: 'kill,hup,both,term',
  concurrency: 20,
  'kill-messages': 5000,
  'hup-messages': 2000,
  'both-messages': 2000,
  'term-sessions': 100,
  'kill-up-min': 100,
  'kill-up-max': 500,
  'kill-down': 150,
  jitter: 15,
  'hup-every': 100,
  'hup-pause': 50,
  json: '',
  'relay-connections': 0,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const k = argv[i].replace(/^--/, '');
  if (!(k in opts)) {
    console.error(`unknown option ${argv[i]}`);
    process.exit(2);
  }
  opts[k] = typeof opts[k] === 'number' ? Number(argv[++i]) : argv[++i];
}
if (process.getuid?.() !== 0)
  console.error('note: not root — the daemon keeps the invoking user (the production split needs root)');

const t0 = Date.now();
const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const between = (lo, hi) => lo + Math.random() * (hi - lo);
const result = { options: opts, node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, phases: {} };
const problems = [];
const check = (phase, ok, what) => {
  if (!ok) problems.push(`${phase}: ${what}`);
};

function usage(pid) {
  try {
    const rss = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
    return { rssMiB: +(rss / 1048576).toFixed(1), fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return null;
  }
}

/** usage after the pooled downstream sessions had time to go idle and close (pool idleMs 5 s) */
async function usageAfterIdle(pid) {
  await sleep(8000);
  return usage(pid);
}

const conf = (port, reloadNo = 0) =>
  [
    `RelayHost 127.0.0.1:${port}`,
    'RelayNet 127.0.0.1/32',
    'RelayTimeout 20s',
    'MaxClientsPerIP 1000',
    'MaxClients 2000',
    `MaxRcpts ${100 + (reloadNo % 50)}`,
    ...(opts['relay-connections'] > 0 ? [`RelayConnections ${opts['relay-connections']}`] : []),
  ].join('\n');

function daemonChecks(phase, d) {
  check(phase, d.proc.exitCode === null, 'the daemon died');
  const errors = d.logs.filter((l) => l.event === 'daemon.error');
  check(phase, errors.length === 0, `${errors.length} daemon.error lines: ${JSON.stringify(errors.slice(0, 3))}`);
}

function summarise(phase, cmp, extra) {
  const r = {
    messages: cmp.messages,
    acked: cmp.acked,
    lost: cmp.lost.length,
    corrupt: cmp.corrupt.length,
    unknown: cmp.unknown.length,
    duplicates: cmp.duplicates,
    recordedNotAcked: cmp.recordedNotAcked,
    notDelivered: cmp.notDelivered,
    doubleAcked: cmp.doubleAcked,
    attempts: cmp.attempts,
    deferrals: {},
    ...extra,
  };
  for (const [k, v] of Object.entries(cmp.deferrals)) {
    const key = k.replace(/127\.0\.0\.1:\d+/, 'HOST');
    r.deferrals[key] = (r.deferrals[key] ?? 0) + v;
  }
  check(phase, cmp.lost.length === 0, `lost ${cmp.lost.length}: ${cmp.lost.slice(0, 5)}`);
  check(phase, cmp.corrupt.length === 0, `corrupt ${cmp.corrupt.length}`);
  check(phase, cmp.unknown.length === 0, `unknown ${cmp.unknown.length}`);
  check(phase, cmp.doubleAcked === 0, `a message got 250 twice (${cmp.doubleAcked})`);
  check(phase, cmp.attempts['no-reply'] === 0, `${cmp.attempts['no-reply']} attempts without a reply`);
  check(phase, cmp.attempts['5xx'] === 0, `${cmp.attempts['5xx']} attempts got 5xx`);
  check(phase, cmp.notDelivered === 0, `${cmp.notDelivered} never delivered`);
  result.phases[phase] = r;
  log(`${phase}: ${JSON.stringify(r)}`);
}

/** kills the current downstream every up-min..up-max ms, restarts it after 0..down ms */
function killer(current) {
  let running = true;
  let kills = 0;
  const done = (async () => {
    while (running) {
      await sleep(between(opts['kill-up-min'], opts['kill-up-max']));
      if (!running) break;
      const s = current();
      await s.kill();
      kills++;
      await sleep(between(0, opts['kill-down']));
      await s.restart();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return kills;
    },
  };
}

/** rewrites the configuration and sends SIGHUP every hup-every ms; which(n) → the sink for reload n */
function hupper(d, which) {
  let running = true;
  let n = 0;
  let current = which(0);
  const done = (async () => {
    while (running) {
      await sleep(opts['hup-every']);
      if (!running) break;
      n++;
      current = which(n);
      d.writeConf(conf(current.port, n));
      d.signal('SIGHUP');
    }
  })();
  return {
    current: () => current,
    stop: async () => {
      running = false;
      await done;
      return n;
    },
  };
}

async function phaseKill() {
  const sink = await startDurableSink({ jitterMs: opts.jitter });
  const d = await startDaemon({ conf: conf(sink.port) });
  try {
    const before = usage(d.proc.pid);
    log(`kill: ${opts['kill-messages']} messages, concurrency ${opts.concurrency}, daemon pid ${d.proc.pid}`);
    const k = killer(() => sink);
    let res;
    try {
      res = await runLoad({
        port: d.port,
        count: opts['kill-messages'],
        concurrency: opts.concurrency,
        to: 'rcpt@downstream.test',
        maxAttempts: 200,
        retryDelayMs: 100,
        tokenPrefix: 'K',
      });
    } finally {
      const kills = await k.stop();
      result.killKills = kills;
    }
    if (!sink.alive) await sink.restart();
    summarise('kill', compare(res, sink.entries()), {
      ms: res.ms,
      sessions: res.sessions,
      kills: result.killKills,
      starts: sink.starts,
      perSecond: +(res.messages.length / (res.ms / 1000)).toFixed(1),
      before,
      after: usage(d.proc.pid),
      afterIdle: await usageAfterIdle(d.proc.pid),
    });
    daemonChecks('kill', d);
  } finally {
    await d.stop();
    await sink.close();
  }
}

async function phaseHup() {
  const [a, b] = await Promise.all([startDurableSink(), startDurableSink()]);
  const d = await startDaemon({ conf: conf(a.port) });
  try {
    const before = usage(d.proc.pid);
    log(
      `hup: ${opts['hup-messages']} slow messages, concurrency ${opts.concurrency * 5}, SIGHUP every ${opts['hup-every']} ms`,
    );
    const h = hupper(d, (n) => (n % 2 ? b : a));
    let res;
    let reloads;
    try {
      res = await runLoad({
        port: d.port,
        count: opts['hup-messages'],
        concurrency: opts.concurrency * 5,
        perSession: 3,
        to: 'rcpt@downstream.test',
        maxAttempts: 1,
        sizes: [2000, 8000, 30_000],
        slowBody: { chunks: 20, pauseMs: opts['hup-pause'] },
        staggerMs: 20,
        tokenPrefix: 'H',
      });
    } finally {
      reloads = await h.stop();
    }
    await d
      .waitLog(() => d.logs.filter((l) => l.event === 'daemon.reload').length >= reloads, 10_000)
      .catch(() => undefined);
    const seen = d.logs.filter((l) => l.event === 'daemon.reload').length;
    check('hup', seen === reloads, `${reloads} SIGHUPs sent, ${seen} reloads logged`);
    const cmp = compare(res, [...a.entries(), ...b.entries()]);
    check(
      'hup',
      cmp.attempts['250'] === res.messages.length,
      `only ${cmp.attempts['250']} of ${res.messages.length} got 250 at the first attempt`,
    );
    check('hup', cmp.duplicates === 0, `${cmp.duplicates} duplicates`);
    check('hup', a.entries().length > 0 && b.entries().length > 0, 'both relays used');
    summarise('hup', cmp, {
      ms: res.ms,
      sessions: res.sessions,
      reloads,
      atA: a.entries().length,
      atB: b.entries().length,
      before,
      after: usage(d.proc.pid),
      afterIdle: await usageAfterIdle(d.proc.pid),
    });
    daemonChecks('hup', d);
  } finally {
    await d.stop();
    await a.close();
    await b.close();
  }
}

async function phaseBoth() {
  const [a, b] = await Promise.all([
    startDurableSink({ jitterMs: opts.jitter }),
    startDurableSink({ jitterMs: opts.jitter }),
  ]);
  const d = await startDaemon({ conf: conf(a.port) });
  try {
    const before = usage(d.proc.pid);
    log(`both: ${opts['both-messages']} messages with kills and SIGHUP every ${opts['hup-every'] * 3} ms`);
    const saved = opts['hup-every'];
    opts['hup-every'] = saved * 3;
    const h = hupper(d, (n) => (n % 2 ? b : a));
    opts['hup-every'] = saved;
    // kill either sink at random: the current one or the one a retired relay may still use
    const k = killer(() => (Math.random() < 0.7 ? h.current() : h.current() === a ? b : a));
    let res;
    let reloads;
    let kills;
    try {
      res = await runLoad({
        port: d.port,
        count: opts['both-messages'],
        concurrency: opts.concurrency,
        to: 'rcpt@downstream.test',
        maxAttempts: 200,
        retryDelayMs: 100,
        tokenPrefix: 'B',
      });
    } finally {
      kills = await k.stop();
      reloads = await h.stop();
    }
    for (const s of [a, b]) if (!s.alive) await s.restart();
    summarise('both', compare(res, [...a.entries(), ...b.entries()]), {
      ms: res.ms,
      sessions: res.sessions,
      kills,
      reloads,
      before,
      after: usage(d.proc.pid),
      afterIdle: await usageAfterIdle(d.proc.pid),
    });
    daemonChecks('both', d);
  } finally {
    await d.stop();
    await a.close();
    await b.close();
  }
}

async function phaseTerm() {
  const sink = await startDurableSink();
  const d = await startDaemon({ conf: conf(sink.port) });
  const exited = new Promise((r) => d.proc.once('exit', (code) => r(code)));
  const n = opts['term-sessions'];
  let inData = 0;
  const one = async (i) => {
    const token = `T-${i}`;
    const c = await SmtpClient.connect(d.port);
    try {
      await c.greeting();
      await c.cmd('EHLO term.client.test');
      await c.cmd('MAIL FROM:<s@client.test>');
      await c.cmd('RCPT TO:<rcpt@downstream.test>');
      if ((await c.cmd('DATA')).code !== 354) return { token, reply: 'no 354' };
      inData++;
      const data = Buffer.concat([dotStuff(faultMessage(token, 6000 + (i % 7) * 3000)), Buffer.from('.\r\n')]);
      const piece = Math.ceil(data.length / 40);
      for (let p = 0; p < data.length; p += piece) {
        c.write(data.subarray(p, p + piece));
        await sleep(50);
      }
      return { token, reply: (await c.reply(40_000)).last };
    } catch (e) {
      return { token, reply: `closed without a reply: ${e.message.slice(0, 40)}` };
    } finally {
      c.close();
    }
  };
  log(`term: ${n} sessions in DATA, then SIGTERM`);
  const all = Array.from({ length: n }, (_, i) => one(i));
  while (inData < n) await sleep(20);
  await sleep(300);
  const at = Date.now();
  d.signal('SIGTERM');
  const outcomes = await Promise.all(all);
  const code = await exited;
  const byReply = {};
  for (const o of outcomes) {
    const k = o.reply.replace(/queued as \w+/, 'queued as ID');
    byReply[k] = (byReply[k] ?? 0) + 1;
  }
  const tokens = sink.entries().map((e) => e.token);
  const once = outcomes.filter((o) => tokens.filter((t) => t === o.token).length === 1).length;
  result.phases.term = { sessions: n, replies: byReply, deliveredOnce: once, exit: code, stopMs: Date.now() - at };
  log(`term: ${JSON.stringify(result.phases.term)}`);
  check(
    'term',
    outcomes.every((o) => o.reply.startsWith('250 ')),
    'not every session in DATA got 250',
  );
  check('term', once === n, `${once} of ${n} delivered exactly once`);
  check('term', code === 0, `exit ${code}`);
  await d.stop();
  await sink.close();
}

const phases = { kill: phaseKill, hup: phaseHup, both: phaseBoth, term: phaseTerm };
for (const p of opts.phases.split(',')) {
  if (!phases[p]) {
    console.error(`unknown phase ${p}`);
    process.exit(2);
  }
  await phases[p]();
}
result.problems = problems;
result.seconds = Math.round((Date.now() - t0) / 1000);
if (opts.json) writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
log(problems.length ? `PROBLEMS:\n  ${problems.join('\n  ')}` : `all checks passed (${result.seconds} s)`);
process.exit(problems.length ? 1 : 0);
