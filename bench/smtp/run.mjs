#!/usr/bin/env node
// SMTP relay throughput benchmark (issue 2). Run by hand, as root, from the repo root:
//
//   pnpm build            # or at least: npx tsc -b packages/asmtpd
//   node bench/smtp/run.mjs [options]
//
// One run measures, all against ONE smtp-sink (Postfix's test sink) on 127.0.0.1:
//   sink     smtp-source -> smtp-sink                          (the ceiling)
//   postfix  smtp-source -> Postfix smtpd (private instance, relay mode) -> smtp-sink
//   asmtpd   smtp-source -> asmtpd (RelayHost = the sink) -> smtp-sink
// twice: a new connection per message, and reused connections (smtp-source -d).
//
// Client facts (issue 5; docs/facts.md): asmtpd always gathers reverse DNS and SPF, so every
// asmtpd target is given a loopback DNS server of its own (dns-child.mjs, one child process for
// all of them) and never asks a public resolver. Variants:
//   asmtpd                 tangerine (DoH over http) to a server with NO records: every lookup
//                          is NXDOMAIN, no RBL lines -- facts as cheap as they can be
//   asmtpd-cached          tangerine; PTR + A and both SPF TXT records with --ttl (300 s), no
//                          RBL: after the warm-up every lookup is a cache hit (no DNS traffic)
//   asmtpd-facts           tangerine; PTR + A (confirmed reverse name), SPF TXT of the sender
//                          domain and the HELO name, RBL bl1/bl2/bl3.bench.test (bl3 lists the
//                          client with score 0.5 < RBLThreshold 1); records with --ttl (300 s)
//   asmtpd-facts-ttl0      the same with TTL 0: nothing is cached, every lookup reaches the server
//   asmtpd-sys, asmtpd-sys-cached, asmtpd-sys-facts, asmtpd-sys-facts-ttl0
//                          the same four with DNSResolver system (c-ares over UDP; node gives
//                          c-ares no answer cache, so -sys-cached still asks the server)
// The first two stand in for "without facts" (reverse DNS and SPF have no switch). All with
// SMTPCB no and SynFP no (unless --asmtpd-set gives SynFP).
// Per connection that is PTR + A + 3 DNSBL A + 1 TXT (bl3's reason); per message 2 SPF TXT.
// Load: 20 parallel sessions, 1 recipient, 4096-byte bodies, 20,000 messages
// (after a 1,000-message warm-up per target and mode).
//
// Throughput comes from smtp-source (wall clock of the whole run). smtp-source
// gives no latencies, so each target/mode is then driven a second time by
// latency-client.mjs (same shape: sessions, size, 1 rcpt, no pipelining),
// timing each message: new connections from connect() to the 250 after the
// final dot; reused connections from MAIL to that 250.
// Postfix answers 250 once the message is in its queue (written + fsync'ed) and
// relays afterwards; asmtpd answers 250 only after the sink accepted. So for
// Postfix we also report "delivered": until the sink has counted every message.
//
// Options (all optional):
//   --messages N          smtp-source messages per measurement (20000)
//   --sessions N          parallel sessions (20)
//   --size BYTES          body size (4096)
//   --latency-messages N  messages for the latency client per measurement (5000; 0 = skip)
//   --warmup N            warm-up messages per target and mode (1000)
//   --rounds N            repeat everything N times, report medians (1; use 3 on a noisy machine)
//   --targets LIST        comma list of sink,postfix,asmtpd and the asmtpd-* variants above
//                         (sink,postfix,asmtpd)
//   --facts [KIND]        shorthand for --targets asmtpd,asmtpd-cached,asmtpd-facts,asmtpd-facts-ttl0
//                         (KIND tangerine, the default), the asmtpd-sys* four (system), or all (both)
//   --ttl SECONDS         TTL of the records of the -cached and -facts targets (300)
//   --banner-probes N     per asmtpd target, new-connection mode: N connections one at a time,
//                         timed connect -> 220 on an otherwise idle server (200; 0 = skip)
//   --banner-gap MS       pause between those connections, so the previous one's lookups are
//                         over (10)
//   --modes LIST          comma list of new,reuse (both)
//   --rcpt ADDR           recipient (bench@relay.test: relayed by both Postfix and asmtpd since the client is in mynetworks/RelayNet)
//   --postfix-set K=V     extra main.cf setting for the Postfix target (repeatable; for experiments)
//   --asmtpd-set 'D V'    extra config line for the asmtpd target (repeatable)
//   --asmtpd-node-args 'A' node options for every asmtpd daemon (profiling: '--cpu-prof --cpu-prof-dir=DIR')
//   --json FILE           also write the results as JSON
//   --tls                 TLS cost (issue 16): targets postfix,asmtpd (default), both given one
//                         certificate (RSA 2048, made with openssl); every mode measured by ONE load
//                         client, latency-client.mjs, with and without STARTTLS: modes new, new-tls
//                         (default; also reuse, reuse-tls). No smtp-source (it has no TLS).
import { fork, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  openSync,
  mkdtempSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile, probeBanner, runClient } from './latency-client.mjs';
