#!/usr/bin/env node
// bench/fair — asmtpd vs Postfix vs Haraka, side by side in one run (issue 21). By hand, as root,
// from the repo root, after `pnpm build` and `bench/fair/setup.sh` (bench/fair/README.md):
//
//   node bench/fair/run.mjs [--rounds 3] [--messages 3000] [--json FILE] ...
//
// All three servers forward every message to one smtp-sink; the load is smtp-source (20
// sessions, 4 KiB, one recipient). All three resolve through one real caching resolver, unbound,
// forwarding every name to a loopback authoritative zone (resolver.mjs): the run re-executes
// itself in a private mount namespace whose /etc/resolv.conf names that unbound and whose
// /etc/hosts no longer maps 127.0.0.1 (so the client's reverse name is a DNS question for every
// server). No query leaves the machine. Variants:
//   reuse   reused connections (smtp-source -d), recipient bench@relay.test (relayed)
//   new     a new connection per message, the same recipient
//   script  a new connection per message, and a shell run for the recipient by each server:
//           asmtpd: USER@example.test, a real account whose ~/.avenger/rcpt is `accept`;
//           Postfix: bench@script.test, a policy service spawned per RCPT (postfix.mjs);
//           Haraka: bench@script.test, a plugin that spawns /bin/sh per RCPT (haraka.mjs).
// Targets (--servers): asmtpd (default Workers), asmtpd-w1 (Workers 1; asmtpd-wN likewise),
// asmtpd-nosynfp (SynFP no; also asmtpd-wN-nosynfp), postfix, haraka. Each round measures every
// variant, the targets in a rotating order (round N starts with the Nth), each after an
// unmeasured warm-up. CPU is summed over every process of
// a server with one cgroup v2 per server (cgroup.mjs), from the start of smtp-source until
// the sink has every message plus a settle time (--settle-ms, 500: Postfix's queue manager still
// removes the last queue files), and divided by the messages. Also per measurement: the
// resolver's CPU (unbound), the queries that reached the zone, the load client's and sink's CPU,
// and "other load" (the machine's busy time minus every process of this run).
//
// Options: --rounds N (3) --messages N (3000, per measurement) --script-messages N (= messages)
//   --sessions N (20) --size BYTES (4096) --warmup N (300) --servers LIST
//   (asmtpd,postfix,haraka) --variants LIST (reuse,new,script) --ttl S (300, the zone's
//   records) --synfp yes|no (asmtpd's default when not given) --settle-ms MS (500)
//   --resolver-addr IP (127.0.53.1; unbound listens on IP:53) --json FILE
//   --report FILE (print the report of an earlier --json FILE and exit)
//   --max-minutes M (no new round after M minutes; 0 = no limit)
//   --count-scripts (a check: every script also appends a line to a file, and each measurement
//   logs how many ran, which must be one per message in the script variant; not for figures)
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  busyPercent,
  cpuBusy,
  CLK_TCK,
  log,
  machine,
  median,
  need,
  root,
  smtpSource,
  freeLoopbackPort,
  sleep,
  startSink,
  waitSink,
} from '../smtp/lib.mjs';
import { startAsmtpdServer } from './asmtpd.mjs';
import { makeRunGroup } from './cgroup.mjs';
import { harakaVersion, startHaraka } from './haraka.mjs';
import { startPostfixServer } from './postfix.mjs';
import { breakdown, snapshot } from './procs.mjs';
import { startUnbound, startZone } from './resolver.mjs';

const self = fileURLToPath(import.meta.url);
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : def;
};

// --report FILE: only print the report of an earlier run's --json (e.g. of a run cut short)
if (opt('report', '')) {
  console.log(report(JSON.parse(readFileSync(opt('report', ''), 'utf8'))));
  process.exit(0);
}

