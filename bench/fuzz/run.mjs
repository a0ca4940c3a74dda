#!/usr/bin/env node
// SMTP fuzzing, the long run (issue 7, item 3). By hand, as root, from the repo root:
//
//   pnpm build                                  # builds test/dist (the generator lives there)
//   node bench/fuzz/run.mjs --sessions 100000   # results: docs/reliability.md
//
// One asmtpd (RelayHost = a recording wire sink, RelayNet 127.0.0.1/32, clients from 127.0.0.1-3)
// gets generated sessions from test/support/smtp-fuzz.ts, CONCURRENCY at a time: valid dialogues,
// mutated fields, random bytes, truncated TLS ClientHellos, huge lines, abrupt ends, smuggling
// look-alikes. Memory is the daemon's VmRSS (/proc/PID/status) after all sessions ended and a
// forced full GC (a preload in the daemon, SIGUSR2), measured after the warm-up ("before"),
// every --sample-every sessions, and at the end ("after").
//
// Options:
//   --sessions N       sessions after the warm-up (100000)
//   --seed N           PRNG seed (20231218); session i of a seed is always the same bytes
//   --concurrency N    sessions at a time (100)
//   --warmup N         warm-up sessions (3000), in three parts with a memory sample after each;
//                      "before" is the highest of the three
//   --sample-every N   memory sample every N sessions (10000; 0 = only before/after)
//   --read-timeout MS  how long the driver waits for a reply (400)
//   --json FILE        write every figure as JSON
//
// Exit status: 0 when every check passed (no error logged, downstream consistent, final
// transaction delivered, RSS within 10 %), 1 otherwise.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';

const here = new URL('.', import.meta.url);
const fuzz = await import(new URL('../../test/dist/support/smtp-fuzz.js', here).href).catch((e) => {
  console.error(`cannot load test/dist/support/smtp-fuzz.js (run pnpm build first): ${e.message}`);
  process.exit(2);
});