import {
  busyPercent,
  CLK_TCK,
  cpuBusy,
  loadHarness,
  log,
  machine,
  median,
  need,
  root,
  smtpSource,
  sleep,
  startSink as startSinkOn,
  treeCpu,
  waitGreeting,
  waitSink,
} from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- options
const argv = process.argv.slice(2);
function opt(name, def) {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : def;
}
const N = Number(opt('messages', 20000));
const SESSIONS = Number(opt('sessions', 20));
const SIZE = Number(opt('size', 4096));
const LAT_N = Number(opt('latency-messages', 5000));
const WARMUP = Number(opt('warmup', 1000));
/** asmtpd variants: resolver kind and the DNS records their server has (docs: header). */
const TTL = Number(opt('ttl', 300));
/** --nofacts-build DIR: a built checkout of the last commit before client facts (302b9ae) */
const NOFACTS_BUILD = opt('nofacts-build', '');
/** --before-build DIR: another built checkout, run exactly as the `asmtpd` target (a before/after of a change) */
const BEFORE_BUILD = opt('before-build', '');
const VARIANTS = {
  ...(NOFACTS_BUILD ? { 'asmtpd-nofacts': { resolver: 'none', zone: null, build: NOFACTS_BUILD } } : {}),
  asmtpd: { resolver: 'tangerine', zone: 'empty' },
  ...(BEFORE_BUILD ? { 'asmtpd-before': { resolver: 'tangerine', zone: 'empty', build: BEFORE_BUILD } } : {}),
  'asmtpd-cached': { resolver: 'tangerine', zone: 'cached', ttl: TTL },
  'asmtpd-facts': { resolver: 'tangerine', zone: 'facts', ttl: TTL },
  'asmtpd-facts-ttl0': { resolver: 'tangerine', zone: 'facts', ttl: 0 },
  'asmtpd-sys': { resolver: 'system', zone: 'empty' },
  'asmtpd-sys-cached': { resolver: 'system', zone: 'cached', ttl: TTL },
  'asmtpd-sys-facts': { resolver: 'system', zone: 'facts', ttl: TTL },
  'asmtpd-sys-facts-ttl0': { resolver: 'system', zone: 'facts', ttl: 0 },
};
/** the two stand-ins for "without facts" of a resolver kind (there is no switch for reverse DNS and SPF) */
const baselineOf = (t, zone) =>
  Object.keys(VARIANTS).find((n) => VARIANTS[n].resolver === VARIANTS[t]?.resolver && VARIANTS[n].zone === zone);
const NOFACTS = NOFACTS_BUILD ? ['asmtpd-nofacts'] : [];
const FACT_SETS = {
  tangerine: [...NOFACTS, 'asmtpd', 'asmtpd-cached', 'asmtpd-facts', 'asmtpd-facts-ttl0'],
  system: [...NOFACTS, 'asmtpd-sys', 'asmtpd-sys-cached', 'asmtpd-sys-facts', 'asmtpd-sys-facts-ttl0'],
};
FACT_SETS.both = [
  ...NOFACTS,
  ...FACT_SETS.tangerine.filter((t) => !NOFACTS.includes(t)),
  ...FACT_SETS.system.filter((t) => !NOFACTS.includes(t)),
];
const factsAt = argv.indexOf('--facts');
const factsKind =
  factsAt < 0 ? null : argv[factsAt + 1] && !argv[factsAt + 1].startsWith('--') ? argv[factsAt + 1] : 'tangerine';
if (factsKind !== null && !FACT_SETS[factsKind]) throw new Error(`--facts ${factsKind}: tangerine, system or both`);
/** --tls: one load client (latency-client.mjs) with and without STARTTLS, for the TLS cost (issue 16) */
const TLS = argv.includes('--tls');
const TARGETS =
  factsKind !== null ? FACT_SETS[factsKind] : opt('targets', TLS ? 'postfix,asmtpd' : 'sink,postfix,asmtpd').split(',');
const BANNER_PROBES = Number(opt('banner-probes', 200));
const BANNER_GAP = Number(opt('banner-gap', 10));
const MODES = opt('modes', TLS ? 'new,new-tls' : 'new,reuse').split(',');
const MODE_LABELS = {
  new: 'new connection per message',
  reuse: 'reused connections (-d)',
  'new-tls': 'new connection per message, STARTTLS',
  'reuse-tls': 'reused connections, STARTTLS once each',
};
for (const mo of MODES) if (!MODE_LABELS[mo] || (mo.endsWith('-tls') && !TLS)) throw new Error(`--modes ${mo}?`);
const FROM = 'sender@bench-source.test';
/** HELO name of both clients (smtp-source -M; it also names the default addresses, which -f/-t replace) */
const HELO = 'bench-client.test';
const RCPT = opt('rcpt', 'bench@relay.test');
const JSON_OUT = opt('json', '');
const ROUNDS = Number(opt('rounds', 1));
/**
 * --together: the asmtpd targets are measured at the same time, each by its own smtp-source (the
 * same --sessions each) into its own smtp-sink, instead of one after the other. The rate of each
 * is what its sink counted until the first smtp-source finished, over that time. On a machine
 * whose speed drifts (a shared VM: ±30 % within minutes) this compares targets under the same
 * conditions; they share the two cores, so the ratio of their rates is the ratio of what a
 * message costs each whole pipeline. No latency client, no banner probes in this mode.
 */
const TOGETHER = argv.includes('--together');
/** --asmtpd-set 'Directive value' (repeatable): extra config lines for the asmtpd target. */
const ASMTPD_SET = argv.flatMap((a, i) => (a === '--asmtpd-set' && argv[i + 1] ? [argv[i + 1]] : []));
/** --asmtpd-node-args 'ARGS': node options for the asmtpd daemons, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'. */
const ASMTPD_NODE_ARGS = opt('asmtpd-node-args', '').split(' ').filter(Boolean);
/** --postfix-set name=value (repeatable): extra main.cf settings for the Postfix target. */
const POSTFIX_SET = Object.fromEntries(
  argv.flatMap((a, i) =>
    a === '--postfix-set' && argv[i + 1]
      ? [
          argv[i + 1]
            .split(/=(.*)/s)
            .slice(0, 2)
            .map((x) => x.trim()),
        ]
      : [],
  ),
);

need('smtp-source');
if (process.getuid?.() !== 0) throw new Error('run as root (private Postfix instance, smtp-sink -u)');

// ---------------------------------------------------------------- the Postfix harness
const harness = await loadHarness();
const startSink = async () => startSinkOn(await freePort());

// ---------------------------------------------------------------- processes & CPU accounting
/** CPU seconds of this benchmark: this process, its children (smtp-source, smtp-sink, asmtpd) and the Postfix instance. */
let postfixMasterPid = 0;
function oursCpu() {
  return treeCpu(process.pid) + (postfixMasterPid ? treeCpu(postfixMasterPid) : 0);
}

async function freePort() {
  return harness.freePort();
}

// ---------------------------------------------------------------- smtp-sink

// ---------------------------------------------------------------- targets
async function startPostfixTarget(sink) {
  const pf = await harness.startPostfix({ mode: { relayTo: `127.0.0.1:${sink.port}` }, mainCf: POSTFIX_SET });
  const masterPid = Number(readFileSync(join(pf.dir, 'spool', 'pid', 'master.pid'), 'utf8').trim());
  postfixMasterPid = masterPid;
  return { name: 'postfix', port: pf.port, pid: masterPid, pf, stop: () => pf.stop() };
}