// ---------------------------------------------------------------- the private mount namespace
if (process.getuid?.() !== 0) throw new Error('run as root (cgroups, a mount namespace, Postfix, useradd)');
if (!process.env.BENCH_FAIR_NS) {
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, self, ...argv], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_FAIR_NS: '1' },
  });
  process.exit(r.status ?? 1);
}

const ROUNDS = Number(opt('rounds', 3));
const N = Number(opt('messages', 3000));
const N_SCRIPT = Number(opt('script-messages', N));
const SESSIONS = Number(opt('sessions', 20));
const SIZE = Number(opt('size', 4096));
const WARMUP = Number(opt('warmup', 300));
const SERVERS = opt('servers', 'asmtpd,postfix,haraka').split(',');
const VARIANTS = opt('variants', 'reuse,new,script').split(',');
const TTL = Number(opt('ttl', 300));
const SYNFP = opt('synfp', undefined);
const SETTLE_MS = Number(opt('settle-ms', 500));
const RESOLVER_ADDR = opt('resolver-addr', '127.0.53.1');
const JSON_OUT = opt('json', '');
const COUNT_SCRIPTS = argv.includes('--count-scripts');
/** --max-minutes M: no new round is started after M minutes (the rounds done are reported) */
const MAX_MINUTES = Number(opt('max-minutes', 0));
const startedAt = Date.now();
const FROM = 'sender@bench-source.test';
const HELO = 'bench-client.test';
const RELAY_RCPT = 'bench@relay.test';
const SCRIPT_DOMAIN = 'script.test';
for (const v of VARIANTS) if (!['reuse', 'new', 'script'].includes(v)) throw new Error(`--variants ${v}?`);
for (const s of SERVERS)
  if (!/^(asmtpd(-w\d+)?(-nosynfp)?|postfix|haraka)$/.test(s)) throw new Error(`--servers ${s}?`);
need('smtp-source');

// ---------------------------------------------------------------- cleanup
const cleanups = [];
let cleaning = false;
async function cleanup() {
  if (cleaning) return;
  cleaning = true;
  for (const f of cleanups.reverse())
    await Promise.resolve()
      .then(f)
      .catch((e) => log(`cleanup: ${e.message}`));
}
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    log(`${sig}: stopping`);
    cleanup().finally(() => process.exit(130));
  });

// ---------------------------------------------------------------- load
const source = (port, count, { reuse, rcpt }) =>
  smtpSource(port, { sessions: SESSIONS, count, size: SIZE, from: FROM, rcpt, helo: HELO, reuse });

// ---------------------------------------------------------------- the run
const run = makeRunGroup();
cleanups.push(() => run.remove());
const groups = {
  bench: run.group('bench'), // this process, smtp-source, smtp-sink
  unbound: run.group('unbound'),
  zone: run.group('zone'),
};
groups.bench.add(process.pid);