const opts = {
  sessions: 100_000,
  seed: 20231218,
  concurrency: 100,
  warmup: 3000,
  'sample-every': 10_000,
  'read-timeout': 400,
  json: '',
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

const MiB = (n) => (n / 1048576).toFixed(1);
const pct = (a, b) => ((b / a - 1) * 100).toFixed(1);
const t0 = Date.now();
const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${s}`);

const target = await fuzz.startFuzzTarget();
let exit = 1;
const result = { options: opts, node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, samples: [] };
try {
  log(`daemon pid ${target.daemon.proc.pid} on port ${target.daemon.port}; warm-up ${opts.warmup} sessions`);
  const driver = { readTimeoutMs: opts['read-timeout'] };
  // "before": the highest of three samples during the warm-up (RSS at idle wanders by a few MiB
  // between measurements; see warmUp() in test/support/smtp-fuzz.ts and docs/reliability.md)
  const warm = await fuzz.warmUp(target, {
    seed: opts.seed,
    sessions: opts.warmup,
    concurrency: opts.concurrency,
    driver,
  });
  result.warmup = warm.samples;
  for (const w of warm.samples)
    log(
      `warm-up ${w.sessions}: RSS ${MiB(w.rss)} MiB, heap ${MiB(w.heapUsed)} of ${MiB(w.heapTotal)} MiB, fds ${w.fds}`,
    );
  const before = warm.before;
  result.before = before;
  log(
    `before: RSS ${MiB(before.rss)} MiB, heap ${MiB(before.heapUsed)} of ${MiB(before.heapTotal)} MiB, external ${MiB(before.external)} MiB, fds ${before.fds}`,
  );

  const total = {
    sessions: 0,
    ms: 0,
    kinds: {},
    replies: {},
    transient: {},
    closedByServer: 0,
    gaveUp: 0,
    connectErrors: 0,
    suspicious: [],
    slowest: { ms: 0 },
  };
  const chunk = opts['sample-every'] > 0 ? opts['sample-every'] : opts.sessions;
  for (let first = 0; first < opts.sessions; first += chunk) {
    const n = Math.min(chunk, opts.sessions - first);
    const runStart = Date.now();
    const s = await fuzz.runFuzz(target, {
      seed: opts.seed,
      first,
      sessions: n,
      concurrency: opts.concurrency,
      driver,
      progressEvery: 5000,
      onProgress: (done, st) =>
        log(
          `${first + done} sessions (${Math.round(done / ((Date.now() - runStart) / 1000))}/s), replies ${JSON.stringify(st.replies)}`,
        ),
    });
    total.sessions += s.sessions;
    total.ms += s.ms;
    for (const [k, v] of Object.entries(s.kinds)) total.kinds[k] = (total.kinds[k] ?? 0) + v;
    for (const [k, v] of Object.entries(s.replies)) total.replies[k] = (total.replies[k] ?? 0) + v;
    for (const [k, v] of Object.entries(s.transient)) total.transient[k] = (total.transient[k] ?? 0) + v;
    total.closedByServer += s.closedByServer;
    total.gaveUp += s.gaveUp;
    total.connectErrors += s.connectErrors;
    total.suspicious.push(...s.suspicious.slice(0, 50 - total.suspicious.length));
    if (s.slowest.ms > total.slowest.ms) total.slowest = s.slowest;
    if (first + n < opts.sessions) {
      const m = await fuzz.daemonMemory(target);
      result.samples.push({ sessions: first + n, ...m });
      log(
        `sample after ${first + n}: RSS ${MiB(m.rss)} MiB (${pct(before.rss, m.rss)} %), heap ${MiB(m.heapUsed)} of ${MiB(m.heapTotal)} MiB, external ${MiB(m.external)} MiB, fds ${m.fds}`,
      );
    }
  }
  const after = await fuzz.daemonMemory(target);
  result.after = after;
  result.samples.push({ sessions: opts.sessions, ...after });
  const final = await fuzz.normalTransaction(target);
  await fuzz.idle(target, 30_000);
  const problems = fuzz.checkTarget(target);
  const tally = target.tally;
  Object.assign(result, {
    run: total,
    final,
    problems,
    daemon: {
      events: tally.events,
      socketResets: tally.socketErrors,
      downstreamMessages: tally.sinkMessages,
      accepted: tally.acceptedTids.size,
      errors: [...tally.errors.keys()],
    },
    rssGrowthPercent: Number(pct(before.rss, after.rss)),
  });
  log(
    `done: ${total.sessions} sessions in ${(total.ms / 1000).toFixed(0)} s (${Math.round(total.sessions / (total.ms / 1000))}/s)`,
  );
  log(`kinds ${JSON.stringify(total.kinds)}`);
  log(
    `replies ${JSON.stringify(total.replies)}; closed by the daemon ${total.closedByServer}; driver gave up ${total.gaveUp}; connect errors ${total.connectErrors}; slowest ${JSON.stringify(total.slowest)}`,
  );
  log(`4xx replies other than 421: ${JSON.stringify(total.transient)}`);
  log(
    `downstream: ${tally.sinkMessages} messages, ${tally.acceptedTids.size} accepted by the daemon; socket resets logged (session.error) ${tally.socketErrors}`,
  );
  log(
    `RSS ${MiB(before.rss)} → ${MiB(after.rss)} MiB (${pct(before.rss, after.rss)} %), heap ${MiB(before.heapUsed)} → ${MiB(after.heapUsed)} MiB, fds ${before.fds} → ${after.fds}`,
  );
  log(`final transaction: ${final ?? 'delivered'}`);
  log(`suspicious replies: ${total.suspicious.length ? JSON.stringify(total.suspicious) : 'none'}`);
  log(`problems: ${problems.length ? '\n  ' + problems.join('\n  ') : 'none'}`);
  const ok = !problems.length && final === null && !total.suspicious.length && after.rss <= before.rss * 1.1;
  log(ok ? 'PASS' : 'FAIL');
  exit = ok ? 0 : 1;
} catch (err) {
  console.error(err);
} finally {
  await target.stop();
  if (opts.json) writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
}
process.exit(exit);