// ---------------------------------------------------------------- loopback DNS (dns-child.mjs)
/** Starts one child process with a DNS server per asmtpd target; null when none is run. */
async function startDns(names) {
  if (!names.length) return null;
  const built = join(root, 'test', 'dist', 'support', 'dns-server.js');
  if (!existsSync(built)) throw new Error(`${built} missing: run pnpm build`);
  const spec = names.map((name) => ({ name, zone: VARIANTS[name].zone, ttl: VARIANTS[name].ttl }));
  const child = fork(join(here, 'dns-child.mjs'), [JSON.stringify(spec)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const addrs = await new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`dns-child exited with ${code}`)));
  });
  let nextId = 1;
  const waiting = new Map();
  child.on('message', (m) => {
    const w = waiting.get(m.id);
    if (w) {
      waiting.delete(m.id);
      w(m.stats);
    }
  });
  return {
    pid: child.pid,
    addrs,
    /** queries per server since the previous call (which this clears) */
    stats: () =>
      new Promise((resolve) => {
        const id = nextId++;
        waiting.set(id, resolve);
        child.send({ cmd: 'stats', id });
      }),
    stop: async () => {
      if (child.exitCode !== null) return;
      child.send({ cmd: 'exit' });
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** The DNS and facts lines of an asmtpd variant's configuration. */
function factsConfig(name, dns) {
  const v = VARIANTS[name];
  if (v.resolver === 'none') return []; // the pre-facts build knows none of these directives
  const a = dns.addrs[name];
  return [
    `DNSResolver ${v.resolver}`,
    ...(v.resolver === 'tangerine' ? ['DNSProtocol http', `DNSServer ${a.doh}`] : [`DNSServer ${a.udp}`]),
    'SMTPCB no', // the probe would connect to port 25 of the sender's domain
    // SYN fingerprinting (issue 6) is on by default as root; not part of these measurements
    ...(ASMTPD_SET.some((l) => /^SynFP\s/i.test(l)) ? [] : ['SynFP no']),
    ...(v.zone === 'facts'
      ? ['RBL bl1.bench.test', 'RBL bl2.bench.test', 'RBL bl3.bench.test 0.5', 'RBLThreshold 1']
      : []),
  ];
}

async function startAsmtpd(sink, name = 'asmtpd', dns = null) {
  const bin = join(VARIANTS[name]?.build ?? root, 'packages', 'asmtpd', 'bin', 'asmtpd');
  if (!existsSync(bin)) throw new Error(`${bin} missing`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-asmtpd-'));
  chmodSync(dir, 0o755); // the SMTP process drops root (to AvengerUser) and must reach DBDir
  const port = await freePort();
  const conf = join(dir, 'asmtpd.conf');
  writeFileSync(
    conf,
    [
      `SMTPPort ${port}`,
      'BindAddr 127.0.0.1',
      'Hostname bench.asmtpd.test',
      `DBDir ${join(dir, 'db')}`,
      'LocalDomain example.test',
      'RelayNet 127.0.0.0/8',
      `RelayHost 127.0.0.1:${sink.port}`,
      'MaxClients 1000',
      'MaxClientsPerIP 1000',
      ...(dns ? factsConfig(name, dns) : []),
      ...ASMTPD_SET,
      '',
    ].join('\n'),
  );
  // Like Postfix's maillog_file: the daemon writes its log lines straight into a file (no pipe
  // into this process, whose CPU would otherwise count against the shared cores).
  const logFile = join(tmpdir(), `bench-smtp-${name}.log`); // kept after the run
  const logFd = openSync(logFile, 'w');
  const p = spawn(process.execPath, [...ASMTPD_NODE_ARGS, bin, '-d', '-f', conf], {
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  closeSync(logFd);
  const errTailOf = () => readFileSync(logFile, 'utf8').slice(-4000);
  try {
    await waitGreeting(port, 20000, p);
  } catch (e) {
    p.kill('SIGKILL');
    throw new Error(`asmtpd did not start: ${e.message}\n${errTailOf()}`);
  }
  return {
    name,
    port,
    pid: p.pid,
    logFile,
    logTail: () =>
      (p.exitCode !== null ? `(exited with ${p.exitCode}, signal ${p.signalCode})\n` : '') + errTailOf().slice(-2000),
    stop: async () => {
      p.kill('SIGTERM');
      await Promise.race([new Promise((r) => p.once('exit', r)), sleep(5000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
      log(`${name} log: ${logFile}`);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- one measurement
const source = (port, count, reuse) =>
  smtpSource(port, { sessions: SESSIONS, count, size: SIZE, from: FROM, rcpt: RCPT, helo: HELO, reuse });

/** Byte length of a file now (0 when missing). */
function fileSize(f) {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
}
/**
 * What the daemon logged about facts between two offsets of its log: session.facts (connect:
 * reverse name and DNSBLs) and mail.facts (MAIL: SPF of sender and HELO), with their `ms`.
 */
function factsFromLog(file, from) {
  const out = {
    connect: [],
    mail: [],
    names: {},
    dnsfail: 0,
    rblScores: {},
    spf: {},
    spfHelo: {},
    rblErrors: 0,
    temp451: 0,
  };
  let text;
  try {
    const fd = openSync(file, 'r');
    const len = fileSize(file) - from;
    const buf = Buffer.alloc(Math.max(0, len));
    let off = 0;
    while (off < len) {
      const n = readSync(fd, buf, off, len - off, from + off);
      if (n <= 0) break;
      off += n;
    }
    closeSync(fd);
    text = buf.toString('utf8', 0, off);
  } catch {
    return out;
  }
  const bump = (o, k) => (o[String(k)] = (o[String(k)] ?? 0) + 1);
  for (const line of text.split('\n')) {
    if (!line.includes('.facts"') && !line.includes('rbl.error') && !line.includes('4.4.3')) continue;
    let j;
    try {
      j = JSON.parse(line);
    } catch {
      continue;
    }
    if (j.event === 'session.facts') {
      out.connect.push(j.ms);
      bump(out.names, j.name ?? `(none; ptr ${j.ptr ?? 'none'})`);
      if (j.dnsfail) out.dnsfail++;
      if (j.rbl_score !== undefined) bump(out.rblScores, j.rbl_score);
    } else if (j.event === 'mail.facts') {
      out.mail.push(j.ms);
      bump(out.spf, j.spf);
      bump(out.spfHelo, j.spf_helo);
    } else if (j.event === 'rbl.error') out.rblErrors++;
    else if (String(j.reply ?? '').includes('4.4.3')) out.temp451++;
  }
  out.connect = Float64Array.from(out.connect).sort();
  out.mail = Float64Array.from(out.mail).sort();
  return out;
}

/** What the run reports of factsFromLog(): percentiles of the facts times and the counts. */
function factsSummary(f) {
  return {
    connectP50: percentile(f.connect, 50),
    connectP99: percentile(f.connect, 99),
    mailP50: percentile(f.mail, 50),
    mailP99: percentile(f.mail, 99),
    sessions: f.connect.length,
    mails: f.mail.length,
    names: f.names,
    dnsfail: f.dnsfail,
    rblScores: f.rblScores,
    spf: f.spf,
    spfHelo: f.spfHelo,
    rblErrors: f.rblErrors,
    temp451: f.temp451,
  };
}

/** --tls: one RSA 2048 certificate for every target (a temporary directory, kept for the run). */
function tlsFiles() {
  const dir = mkdtempSync(join(tmpdir(), 'bench-tls-'));
  chmodSync(dir, 0o755);
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2'];
  const r = spawnSync(need('openssl'), [...args, '-subj', '/CN=bench.test'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req: ${r.stderr}`);
  return { cert, key };
}

/**
 * --tls: every mode and target driven by the same load client (latency-client.mjs), with or without
 * STARTTLS: throughput, server CPU and latencies all from that one run.
 */
async function measureWithClient(target, sink, mode) {
  const reuse = mode.startsWith('reuse');
  const starttls = mode.endsWith('-tls');
  const drive = (messages) =>
    runClient({
      host: '127.0.0.1',
      port: target.port,
      sessions: SESSIONS,
      messages,
      size: SIZE,
      reuse,
      from: FROM,
      to: RCPT,
      starttls,
    });
  let base = sink.count();
  if (WARMUP > 0) {
    const w = await drive(WARMUP);
    await waitSink(sink, base + w.sent, 120_000);
  }
  await sleep(500);
  base = sink.count();
  const cpu0 = treeCpu(target.pid);
  const client0 = process.cpuUsage();
  const ours0 = oursCpu();
  const m0 = cpuBusy();
  const t0 = performance.now();
  const c = await drive(N);
  const atAccept = sink.count() - base;
  await waitSink(sink, base + c.sent, 300_000);
  const deliverMs = performance.now() - t0;
  const cpu = treeCpu(target.pid) - cpu0;
  const client = process.cpuUsage(client0);
  const m1 = cpuBusy();
  const otherCores =
    Math.max(0, (m1.total - m1.idle - (m0.total - m0.idle)) / CLK_TCK - (oursCpu() - ours0)) / (deliverMs / 1000);
  if (c.errors > 0) throw new Error(`${c.errors} of ${N} messages failed, the first: ${c.firstError}`);
  const l = c.latenciesMs;
  const b = c.bannerMs;
  const r = {
    target: target.name,
    mode,
    messages: c.sent,
    acceptSeconds: c.elapsedMs / 1000,
    acceptPerSec: c.sent / (c.elapsedMs / 1000),
    deliveredSeconds: deliverMs / 1000,
    deliveredPerSec: c.sent / (deliverMs / 1000),
    sinkCountAtAccept: atAccept,
    serverCpuSeconds: cpu,
    serverCpuMsPerMsg: (cpu * 1000) / c.sent,
    clientCpuMsPerMsg: (client.user + client.system) / 1000 / c.sent,
    otherCores,
    ...(c.tls ? { tls: c.tls } : {}),
    latency: {
      bannerP50: percentile(b, 50),
      bannerP99: percentile(b, 99),
      messages: c.sent,
      errors: c.errors,
      clientPerSec: c.sent / (c.elapsedMs / 1000),
      p50: percentile(l, 50),
      p90: percentile(l, 90),
      p99: percentile(l, 99),
      p999: percentile(l, 99.9),
      max: l.length ? l[l.length - 1] : NaN,
    },
  };
  if (otherCores > 0.25)
    log(`WARNING: ${target.name}/${mode}: other processes used ${otherCores.toFixed(2)} cores during the measurement`);
  log(
    `${target.name}/${mode}: ${r.acceptPerSec.toFixed(0)} msg/s accepted, ${r.deliveredPerSec.toFixed(0)} msg/s delivered, server CPU ${r.serverCpuMsPerMsg.toFixed(3)} ms/msg, client CPU ${r.clientCpuMsPerMsg.toFixed(3)} ms/msg, p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms${c.tls ? `, ${c.tls.protocol} ${c.tls.cipher}` : ''}`,
  );
  return r;
}

async function measure(target, sink, mode) {
  if (TLS) return measureWithClient(target, sink, mode);
  const reuse = mode === 'reuse';
  const port = target.port;
  const isAsmtpd = Boolean(VARIANTS[target.name]);
  const hasDns = Boolean(isAsmtpd && dns && VARIANTS[target.name].zone);
  // warm-up (not measured); wait until everything reached the sink
  let base = sink.count();
  if (WARMUP > 0) {
    await source(port, WARMUP, reuse);
    await waitSink(sink, base + WARMUP, 120_000);
  }
  await sleep(500);
  // throughput with smtp-source
  base = sink.count();
  if (hasDns) await dns.stats(); // clears the query counts
  const dnsCpu0 = hasDns ? treeCpu(dns.pid) : 0;
  const log0 = target.logFile ? fileSize(target.logFile) : 0;
  const cpu0 = treeCpu(target.pid);
  const ours0 = oursCpu();
  const m0 = cpuBusy();
  const t0 = performance.now();
  const acceptMs = await source(port, N, reuse);
  const atAccept = sink.count() - base;
  await waitSink(sink, base + N, 300_000);
  const deliverMs = performance.now() - t0;
  const cpu = treeCpu(target.pid) - cpu0;
  const dnsCpu = hasDns ? treeCpu(dns.pid) - dnsCpu0 : 0;
  const m1 = cpuBusy();
  // CPU the machine spent on anything but this benchmark (other people's jobs), in cores
  const machineBusy = (m1.total - m1.idle - (m0.total - m0.idle)) / CLK_TCK;
  const otherCores = Math.max(0, machineBusy - (oursCpu() - ours0)) / (deliverMs / 1000);
  const r = {
    target: target.name,
    mode,
    messages: N,
    acceptSeconds: acceptMs / 1000,
    acceptPerSec: N / (acceptMs / 1000),
    deliveredSeconds: deliverMs / 1000,
    deliveredPerSec: N / (deliverMs / 1000),
    sinkCountAtAccept: atAccept,
    serverCpuSeconds: cpu,
    serverCpuMsPerMsg: (cpu * 1000) / N,
    otherCores,
  };
  if (hasDns) {
    const q = (await dns.stats())[target.name];
    r.dns = {
      queries: q.total,
      byType: q.byType,
      queriesPerMsg: q.total / N,
      serverCpuSeconds: dnsCpu,
      serverCpuMsPerMsg: (dnsCpu * 1000) / N,
    };
  }
  if (target.logFile) {
    await sleep(600); // the daemon writes its log in batches, at least every 200 ms
    r.facts = factsSummary(factsFromLog(target.logFile, log0));
  }
  if (otherCores > 0.25)
    log(`WARNING: ${target.name}/${mode}: other processes used ${otherCores.toFixed(2)} cores during the measurement`);
  log(
    `${target.name}/${mode}: ${r.acceptPerSec.toFixed(0)} msg/s accepted, ${r.deliveredPerSec.toFixed(0)} msg/s delivered, server CPU ${r.serverCpuMsPerMsg.toFixed(3)} ms/msg`,
  );
  // latency with the companion client
  if (LAT_N > 0) {
    base = sink.count();
    await sleep(500);
    const c = await runClient({
      host: '127.0.0.1',
      port,
      sessions: SESSIONS,
      messages: LAT_N,
      size: SIZE,
      reuse,
      from: FROM,
      to: RCPT,
    });
    await waitSink(sink, base + c.sent, 300_000).catch(() => undefined);
    const l = c.latenciesMs;
    const b = c.bannerMs;
    r.latency = {
      bannerP50: percentile(b, 50),
      bannerP90: percentile(b, 90),
      bannerP99: percentile(b, 99),
      bannerMax: b.length ? b[b.length - 1] : NaN,
      messages: LAT_N,
      errors: c.errors,
      ...(c.firstError ? { firstError: c.firstError } : {}),
      clientPerSec: c.sent / (c.elapsedMs / 1000),
      p50: percentile(l, 50),
      p90: percentile(l, 90),
      p99: percentile(l, 99),
      p999: percentile(l, 99.9),
      max: l.length ? l[l.length - 1] : NaN,
    };
    log(
      `${target.name}/${mode}: latency p50 ${r.latency.p50.toFixed(2)} ms, p99 ${r.latency.p99.toFixed(2)} ms (${c.errors} errors); banner p50 ${r.latency.bannerP50.toFixed(2)} ms, p99 ${r.latency.bannerP99.toFixed(2)} ms`,
    );
  }
  // time to banner on an idle server, one connection at a time
  if (isAsmtpd && !reuse && BANNER_PROBES > 0) {
    await sleep(300);
    const pr = await probeBanner({ host: '127.0.0.1', port, count: BANNER_PROBES, gapMs: BANNER_GAP });
    r.idleBanner = {
      count: BANNER_PROBES,
      errors: pr.errors,
      p50: percentile(pr.bannerMs, 50),
      p90: percentile(pr.bannerMs, 90),
      p99: percentile(pr.bannerMs, 99),
      max: pr.bannerMs.length ? pr.bannerMs[pr.bannerMs.length - 1] : NaN,
    };
    log(
      `${target.name}/${mode}: idle banner p50 ${r.idleBanner.p50.toFixed(2)} ms, p99 ${r.idleBanner.p99.toFixed(2)} ms (${pr.errors} errors)`,
    );
  }
  if (r.dns)
    log(
      `${target.name}/${mode}: DNS ${r.dns.queriesPerMsg.toFixed(2)} queries/msg ${JSON.stringify(r.dns.byType)}, DNS server CPU ${r.dns.serverCpuMsPerMsg.toFixed(3)} ms/msg`,
    );
  if (r.facts) log(`${target.name}/${mode}: facts ${JSON.stringify(r.facts)}`);
  return r;
}

/** --together: every target at once, each with its own smtp-source and smtp-sink. */
async function measureTogether(ts, mode) {
  const reuse = mode === 'reuse';
  if (ts.some((t) => !t.sink)) throw new Error('--together measures asmtpd targets only');
  for (const t of ts) {
    const base = t.sink.count();
    if (WARMUP > 0) {
      await source(t.port, WARMUP, reuse);
      await waitSink(t.sink, base + WARMUP, 120_000);
    }
  }
  await sleep(500);
  const before = ts.map((t) => ({
    count: t.sink.count(),
    cpu: treeCpu(t.pid),
    log: t.logFile ? fileSize(t.logFile) : 0,
  }));
  const ours0 = oursCpu();
  const m0 = cpuBusy();
  const t0 = performance.now();
  const runs = ts.map((t) => source(t.port, N, reuse));
  await Promise.race(runs);
  const windowMs = performance.now() - t0;
  const at = ts.map((t, i) => ({ count: t.sink.count() - before[i].count, cpu: treeCpu(t.pid) - before[i].cpu }));
  const m1 = cpuBusy();
  const otherCores =
    Math.max(0, (m1.total - m1.idle - (m0.total - m0.idle)) / CLK_TCK - (oursCpu() - ours0)) / (windowMs / 1000);
  await Promise.all(runs);
  for (const [i, t] of ts.entries()) await waitSink(t.sink, before[i].count + N, 300_000);
  await sleep(600); // log batches
  return ts.map((t, i) => {
    const rate = at[i].count / (windowMs / 1000);
    const r = {
      target: t.name,
      mode,
      messages: at[i].count,
      together: ts.map((x) => x.name),
      windowSeconds: windowMs / 1000,
      acceptPerSec: rate,
      deliveredPerSec: rate,
      serverCpuSeconds: at[i].cpu,
      serverCpuMsPerMsg: (at[i].cpu * 1000) / Math.max(1, at[i].count),
      otherCores,
    };
    if (t.logFile) {
      const f = factsFromLog(t.logFile, before[i].log);
      r.facts = factsSummary(f);
    }
    log(
      `${t.name}/${mode} (together, ${(windowMs / 1000).toFixed(1)} s): ${rate.toFixed(0)} msg/s, server CPU ${r.serverCpuMsPerMsg.toFixed(3)} ms/msg`,
    );
    return r;
  });
}

// ---------------------------------------------------------------- machine

// ---------------------------------------------------------------- is the machine quiet?
const busyBefore = await busyPercent(2000);
if (busyBefore > 10)
  log(`WARNING: the machine is already ${busyBefore.toFixed(0)}% busy before the benchmark; figures will be skewed`);

// ---------------------------------------------------------------- main
const results = [];
const notes = [];
if (TLS) {
  const files = tlsFiles();
  POSTFIX_SET.smtpd_tls_security_level ??= 'may';
  POSTFIX_SET.smtpd_tls_cert_file ??= files.cert;
  POSTFIX_SET.smtpd_tls_key_file ??= files.key;
  ASMTPD_SET.push(`TLSCert ${files.cert}`, `TLSKey ${files.key}`);
  log(`--tls: certificate ${files.cert}`);
}
const sink = await startSink();
log(`smtp-sink on 127.0.0.1:${sink.port}`);
const targets = [];
for (const name of TARGETS)
  if (!['sink', 'postfix'].includes(name) && !VARIANTS[name]) throw new Error(`unknown target ${name}`);
// every asmtpd target gets a loopback DNS server: without DNSServer it would ask the machine's resolver
const dns = await startDns(TARGETS.filter((n) => VARIANTS[n]?.zone));
if (dns) log(`DNS servers (dns-child.mjs, pid ${dns.pid}): ${JSON.stringify(dns.addrs)}`);
try {
  for (const name of TARGETS) {
    try {
      if (name === 'sink') targets.push({ name: 'sink', port: sink.port, pid: sink.pid, stop: async () => undefined });
      else if (name === 'postfix') targets.push(await startPostfixTarget(sink));
      else if (TOGETHER) {
        const own = await startSink();
        const t = await startAsmtpd(own, name, dns);
        targets.push({
          ...t,
          sink: own,
          stop: async () => {
            await t.stop();
            own.stop();
          },
        });
      } else targets.push(await startAsmtpd(sink, name, dns));
      log(`${name} on 127.0.0.1:${targets.at(-1).port}`);
    } catch (e) {
      notes.push(`${name}: NOT MEASURED: ${e.message.split('\n')[0]}`);
      log(`${name}: NOT MEASURED:`, e.message);
    }
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of MODES) {
      if (TOGETHER) {
        if (ROUNDS > 1) log(`round ${round}/${ROUNDS}`);
        try {
          for (const r of await measureTogether(
            targets.filter((t) => !t.failed),
            mode,
          ))
            results.push({ round, ...r });
        } catch (e) {
          notes.push(`round ${round}/${mode}: FAILED: ${e.message.split('\n')[0]}`);
          log(`round ${round}/${mode}: FAILED: ${e.message}`);
        }
        continue;
      }
      // each round starts one target later, so no target is always measured first or last
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]);
      for (const t of order) {
        if (t.failed) continue;
        try {
          if (ROUNDS > 1) log(`round ${round}/${ROUNDS}`);
          results.push({ round, ...(await measure(t, sink, mode)) });
        } catch (e) {
          t.failed = true;
          const tail = t.logTail ? `\n--- ${t.name} log (tail) ---\n${t.logTail()}` : '';
          notes.push(`${t.name}/${mode}: FAILED: ${e.message.split('\n')[0]}`);
          log(`${t.name}/${mode}: FAILED: ${e.message}${tail}`);
        }
      }
    }
  }
} finally {
  for (const t of targets) await t.stop().catch((e) => log(`stop ${t.name}:`, e.message));
  sink.stop();
  await dns?.stop();
}

// ---------------------------------------------------------------- report
const m = machine();
/** accepted msg/s of result r over that of target b in the same round and mode */
function vs(r, b) {
  const x = results.find((y) => y.round === r.round && y.mode === r.mode && y.target === b);
  return x ? r.acceptPerSec / x.acceptPerSec : NaN;
}
/** One row per target and mode: the median over rounds of every figure. */
function summary(t, mode) {
  const rs = results.filter((r) => r.target === t && r.mode === mode);
  if (!rs.length) return undefined;
  const med = (f) => median(rs.map(f));
  return {
    target: t,
    mode,
    rounds: rs.length,
    acceptPerSecEach: rs.map((r) => r.acceptPerSec),
    acceptPerSec: med((r) => r.acceptPerSec),
    deliveredPerSec: med((r) => r.deliveredPerSec),
    serverCpuMsPerMsg: med((r) => r.serverCpuMsPerMsg),
    clientCpuMsPerMsg: med((r) => r.clientCpuMsPerMsg),
    otherCores: med((r) => r.otherCores),
    p50: med((r) => r.latency?.p50),
    p90: med((r) => r.latency?.p90),
    p99: med((r) => r.latency?.p99),
    p999: med((r) => r.latency?.p999),
    max: med((r) => r.latency?.max),
    clientPerSec: med((r) => r.latency?.clientPerSec),
    bannerP50: med((r) => r.latency?.bannerP50),
    bannerP99: med((r) => r.latency?.bannerP99),
    idleBannerP50: med((r) => r.idleBanner?.p50),
    idleBannerP99: med((r) => r.idleBanner?.p99),
    dnsQueriesPerMsg: med((r) => r.dns?.queriesPerMsg),
    dnsCpuMsPerMsg: med((r) => r.dns?.serverCpuMsPerMsg),
    connectFactsP50: med((r) => r.facts?.connectP50),
    connectFactsP99: med((r) => r.facts?.connectP99),
    mailFactsP50: med((r) => r.facts?.mailP50),
    mailFactsP99: med((r) => r.facts?.mailP99),
    // accepted msg/s relative to a baseline measured in the same round and mode
    vsEmptyEach: rs.map((r) => vs(r, baselineOf(t, 'empty'))),
    vsEmpty: median(rs.map((r) => vs(r, baselineOf(t, 'empty')))),
    vsCachedEach: rs.map((r) => vs(r, baselineOf(t, 'cached'))),
    vsCached: median(rs.map((r) => vs(r, baselineOf(t, 'cached')))),
    vsNoFactsEach: rs.map((r) => vs(r, 'asmtpd-nofacts')),
    vsNoFacts: median(rs.map((r) => vs(r, 'asmtpd-nofacts'))),
    /** daemon CPU per message relative to the pre-facts build's, same round and mode */
    cpuVsNoFacts: median(
      rs.map((r) => {
        const x = results.find((y) => y.round === r.round && y.mode === r.mode && y.target === 'asmtpd-nofacts');
        return x ? r.serverCpuMsPerMsg / x.serverCpuMsPerMsg : NaN;
      }),
    ),
  };
}
const get = summary;
const f0 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(0));
const f2 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(2));
const f3 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(3));
const lines = [];
lines.push(
  `Machine: ${m.cpu}, ${m.memGiB} GiB, ${m.os}, kernel ${m.kernel}, Node ${m.node}, Postfix ${m.postfix}, asmtpd ${m.asmtpdCommit}, tmpdir on ${m.tmpdirFs}`,
);
lines.push(
  `CPU busy (all cores) in the 2 s before the run: ${busyBefore.toFixed(0)}%${busyBefore > 10 ? ' -- NOT QUIET, figures skewed' : ''}`,
);
lines.push(
  TLS
    ? `Load: latency-client.mjs (the one load client for every row), ${SESSIONS} sessions, ${N} messages of ${SIZE} bytes per measurement, 1 recipient (${RCPT}), no pipelining; warm-up ${WARMUP}; STARTTLS in the -tls modes (a full handshake per connection, no resumption)${ROUNDS > 1 ? `; ${ROUNDS} rounds in rotating order, medians shown` : ''}`
    : `Load: smtp-source -s ${SESSIONS} -m ${N} -l ${SIZE}, 1 recipient (${RCPT}); warm-up ${WARMUP}; latencies from ${LAT_N} messages of latency-client.mjs, same shape${ROUNDS > 1 ? `; ${ROUNDS} rounds, medians shown` : ''}${TOGETHER ? `; --together: the targets measured at the same time, each with its own smtp-source (${SESSIONS} sessions) and smtp-sink, rate = its sink's count when the first smtp-source finished / that time` : ''}`,
);
lines.push('');
lines.push(
  '| mode | target | accepted msg/s | delivered msg/s | server CPU ms/msg | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | client msg/s | other load (cores) |' +
    (ROUNDS > 1 ? ' accepted msg/s, each round |' : ''),
);
lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|' + (ROUNDS > 1 ? '---|' : ''));
for (const mode of MODES) {
  for (const t of TARGETS) {
    const r = summary(t, mode);
    if (!r) continue;
    lines.push(
      `| ${MODE_LABELS[r.mode]} | ${r.target} | ${f0(r.acceptPerSec)} | ${f0(r.deliveredPerSec)} | ${f3(r.serverCpuMsPerMsg)} | ${f2(r.p50)} | ${f2(r.p90)} | ${f2(r.p99)} | ${f2(r.p999)} | ${f2(r.max)} | ${f0(r.clientPerSec)} | ${f2(r.otherCores)} |` +
        (ROUNDS > 1 ? ` ${r.acceptPerSecEach.map(f0).join(', ')} |` : ''),
    );
  }
}
lines.push('');
for (const mode of MODES) {
  const s = get('sink', mode);
  const p = get('postfix', mode);
  const a = get('asmtpd', mode);
  const ratio = (x, y, k) => (x && y ? (x[k] / y[k]).toFixed(2) : '-');
  lines.push(
    `Ratios (${mode}): asmtpd/postfix accepted ${ratio(a, p, 'acceptPerSec')}, delivered ${ratio(a, p, 'deliveredPerSec')}, p99 latency ${ratio(a, p, 'p99')} (lower is better); asmtpd/sink ${ratio(a, s, 'acceptPerSec')}; postfix/sink accepted ${ratio(p, s, 'acceptPerSec')}, delivered ${ratio(p, s, 'deliveredPerSec')}`,
  );
}
if (BEFORE_BUILD) {
  lines.push('');
  for (const mode of MODES) {
    const a = get('asmtpd', mode);
    const b = get('asmtpd-before', mode);
    if (!a || !b) continue;
    const each = results
      .filter((r) => r.mode === mode && r.target === 'asmtpd')
      .map((r) => {
        const x = results.find((y) => y.round === r.round && y.mode === mode && y.target === 'asmtpd-before');
        return x
          ? `${f2(r.acceptPerSec / x.acceptPerSec)} (CPU ${f2(r.serverCpuMsPerMsg / x.serverCpuMsPerMsg)})`
          : '-';
      });
    lines.push(
      `Before/after (${mode}): asmtpd (this checkout) / asmtpd-before (${BEFORE_BUILD}): accepted msg/s ${f2(a.acceptPerSec / b.acceptPerSec)}, server CPU per message ${f2(a.serverCpuMsPerMsg / b.serverCpuMsPerMsg)} (medians); each round: ${each.join(', ')}`,
    );
  }
}
const factTargets = TLS ? [] : TARGETS.filter((t) => VARIANTS[t] && t !== 'asmtpd-before');
if (factTargets.length) {
  lines.push('');
  lines.push(
    `Client facts (issue 5): DNS over loopback (dns-child.mjs); "vs NX" / "vs cached" = accepted msg/s over that of the same resolver's no-records target (asmtpd, asmtpd-sys: every lookup NXDOMAIN, no RBL) / cached target (asmtpd-cached, asmtpd-sys-cached: PTR, A and SPF records with TTL ${TTL} s, no RBL) in the same round and mode, median over rounds; banner = connect() to 220, new-connection mode only (under load: latency-client, ${SESSIONS} sessions; idle: ${BANNER_PROBES} connections one at a time, ${BANNER_GAP} ms apart); facts ms = the daemon's session.facts (connect: PTR+A+DNSBLs) and mail.facts (2 SPF checks)`,
  );
  lines.push('');
  lines.push(
    '| mode | target | resolver | records | accepted msg/s | vs no facts | vs NX | vs cached | server CPU ms/msg | CPU vs no facts | DNS queries/msg | DNS server CPU ms/msg | banner p50 / p99 ms, under load | banner p50 / p99 ms, idle | connect facts p50 / p99 ms | MAIL facts p50 / p99 ms |' +
      (ROUNDS > 1 ? ' vs no facts, each round | vs NX, each round | vs cached, each round |' : ''),
  );
  lines.push(
    '|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|' +
      (ROUNDS > 1 ? '---|---|---|' : ''),
  );
  for (const mode of MODES) {
    for (const t of factTargets) {
      const r = summary(t, mode);
      if (!r) continue;
      const v = VARIANTS[t];
      const recs =
        v.resolver === 'none'
          ? `pre-facts build (${NOFACTS_BUILD})`
          : v.zone === 'empty'
            ? 'none (NXDOMAIN), no RBL'
            : v.zone === 'cached'
              ? `PTR, A, SPF; TTL ${v.ttl}; no RBL`
              : `all, 3 RBL; TTL ${v.ttl}`;
      const pair = (a, b) => `${f2(a)} / ${f2(b)}`;
      lines.push(
        `| ${MODE_LABELS[mode]} | ${t} | ${v.resolver} | ${recs} | ${f0(r.acceptPerSec)} | ${f2(r.vsNoFacts)} | ${f2(r.vsEmpty)} | ${f2(r.vsCached)} | ${f3(r.serverCpuMsPerMsg)} | ${f2(r.cpuVsNoFacts)} | ${f2(r.dnsQueriesPerMsg)} | ${f3(r.dnsCpuMsPerMsg)} | ${mode === 'new' ? pair(r.bannerP50, r.bannerP99) : '-'} | ${mode === 'new' ? pair(r.idleBannerP50, r.idleBannerP99) : '-'} | ${pair(r.connectFactsP50, r.connectFactsP99)} | ${pair(r.mailFactsP50, r.mailFactsP99)} |` +
          (ROUNDS > 1
            ? ` ${r.vsNoFactsEach.map(f2).join(', ')} | ${r.vsEmptyEach.map(f2).join(', ')} | ${r.vsCachedEach.map(f2).join(', ')} |`
            : ''),
      );
    }
  }
  // what the daemon concluded (from its log), last round: a wrong answer would make the figures meaningless
  for (const mode of MODES) {
    for (const t of factTargets) {
      const r = results.filter((x) => x.target === t && x.mode === mode).at(-1);
      if (r?.facts)
        lines.push(
          `Facts seen (${t}/${mode}, last round): names ${JSON.stringify(r.facts.names)}, dnsfail ${r.facts.dnsfail}, rbl_score ${JSON.stringify(r.facts.rblScores)}, spf ${JSON.stringify(r.facts.spf)}, spf_helo ${JSON.stringify(r.facts.spfHelo)}, rbl.error ${r.facts.rblErrors}, 4.4.3 replies ${r.facts.temp451}; DNS queries by type ${JSON.stringify(r.dns?.byType ?? {})}`,
        );
    }
  }
}
if (TLS) {
  lines.push('');
  lines.push(
    'TLS cost (issue 16): per target and connection mode, the STARTTLS row over the plain one, same round (medians over rounds; "each round" in order). rate = accepted msg/s, CPU = server CPU per message; "+CPU ms" = what TLS adds per message.',
  );
  lines.push('');
  lines.push(
    '| connections | target | msg/s plain | msg/s TLS | rate TLS/plain | CPU ms/msg plain | CPU ms/msg TLS | CPU TLS/plain | +CPU ms/msg | client CPU ms/msg plain / TLS | rate TLS/plain, each round | CPU TLS/plain, each round | negotiated |',
  );
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|');
  const perRound = (t, plain, f) =>
    results
      .filter((r) => r.target === t && r.mode === `${plain}-tls`)
      .map((r) => {
        const x = results.find((y) => y.round === r.round && y.target === t && y.mode === plain);
        return x ? f(r, x) : NaN;
      });
  const overhead = {};
  for (const plain of ['new', 'reuse']) {
    if (!MODES.includes(plain) || !MODES.includes(`${plain}-tls`)) continue;
    for (const t of TARGETS) {
      const a = summary(t, plain);
      const b = summary(t, `${plain}-tls`);
      if (!a || !b) continue;
      const rate = perRound(t, plain, (r, x) => r.acceptPerSec / x.acceptPerSec);
      const cpu = perRound(t, plain, (r, x) => r.serverCpuMsPerMsg / x.serverCpuMsPerMsg);
      const added = perRound(t, plain, (r, x) => r.serverCpuMsPerMsg - x.serverCpuMsPerMsg);
      overhead[`${t}/${plain}`] = { rate: median(rate), cpu: median(cpu) };
      const tls = results.find((r) => r.target === t && r.mode === `${plain}-tls`)?.tls;
      lines.push(
        `| ${plain === 'new' ? 'new per message' : 'reused'} | ${t} | ${f0(a.acceptPerSec)} | ${f0(b.acceptPerSec)} | ${f2(median(rate))} | ${f3(a.serverCpuMsPerMsg)} | ${f3(b.serverCpuMsPerMsg)} | ${f2(median(cpu))} | ${f3(median(added))} | ${f3(a.clientCpuMsPerMsg)} / ${f3(b.clientCpuMsPerMsg)} | ${rate.map(f2).join(', ')} | ${cpu.map(f2).join(', ')} | ${tls ? `${tls.protocol} ${tls.cipher}` : '-'} |`,
      );
    }
    const a = overhead[`asmtpd/${plain}`];
    const p = overhead[`postfix/${plain}`];
    if (a && p)
      lines.push(
        `|  | **asmtpd vs postfix** (${plain}) | | | ${f2(a.rate / p.rate)} (≥ 1: asmtpd loses less rate to TLS) | | | ${f2(a.cpu / p.cpu)} (≤ 1: asmtpd's CPU grows less) | | | | | |`,
      );
  }
}
for (const n of notes) lines.push(`Note: ${n}`);
console.log(lines.join('\n'));
if (JSON_OUT)
  writeFileSync(
    JSON_OUT,
    JSON.stringify(
      {
        machine: m,
        busyBeforePercent: busyBefore,
        params: { N, SESSIONS, SIZE, LAT_N, WARMUP, RCPT, ROUNDS, TTL, BANNER_PROBES, BANNER_GAP, HELO, FROM },
        summary: MODES.flatMap((mo) => TARGETS.map((t) => summary(t, mo)).filter(Boolean)),
        results,
        notes,
      },
      null,
      2,
    ) + '\n',
  );