const out = {
  machine: machine(),
  haraka: SERVERS.includes('haraka') ? harakaVersion() : null,
  options: { ROUNDS, N, N_SCRIPT, SESSIONS, SIZE, WARMUP, SERVERS, VARIANTS, TTL, SYNFP, SETTLE_MS },
  measurements: [],
  samples: {},
};
const started = {};
try {
  out.busyBefore = await busyPercent(2000);
  log(
    `machine: ${JSON.stringify(out.machine)}; Haraka ${out.haraka ?? '-'}; ${out.busyBefore.toFixed(0)} % busy before the run`,
  );
  // DNS: the zone, unbound, and this namespace's resolv.conf / hosts
  const zone = await startZone({ ttl: TTL, group: groups.zone });
  cleanups.push(() => zone.stop());
  const unbound = await startUnbound({ addr: RESOLVER_ADDR, forwardTo: zone.udp, group: groups.unbound });
  cleanups.push(() => unbound.stop());
  const etc = mkdtempSync(join(tmpdir(), 'bench-fair-etc-'));
  cleanups.push(() => rmSync(etc, { recursive: true, force: true }));
  writeFileSync(join(etc, 'resolv.conf'), `nameserver ${RESOLVER_ADDR}\noptions timeout:2 attempts:2\n`);
  // empty: no 127.0.0.1 (nor ::1, which glibc's files lookup also takes for 127.0.0.1); unbound
  // answers localhost itself
  writeFileSync(join(etc, 'hosts'), "# bench/fair: every name from DNS (the run's unbound)\n");
  for (const f of ['resolv.conf', 'hosts']) {
    const m = spawnSync('mount', ['--bind', join(etc, f), `/etc/${f}`], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`mount --bind ${f}: ${m.stderr}`);
  }
  log(`resolver: unbound on ${RESOLVER_ADDR}:53 -> zone ${zone.udp} (TTL ${TTL} s)`);

  // the script variant's recipients
  const { createUser, removeUser, writeScript } = await import(join(root, 'test', 'dist', 'support', 'users.js'));
  const user = createUser('fair');
  cleanups.push(() => removeUser(user));
  // --count-scripts (a check, not for measuring): every script also appends a line to one file
  const countFile = COUNT_SCRIPTS ? join(mkdtempSync(join(tmpdir(), 'bench-fair-count-')), 'runs') : '';
  if (countFile) {
    chmodSync(dirname(countFile), 0o755);
    writeFileSync(countFile, '');
    chmodSync(countFile, 0o666);
    cleanups.push(() => rmSync(dirname(countFile), { recursive: true, force: true }));
  }
  writeScript(user, 'rcpt', countFile ? `echo asmtpd >> ${countFile}\naccept` : 'accept');
  const scriptDir = mkdtempSync(join(tmpdir(), 'bench-fair-script-'));
  chmodSync(scriptDir, 0o755);
  cleanups.push(() => rmSync(scriptDir, { recursive: true, force: true }));
  const harakaScript = join(scriptDir, 'rcpt.sh');
  writeFileSync(
    harakaScript,
    `#!/bin/sh\n# bench/fair: Haraka per-recipient script (accept)\n${countFile ? `echo haraka >> ${countFile}\n` : ''}exit 0\n`,
  );
  chmodSync(harakaScript, 0o755);

  const sink = await startSink(await freeLoopbackPort());
  cleanups.push(() => sink.stop());

  // the servers, each in its own cgroup
  for (const name of SERVERS) {
    const group = run.group(name);
    const port = await freeLoopbackPort();
    let s;
    if (name === 'postfix') {
      const inGroup = async (fn) => {
        group.add(process.pid);
        try {
          return await fn();
        } finally {
          groups.bench.add(process.pid);
        }
      };
      s = await startPostfixServer({
        sinkPort: sink.port,
        script: { domain: SCRIPT_DOMAIN, countFile },
        inGroup,
        group,
      });
      s.scriptRcpt = `bench@${SCRIPT_DOMAIN}`;
    } else if (name === 'haraka') {
      s = await startHaraka({
        port,
        sinkPort: sink.port,
        script: { domain: SCRIPT_DOMAIN, path: harakaScript },
        group,
      });
      s.scriptRcpt = `bench@${SCRIPT_DOMAIN}`;
    } else {
      const w = /^asmtpd-w(\d+)$/.exec(name);
      s = await startAsmtpdServer({
        name,
        port,
        sinkPort: sink.port,
        workers: w ? Number(w[1]) : undefined,
        synfp: name.endsWith('-nosynfp') ? 'no' : SYNFP,
        group,
      });
      s.scriptRcpt = `${user.name}@example.test`;
    }
    s.group = group;
    started[name] = s;
    cleanups.push(() => s.stop());
    log(`${name} on port ${s.port}, pid ${s.pid}, ${group.pids().length} processes`);
  }

  const allGroups = () => [...Object.values(groups), ...Object.values(started).map((s) => s.group)];
  async function measure(s, variant, round) {
    const reuse = variant === 'reuse';
    const rcpt = variant === 'script' ? s.scriptRcpt : RELAY_RCPT;
    const n = variant === 'script' ? N_SCRIPT : N;
    let base = sink.count();
    if (WARMUP > 0) {
      await source(s.port, WARMUP, { reuse, rcpt });
      await waitSink(sink, base + WARMUP, 120_000);
    }
    await sleep(300);
    await zone.stats(); // clears its count
    base = sink.count();
    const cpu0 = Object.fromEntries(allGroups().map((g) => [g.dir, g.cpuSeconds()]));
    const procs0 = snapshot(s.group, s.pid);
    const m0 = cpuBusy();
    const t0 = performance.now();
    const acceptMs = await source(s.port, n, { reuse, rcpt });
    await waitSink(sink, base + n, 300_000);
    const deliverMs = performance.now() - t0;
    await sleep(SETTLE_MS);
    const wallS = (performance.now() - t0) / 1000;
    const used = (g) => g.cpuSeconds() - cpu0[g.dir];
    const byRole = breakdown(procs0, snapshot(s.group, s.pid));
    const m1 = cpuBusy();
    const q = await zone.stats();
    const ours = allGroups().reduce((a, g) => a + used(g), 0);
    const machineBusy = (m1.total - m1.idle - (m0.total - m0.idle)) / CLK_TCK;
    const scriptRuns = countFile ? countLines(countFile) : null;
    const r = {
      round,
      variant,
      ...(scriptRuns ? { scriptRuns } : {}),
      target: s.name,
      messages: n,
      acceptPerSec: n / (acceptMs / 1000),
      deliveredPerSec: n / (deliverMs / 1000),
      cpuMsPerMsg: (used(s.group) * 1000) / n,
      resolverCpuMsPerMsg: (used(groups.unbound) * 1000) / n,
      zoneQueriesPerMsg: q.total / n,
      clientCpuMsPerMsg: (used(groups.bench) * 1000) / n,
      serverCores: used(s.group) / wallS,
      byRoleMsPerMsg: Object.fromEntries(Object.entries(byRole).map(([k, v]) => [k, (v * 1000) / n])),
      otherCores: Math.max(0, machineBusy - ours) / wallS,
    };
    log(
      `round ${round} ${variant} ${s.name}: ${r.acceptPerSec.toFixed(0)} msg/s (delivered ${r.deliveredPerSec.toFixed(0)}), ` +
        `CPU ${r.cpuMsPerMsg.toFixed(3)} ms/msg (${r.serverCores.toFixed(2)} cores), resolver ${r.resolverCpuMsPerMsg.toFixed(3)} ms/msg, ` +
        `zone ${r.zoneQueriesPerMsg.toFixed(3)} q/msg, client+sink ${r.clientCpuMsPerMsg.toFixed(3)} ms/msg, other load ${r.otherCores.toFixed(2)} cores` +
        (scriptRuns ? `, scripts run ${JSON.stringify(scriptRuns)} (warm-up included)` : ''),
    );
    log(
      `  by process: ${Object.entries(r.byRoleMsPerMsg)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${v.toFixed(3)}`)
        .join(', ')} ms/msg`,
    );
    if (r.otherCores > 0.25)
      log(`WARNING: other processes used ${r.otherCores.toFixed(2)} cores during this measurement`);
    return r;
  }

  const targets = SERVERS.map((n) => started[n]);
  for (let round = 1; round <= ROUNDS; round++) {
    if (MAX_MINUTES && round > 1 && Date.now() - startedAt > MAX_MINUTES * 60_000) {
      log(`--max-minutes ${MAX_MINUTES}: stopping after ${round - 1} rounds`);
      out.roundsDone = round - 1;
      break;
    }
    out.roundsDone = round;
    for (const variant of VARIANTS) {
      const k = (round - 1) % targets.length;
      for (const s of [...targets.slice(k), ...targets.slice(0, k)]) {
        try {
          out.measurements.push(await measure(s, variant, round));
        } catch (e) {
          // one failed measurement (e.g. a 4xx that stops smtp-source) is recorded, not fatal
          log(`round ${round} ${variant} ${s.name}: FAILED: ${e.message}`);
          out.failures = [...(out.failures ?? []), { round, variant, target: s.name, error: e.message }];
          await sleep(2000);
        }
        if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(out, null, 2)); // so far, in case the run is cut short
      }
    }
  }
  out.samples = samples(started, user.name);
} catch (e) {
  out.error = String(e?.stack ?? e);
  log(`FAILED: ${out.error}`);
  for (const s of Object.values(started)) if (s.logFile) log(`${s.name} log: ${s.logFile}`);
} finally {
  await cleanup();
}
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(out, null, 2));
console.log(report(out));
process.exit(out.error ? 1 : 0);

// ---------------------------------------------------------------- helpers
/** --count-scripts: the lines each server's scripts appended since the previous call (the file is emptied). */
function countLines(file) {
  const by = {};
  for (const l of readFileSync(file, 'utf8').split('\n').filter(Boolean)) by[l] = (by[l] ?? 0) + 1;
  writeFileSync(file, '');
  return by;
}

/** What each server concluded about the client and the recipient (read from its log): proof the facts and scripts ran. */
function samples(servers, userName) {
  const out = {};
  const read = (f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  for (const [name, s] of Object.entries(servers)) {
    const text = read(s.logFile);
    if (name.startsWith('asmtpd')) {
      const lines = text.split('\n');
      const pick = (re) => lines.filter((l) => re.test(l)).slice(-1)[0] ?? null;
      out[name] = {
        sessionFacts: pick(/"session\.facts"/),
        mailFacts: pick(/"mail\.facts"/),
        scriptDecision: pick(new RegExp(`"rcpt\\.decision".*${userName}`)),
        errors: lines.filter((l) => /"level":"(error|fatal)"/.test(l)).length,
      };
    } else if (name === 'postfix') {
      const lines = text.split('\n');
      out[name] = {
        connect: lines.filter((l) => / connect from /.test(l)).slice(-1)[0] ?? null,
        rejects: lines.filter((l) => /reject|warning|fatal/.test(l)).length,
      };
    } else if (name === 'haraka') {
      const lines = text.split('\n');
      out[name] = {
        disconnect: lines.filter((l) => /disconnect ip=/.test(l)).slice(-1)[0] ?? null,
        scriptRcpt: lines.filter((l) => /bench_script/.test(l)).slice(-1)[0] ?? null,
        errors: lines.filter((l) => /\[(ERROR|CRIT)\]/.test(l)).length,
      };
    }
  }
  return out;
}

function report(o) {
  const ms = o.measurements;
  const lines = [];
  const f = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  lines.push(
    `## bench/fair: ${o.machine.cpu}, ${o.machine.os}, ${o.machine.node}, Postfix ${o.machine.postfix}, Haraka ${o.haraka ?? '-'}, asmtpd ${o.machine.asmtpdCommit}`,
  );
  lines.push(`${Number.isFinite(o.busyBefore) ? `${o.busyBefore.toFixed(0)} % busy in the 2 s before the run; ` : ''}`);
  lines.push(
    `${o.roundsDone ?? o.options.ROUNDS} rounds, ${o.options.N} messages per measurement (script: ${o.options.N_SCRIPT}), ${o.options.SESSIONS} sessions, ${o.options.SIZE} B`,
  );
  for (const v of o.options.VARIANTS) {
    lines.push('', `### ${v}`, '');
    lines.push(
      '| server | msg/s (median) | each round | delivered msg/s | CPU ms/msg, all processes | each round | server cores | resolver ms/msg | zone queries/msg | client+sink ms/msg | other load (cores) |',
      '|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|',
    );
    for (const t of o.options.SERVERS) {
      const rs = ms.filter((m) => m.variant === v && m.target === t);
      if (!rs.length) continue;
      const med = (k) => median(rs.map((m) => m[k]));
      lines.push(
        `| ${t} | ${f(med('acceptPerSec'))} | ${rs.map((m) => f(m.acceptPerSec)).join(', ')} | ${f(med('deliveredPerSec'))} | ${f(med('cpuMsPerMsg'), 3)} | ${rs
          .map((m) => f(m.cpuMsPerMsg, 3))
          .join(
            ', ',
          )} | ${f(med('serverCores'), 2)} | ${f(med('resolverCpuMsPerMsg'), 3)} | ${f(med('zoneQueriesPerMsg'), 3)} | ${f(med('clientCpuMsPerMsg'), 3)} | ${f(med('otherCores'), 2)} |`,
      );
    }
  }
  // the aims: asmtpd's CPU per message over Postfix's, per round (same round, same variant)
  const aims = { reuse: 1, new: 1, script: 1.5 };
  const asmtpds = o.options.SERVERS.filter((s) => s.startsWith('asmtpd'));
  if (o.options.SERVERS.includes('postfix') && asmtpds.length) {
    lines.push(
      '',
      "### CPU per message over Postfix's (per round, then the median; aim: ≤ 1 with facts, ≤ 1.5 with a script)",
      '',
    );
    lines.push(
      "| server | variant | each round | median | with the resolver's CPU added to both | aim | met |",
      '|---|---|---|---:|---:|---:|---|',
    );
    for (const a of [...asmtpds, ...(o.options.SERVERS.includes('haraka') ? ['haraka'] : [])]) {
      for (const v of o.options.VARIANTS) {
        const per = [];
        const perR = [];
        for (let r = 1; r <= (o.roundsDone ?? o.options.ROUNDS); r++) {
          const x = ms.find((m) => m.round === r && m.variant === v && m.target === a);
          const p = ms.find((m) => m.round === r && m.variant === v && m.target === 'postfix');
          if (!x || !p) continue;
          per.push(x.cpuMsPerMsg / p.cpuMsPerMsg);
          perR.push((x.cpuMsPerMsg + x.resolverCpuMsPerMsg) / (p.cpuMsPerMsg + p.resolverCpuMsPerMsg));
        }
        if (!per.length) continue;
        const m = median(per);
        lines.push(
          `| ${a} | ${v} | ${per.map((x) => f(x, 2)).join(', ')} | ${f(m, 2)} | ${f(median(perR), 2)} | ${aims[v]} | ${a === 'haraka' ? '-' : m <= aims[v] ? 'yes' : 'NO'} |`,
        );
      }
    }
  }
  lines.push(
    '',
    '### Where the CPU goes (ms/msg by process, median over rounds; /proc ticks of 10 ms; a script that exited counts at the parent that reaped it)',
    '',
  );
  for (const v of o.options.VARIANTS)
    for (const t of o.options.SERVERS) {
      const rs = ms.filter((m) => m.variant === v && m.target === t && m.byRoleMsPerMsg);
      if (!rs.length) continue;
      const roles = [...new Set(rs.flatMap((m) => Object.keys(m.byRoleMsPerMsg)))];
      const med = roles
        .map((k) => [k, median(rs.map((m) => m.byRoleMsPerMsg[k] ?? 0))])
        .filter(([, x]) => x >= 0.005)
        .sort((a, b) => b[1] - a[1]);
      lines.push(`- ${v}, ${t}: ${med.map(([k, x]) => `${k} ${f(x, 3)}`).join('; ')}`);
    }
  if (o.samples && Object.keys(o.samples).length)
    lines.push('', '### What the servers logged (last sample)', '', '```', JSON.stringify(o.samples, null, 1), '```');
  for (const x of o.failures ?? [])
    lines.push(`- measurement failed: round ${x.round} ${x.variant} ${x.target}: ${x.error}`);
  if (o.error) lines.push('', `FAILED: ${o.error}`);
  return lines.join('\n');
}
