#!/usr/bin/env node
// bench/policy/run.mjs — RCPT policy decisions per second through the real daemon (issue 3,
// item 9), next to the raw rate of spawning `/bin/sh -c true` from Node, in one run.
//
//   pnpm build && node bench/policy/run.mjs [options]
//
// Root only (useradd, the daemon's privileged runner). What it does, for concurrency N = 1, 2, 8:
//   raw        N loops of spawn('/bin/sh', ['-c', 'true']) from this process (the yardstick);
//   script     N SMTP sessions to the real daemon (asmtpd -d -f CONF), each EHLO + MAIL once, then
//              RCPT TO:<user+rK@bench.example> with a new K every time (the per-session decision
//              cache is keyed by (sender, recipient): it never hits), where ~user/.avenger/rcpt+default
//              is `accept` (the runner tries rcpt+rK, then finds rcpt+default);
//   noscript   the same for a user with no ~/.avenger (the runner finds nothing; the daemon then asks
//              the runner for EtcDir/default as AvengerUser, which does not exist either);
//   floor      the same for postmaster+rK@bench.example (no runner call at all: SMTP + routing only).
// Every 100 RCPTs (the default MaxRcpts) a session sends RSET + MAIL (inside the wall clock, not in
// the per-RCPT latencies). Each RCPT round trip is timed (p50, p99); rate = RCPTs / wall clock.
// Cases run in rotating order (each one first in some round) so background load hits them alike;
// each figure is the median of --rounds rounds; the aim printed for concurrency 1 is issue 21's
// (decisions/s >= 0.9 x raw spawns), and raw CPU / script CPU is the ratio a CPU-bound machine gives. Then a profile at concurrency 1, stage by stage (see --help).
// Temp users (createUser from test support), their homes and the daemon's dirs are removed at
// the end, also on failure or SIGINT/SIGTERM.
//
// Options: --count N (per measurement, default 1000) --rounds R (default 3) --concurrency 1,2,8
//          --time-limit S (per measurement, default 30) --max-minutes M (whole run, default 10)
//          --profile-count N (default 1000; 0 = no profile) --json FILE
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon } from '../../test/dist/support/daemon.js';
import { SmtpClient } from '../../test/dist/support/smtp-client.js';
import { canCreateUsers, createUser, removeUser, writeScript } from '../../test/dist/support/users.js';
import { startRunner, SHELL_PRELUDE, SAFE_PATH, DEFAULT_LIMITS } from '../../packages/avenger-runner/dist/index.js';
import { Spawner } from '../../packages/avenger-runner/dist/spawner.js';

// ---------------------------------------------------------------------------------------------
// options

const HELP = `usage: node bench/policy/run.mjs [--count N] [--rounds R] [--concurrency 1,2,8]
       [--time-limit S] [--max-minutes M] [--profile-count N] [--spawner-before FILE] [--json FILE]
Profile stages (concurrency 1, sequential, --profile-count each):
  1 node spawn       spawn('/bin/sh', ['-c', 'true']) from this process
  2 spawner, true    the runner's spawner (libexec/spawner, C; Spawner driven from here), sh -c true as the user
  3 spawner, prelude the same with the runner's shell prelude, the script looked up as the user and
                     opened on fd 4, decision on fd 3 (exactly the runner's call)
  3p perl spawner    3 through bench/policy/spawner-perl.pl, the perl spawner the runner used before
                     issue 21 (the same frames)
  3b (--spawner-before FILE) 3 through another spawner: FILE.pl runs with perl, else FILE itself,
                     e.g. git show COMMIT:packages/avenger-runner/libexec/spawner.c, compiled
  4 runner           startRunner().run(rcpt request): JSON pipe, lookup and checks, then 3
  5 rcpt script      RCPT over SMTP to the daemon: SMTP, routing, daemon → runner, then 4
  6 rcpt floor       RCPT postmaster+rK over SMTP: no runner call`;

function parseArgs(argv) {
  const o = {
    count: 1000,
    rounds: 3,
    concurrency: [1, 2, 8],
    timeLimitS: 30,
    maxMinutes: 10,
    profileCount: 1000,
    spawnerBefore: null,
    json: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    const num = (x, min) => {
      const n = Number(x);
      if (!Number.isFinite(n) || n < min) throw new Error(`${a}: bad value ${x}`);
      return n;
    };
    if (a === '--count') o.count = num(v(), 1);
    else if (a === '--rounds') o.rounds = num(v(), 1);
    else if (a === '--concurrency')
      o.concurrency = v()
        .split(',')
        .map((x) => num(x, 1));
    else if (a === '--time-limit') o.timeLimitS = num(v(), 1);
    else if (a === '--max-minutes') o.maxMinutes = num(v(), 1);
    else if (a === '--profile-count') o.profileCount = num(v(), 0);
    else if (a === '--json') o.json = v();
    else if (a === '--spawner-before') o.spawnerBefore = v();
    else if (a === '--help' || a === '-h') {
      console.log(HELP);
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n${HELP}`);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const unavailable = canCreateUsers();
if (unavailable) {
  console.error(`bench/policy: ${unavailable}`);
  process.exit(2);
}
const runDeadline = Date.now() + opts.maxMinutes * 60_000;
const DOMAIN = 'bench.example';
const SESSION_RCPTS = 100; // the default MaxRcpts

// ---------------------------------------------------------------------------------------------
// measurement

const pct = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rotate = (xs, k) => xs.map((_, i) => xs[(i + k) % xs.length]);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * CPU ms (user+system) of pid and its live descendants, by role: the root (daemon), node children
 * (runner), the spawner (C or perl) and what it has reaped (the scripts: sh). Reaped children count in
 * their parent's cutime/cstime, so nothing is counted twice.
 */
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString()) || 100;
function treeCpu(rootPid, rootRole = 'daemon') {
  const stats = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, 'utf8');
      const comm = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      // f[1] = ppid; f[11..14] = utime stime cutime cstime
      stats.set(Number(name), {
        comm,
        ppid: Number(f[1]),
        self: Number(f[11]) + Number(f[12]),
        children: Number(f[13]) + Number(f[14]),
      });
    } catch {
      /* gone meanwhile */
    }
  }
  const wanted = new Set([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, st] of stats) if (!wanted.has(pid) && wanted.has(st.ppid)) (wanted.add(pid), (grew = true));
  }
  const by = { daemon: 0, runner: 0, spawner: 0, scripts: 0, other: 0 };
  for (const pid of wanted) {
    const st = stats.get(pid);
    if (!st) continue;
    if (st.comm === 'perl' || st.comm === 'spawner') ((by.spawner += st.self), (by.scripts += st.children));
    else if (pid === rootPid) by[rootRole] += st.self + st.children;
    else if (st.ppid === rootPid) by.runner += st.self + st.children;
    else by.other += st.self + st.children;
  }
  for (const k of Object.keys(by)) by[k] = (by[k] * 1000) / CLK_TCK;
  return by;
}

/**
 * Run `concurrency` workers, each calling its op() until `count` ops in all or the time limit.
 * makeWorker(i) → {op, close?} is set up before the clock starts. Returns rate, p50, p99, mean.
 */
async function measure(makeWorker, concurrency, count, cpuPid = null, cpuRootRole = 'daemon') {
  const workers = await Promise.all(Array.from({ length: concurrency }, (_, i) => makeWorker(i)));
  const latencies = [];
  let started = 0;
  const limitAt = performance.now() + opts.timeLimitS * 1000;
  let timedOut = false;
  const cpu0 = cpuPid !== null ? treeCpu(cpuPid, cpuRootRole) : null;
  const self0 = selfCpuMs();
  const t0 = performance.now();
  await Promise.all(
    workers.map(async (w) => {
      while (started < count) {
        if (performance.now() > limitAt || Date.now() > runDeadline) {
          timedOut = true;
          return;
        }
        started++;
        const s = performance.now();
        await w.op();
        latencies.push(performance.now() - s);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const selfCpu = selfCpuMs() - self0;
  const cpu1 = cpuPid !== null ? treeCpu(cpuPid, cpuRootRole) : null;
  const cpuBy = cpu1 === null ? null : Object.fromEntries(Object.keys(cpu1).map((k) => [k, cpu1[k] - cpu0[k]]));
  const cpu = cpuBy === null ? null : Object.values(cpuBy).reduce((a, b) => a + b, 0);
  await Promise.all(workers.map((w) => w.close?.()));
  latencies.sort((a, b) => a - b);
  return {
    n: latencies.length,
    rate: latencies.length / seconds,
    p50: pct(latencies, 0.5),
    p99: pct(latencies, 0.99),
    mean: mean(latencies),
    timedOut,
    serverCpuMsPerOp: cpu === null ? null : cpu / latencies.length,
    serverCpuByRole:
      cpuBy === null ? null : Object.fromEntries(Object.entries(cpuBy).map(([k, v]) => [k, v / latencies.length])),
    benchCpuMsPerOp: selfCpu / latencies.length,
  };
}

function selfCpuMs() {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK;
}

function rawSpawn() {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', 'true']);
    child.stdout.resume();
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`sh exited ${code}`))));
  });
}
const rawWorker = () => ({ op: rawSpawn });

let rcptSerial = 0;
/** An SMTP session that answers one RCPT per op() with a fresh recipient `${local}+rK@DOMAIN`. */
function smtpWorker(port, local) {
  return async () => {
    const c = await SmtpClient.connect(port);
    const expect = (r, code, what) => {
      if (r.code !== code) throw new Error(`${what}: ${r.last}`);
    };
    expect(await c.greeting(), 220, 'greeting');
    expect(await c.cmd('EHLO client.bench.example'), 250, 'EHLO');
    expect(await c.cmd('MAIL FROM:<sender@remote.example>'), 250, 'MAIL');
    let inTx = 0;
    return {
      async op() {
        if (inTx === SESSION_RCPTS) {
          expect(await c.cmd('RSET'), 250, 'RSET');
          expect(await c.cmd('MAIL FROM:<sender@remote.example>'), 250, 'MAIL');
          inTx = 0;
        }
        inTx++;
        const to = `${local}+r${++rcptSerial}@${DOMAIN}`;
        const s = performance.now();
        const r = await c.cmd(`RCPT TO:<${to}>`);
        const ms = performance.now() - s;
        if (r.code !== 250) throw new Error(`RCPT ${to}: ${r.last}`);
        return ms;
      },
      async close() {
        try {
          await c.cmd('QUIT');
        } catch {
          /* closed already */
        }
        c.close();
        await c.waitClosed(2000);
      },
    };
  };
}

/** measure() for SMTP workers: time only the RCPT round trip (not the RSET/MAIL every 100). */
async function measureSmtp(port, local, concurrency, count, cpuPid) {
  const make = smtpWorker(port, local);
  const rcptLat = [];
  const r = await measure(
    async (i) => {
      const w = await make(i);
      return { op: async () => rcptLat.push(await w.op()), close: w.close };
    },
    concurrency,
    count,
    cpuPid,
  );
  rcptLat.sort((a, b) => a - b);
  return { ...r, p50: pct(rcptLat, 0.5), p99: pct(rcptLat, 0.99), mean: mean(rcptLat) };
}

// ---------------------------------------------------------------------------------------------
// set-up and clean-up

const users = [];
const dirs = [];
let daemon = null;
let runner = null;
let spawner = null;
let spawnerBefore = null;
let spawnerPerl = null;
let cleaned = false;

function cleanupSync() {
  if (cleaned) return;
  cleaned = true;
  try {
    spawner?.close();
    spawnerBefore?.close();
    spawnerPerl?.close();
  } catch {
    /* */
  }
  if (daemon && daemon.proc.exitCode === null && daemon.proc.signalCode === null) {
    try {
      daemon.proc.kill('SIGKILL');
    } catch {
      /* */
    }
    rmSync(daemon.dir, { recursive: true, force: true });
  }
  for (const u of users) removeUser(u);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

async function cleanup() {
  try {
    await runner?.close();
  } catch {
    /* */
  }
  runner = null;
  try {
    await daemon?.stop();
  } catch {
    /* */
  }
  daemon = null;
  cleanupSync();
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`bench/policy: ${sig}, cleaning up`);
    cleanupSync();
    process.exit(130);
  });
}
process.on('exit', cleanupSync);

function machine() {
  const cpuModel = cpus()[0]?.model ?? 'unknown';
  return {
    nproc: Number(execFileSync('nproc').toString()),
    cpuModel,
    node: process.version,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    load: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
  };
}

// ---------------------------------------------------------------------------------------------
// the run

const out = { options: opts, machineStart: machine(), table: [], profile: null, machineEnd: null };
try {
  console.log(
    `machine: nproc ${out.machineStart.nproc}, ${out.machineStart.cpuModel}, node ${out.machineStart.node}, kernel ${out.machineStart.kernel}, load ${out.machineStart.load}`,
  );
  const withScript = createUser('pol');
  users.push(withScript);
  const noScript = createUser('nos');
  users.push(noScript);
  const aveng = createUser('avg');
  users.push(aveng);
  writeScript(withScript, 'rcpt', 'accept');
  writeScript(withScript, 'rcpt+default', 'accept');
  const etc = mkdtempSync(join(tmpdir(), 'asmtpd-bench-policy-'));
  dirs.push(etc);
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  const line = (u) => `${u.name}:x:${u.uid}:${u.gid}::${u.home}:/bin/sh\n`;
  writeFileSync(passwd, users.map(line).join(''));
  chmodSync(passwd, 0o644);

  daemon = await startDaemon({
    conf: [
      `LocalDomain ${DOMAIN}`,
      `PasswdFile ${passwd}`,
      'Separator +',
      `AvengerUser ${aveng.name}`,
      'AvengerTimeout 10s',
      'MaxClientsPerIP 50',
    ].join('\n'),
  });
  const port = daemon.port;
  const daemonPid = daemon.proc.pid;
  console.log(`daemon pid ${daemonPid} on 127.0.0.1:${port}; users ${users.map((u) => u.name).join(', ')}`);

  const cases = [
    { name: 'raw', label: "spawn('/bin/sh -c true')", run: (c, n) => measure(rawWorker, c, n) },
    {
      name: 'script',
      label: 'RCPT, rcpt script `accept`',
      run: (c, n) => measureSmtp(port, withScript.name, c, n, daemonPid),
    },
    { name: 'noscript', label: 'RCPT, no script', run: (c, n) => measureSmtp(port, noScript.name, c, n, daemonPid) },
    {
      name: 'floor',
      label: 'RCPT postmaster (no runner)',
      run: (c, n) => measureSmtp(port, 'postmaster', c, n, daemonPid),
    },
  ];

  // warm-up (JIT in daemon, runner and here; spawners started), not measured
  for (const k of cases) await k.run(2, 200);
  const decisionLog = () => daemon.logs.filter((l) => l.event === 'rcpt.decision');
  const sample = decisionLog().find((l) => String(l.to).startsWith(withScript.name));
  const sampleNone = decisionLog().find((l) => String(l.to).startsWith(noScript.name));
  console.log(`sample decisions:\n  ${JSON.stringify(sample)}\n  ${JSON.stringify(sampleNone)}`);
  if (sample?.outcome !== 'accept' || sample.scripts?.[0]?.outcome !== 'accept')
    throw new Error('the accept script did not decide');
  daemon.logs.length = 0;

  for (const c of opts.concurrency) {
    const rounds = Object.fromEntries(cases.map((k) => [k.name, []]));
    const daemonMs = { script: [], noscript: [] };
    for (let r = 0; r < opts.rounds; r++) {
      if (Date.now() > runDeadline) break;
      // rotating order: each case runs first in some round (this machine's speed drifts)
      for (const k of rotate(cases, r + c)) {
        daemon.logs.length = 0;
        rounds[k.name].push(await k.run(c, opts.count));
        // the daemon's own view: time from RCPT to decision, and per runner call (ms, integer)
        if (k.name in daemonMs)
          for (const l of decisionLog())
            daemonMs[k.name].push({ total: l.ms, runs: (l.scripts ?? []).map((s) => s.ms) });
      }
    }
    daemon.logs.length = 0;
    const agg = (name) => {
      const rs = rounds[name];
      return {
        rounds: rs.length,
        n: rs.reduce((a, x) => a + x.n, 0),
        rate: median(rs.map((x) => x.rate)),
        p50: median(rs.map((x) => x.p50)),
        p99: median(rs.map((x) => x.p99)),
        mean: median(rs.map((x) => x.mean)),
        timedOut: rs.some((x) => x.timedOut),
        serverCpuMsPerOp: rs[0].serverCpuMsPerOp === null ? null : median(rs.map((x) => x.serverCpuMsPerOp)),
        benchCpuMsPerOp: median(rs.map((x) => x.benchCpuMsPerOp)),
        allRates: rs.map((x) => Math.round(x.rate)),
        serverCpuByRole: rs[0].serverCpuByRole
          ? Object.fromEntries(
              Object.keys(rs[0].serverCpuByRole).map((k) => [k, median(rs.map((x) => x.serverCpuByRole[k]))]),
            )
          : null,
      };
    };
    const row = {
      concurrency: c,
      raw: agg('raw'),
      script: agg('script'),
      noscript: agg('noscript'),
      floor: agg('floor'),
    };
    row.ratio = row.script.rate / row.raw.rate;
    // the same per round (raw and script run back to back): steadier when background load drifts
    row.roundRatios = rounds.script.map((x, i) => x.rate / rounds.raw[i].rate);
    row.addedP50 = row.script.p50 - row.noscript.p50;
    row.addedP99 = row.script.p99 - row.noscript.p99;
    row.addedP50OverFloor = row.script.p50 - row.floor.p50;
    for (const k of ['script', 'noscript']) {
      const d = daemonMs[k];
      row[k].daemonMeanMs = d.length ? mean(d.map((x) => x.total)) : null;
      row[k].runnerCallsPerRcpt = d.length ? mean(d.map((x) => x.runs.length)) : null;
      row[k].runnerCallMeanMs = d.length ? mean(d.flatMap((x) => x.runs)) : null;
    }
    out.table.push(row);
    console.log(
      `concurrency ${c} done: script ${row.script.rate.toFixed(0)}/s vs raw ${row.raw.rate.toFixed(0)}/s = ${(row.ratio * 100).toFixed(0)} % (rounds: raw ${row.raw.allRates}, script ${row.script.allRates}; per-round ratios ${row.roundRatios.map((x) => `${(x * 100).toFixed(0)} %`).join(', ')}), load ${loadavg()[0].toFixed(2)}`,
    );
  }

  // ------------------------------------------------------------------------------------------
  // profile at concurrency 1: where the time of one decision goes
  if (opts.profileCount > 0 && Date.now() < runDeadline) {
    const n = opts.profileCount;
    const env = {
      SENDER: 'sender@remote.example',
      RECIPIENT: `${withScript.name}@${DOMAIN}`,
      USER: withScript.name,
      HOME: withScript.home,
      PATH: SAFE_PATH,
    };
    const other = (file) =>
      file.endsWith('.pl') ? new Spawner(DEFAULT_LIMITS, '/usr/bin/perl', [file]) : new Spawner(DEFAULT_LIMITS, file);
    spawner = new Spawner(DEFAULT_LIMITS);
    spawner.warmUp();
    spawnerPerl = other(join(dirname(fileURLToPath(import.meta.url)), 'spawner-perl.pl'));
    spawnerPerl.warmUp();
    spawnerBefore = opts.spawnerBefore ? other(opts.spawnerBefore) : null;
    spawnerBefore?.warmUp();
    const dir = join(withScript.home, '.avenger');
    const candidates = [
      { name: 'rcpt+rX', extraEnv: [] },
      { name: 'rcpt+default', extraEnv: ['DEFAULT=rX'] },
    ];
    const spawnerRun =
      (args, withPrelude, via = spawner) =>
      async () => {
        const o = await via.run({
          file: '/bin/sh',
          args,
          env,
          cwd: withScript.home,
          decisionChannel: withPrelude,
          ...(withPrelude ? { lookup: { asUser: true, dir, candidates } } : {}),
          timeoutMs: 10_000,
          maxOutputBytes: 65536,
          uid: withScript.uid,
          gid: withScript.gid,
          groups: [withScript.gid],
        });
        if (o.kind !== 'exited' || o.exitCode !== 0) throw new Error(`spawner: ${JSON.stringify(o)}`);
        if (withPrelude && !o.decisionBytes.toString().includes('accept')) throw new Error('prelude: no decision');
      };
    runner = await startRunner({
      settings: {
        etcDir: etc,
        avengerUser: aveng.name,
        passwdFile: passwd,
        spoolDir: null,
        daemonUid: null,
        deniedUids: [],
        envNames: ['SENDER', 'RECIPIENT'],
        fixedEnv: {},
        toolsDir: null,
        limits: DEFAULT_LIMITS,
      },
    });
    const request = {
      kind: 'rcpt',
      scope: 'user',
      account: withScript.name,
      candidates: ['rcpt+rX', 'rcpt+default'],
      candidateEnv: { 'rcpt+default': { DEFAULT: 'rX' } },
      env: { SENDER: env.SENDER, RECIPIENT: env.RECIPIENT },
      timeoutMs: 10_000,
    };
    const runnerInner = [];
    const runnerOp = async () => {
      const r = await runner.run(request);
      if (r.kind !== 'ran' || r.decision?.verb !== 'accept') throw new Error(`runner: ${JSON.stringify(r)}`);
      runnerInner.push(r.durationMs);
    };
    const stages = [
      { name: 'node spawn sh -c true', run: () => measure(rawWorker, 1, n) },
      {
        name: 'spawner, sh -c true as the user',
        run: () => measure(() => ({ op: spawnerRun(['-c', 'true'], false) }), 1, n, spawner.child.pid, 'spawner'),
      },
      {
        name: 'spawner, prelude + accept script',
        run: () => measure(() => ({ op: spawnerRun(['-c', SHELL_PRELUDE], true) }), 1, n, spawner.child.pid, 'spawner'),
      },
      {
        name: 'perl spawner (before issue 21), prelude + accept script',
        run: () =>
          measure(
            () => ({ op: spawnerRun(['-c', SHELL_PRELUDE], true, spawnerPerl) }),
            1,
            n,
            spawnerPerl.child.pid,
            'spawner',
          ),
      },
      ...(spawnerBefore
        ? [
            {
              name: 'spawner BEFORE, prelude + accept script',
              run: () =>
                measure(
                  () => ({ op: spawnerRun(['-c', SHELL_PRELUDE], true, spawnerBefore) }),
                  1,
                  n,
                  spawnerBefore.child.pid,
                  'spawner',
                ),
            },
          ]
        : []),
      { name: 'runner (startRunner().run)', run: () => measure(() => ({ op: runnerOp }), 1, n, runner.pid, 'runner') },
      { name: 'RCPT with script (daemon)', run: () => measureSmtp(port, withScript.name, 1, n, daemonPid) },
      { name: 'RCPT postmaster (no runner)', run: () => measureSmtp(port, 'postmaster', 1, n, daemonPid) },
    ];
    await measure(() => ({ op: spawnerRun(['-c', 'true'], false) }), 1, 100);
    await measure(() => ({ op: runnerOp }), 1, 100);
    await measure(() => ({ op: spawnerRun(['-c', 'true'], false, spawnerPerl) }), 1, 100);
    if (spawnerBefore) await measure(() => ({ op: spawnerRun(['-c', 'true'], false, spawnerBefore) }), 1, 100);
    runnerInner.length = 0;
    const results = stages.map((s) => ({ name: s.name, rounds: [] }));
    for (let r = 0; r < opts.rounds && Date.now() < runDeadline; r++) {
      for (const i of rotate([...stages.keys()], r)) results[i].rounds.push(await stages[i].run());
    }
    out.profile = results.map((x) => ({
      name: x.name,
      rate: median(x.rounds.map((y) => y.rate)),
      p50: median(x.rounds.map((y) => y.p50)),
      p99: median(x.rounds.map((y) => y.p99)),
      mean: median(x.rounds.map((y) => y.mean)),
      serverCpuMsPerOp: x.rounds[0]?.serverCpuMsPerOp === null ? null : median(x.rounds.map((y) => y.serverCpuMsPerOp)),
      benchCpuMsPerOp: median(x.rounds.map((y) => y.benchCpuMsPerOp)),
      serverCpuByRole: x.rounds[0]?.serverCpuByRole
        ? Object.fromEntries(
            Object.keys(x.rounds[0].serverCpuByRole).map((k) => [k, median(x.rounds.map((y) => y.serverCpuByRole[k]))]),
          )
        : null,
    }));
    runnerInner.sort((a, b) => a - b);
    out.profileRunnerSpawnerMs = { p50: pct(runnerInner, 0.5), mean: mean(runnerInner) };
  }
  out.machineEnd = machine();

  // ------------------------------------------------------------------------------------------
  // report
  const f = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? '' : x.toFixed(d));
  console.log(`\nRCPT decisions/s (median of ${opts.rounds} rounds of ${opts.count}); p50/p99 per RCPT round trip, ms`);
  console.log(
    '| conc | raw spawn/s | p50 | p99 | script RCPT/s | p50 | p99 | of raw | no-script RCPT/s | p50 | p99 | floor RCPT/s | p50 | p99 | script adds p50 / p99 |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of out.table) {
    console.log(
      `| ${r.concurrency} | ${f(r.raw.rate, 0)} | ${f(r.raw.p50)} | ${f(r.raw.p99)} | ${f(r.script.rate, 0)} | ${f(r.script.p50)} | ${f(r.script.p99)} | ${f(r.ratio * 100, 0)} % ${r.concurrency === 1 ? (r.ratio >= 0.9 ? '(aim 0.9 met)' : '(aim 0.9 NOT met)') : ''} | ${f(r.noscript.rate, 0)} | ${f(r.noscript.p50)} | ${f(r.noscript.p99)} | ${f(r.floor.rate, 0)} | ${f(r.floor.p50)} | ${f(r.floor.p99)} | ${f(r.addedP50)} / ${f(r.addedP99)} |`,
    );
  }
  console.log(
    '\nserver CPU (daemon + runner + spawner + scripts) per RCPT, ms; bench process CPU per op, ms; daemon-logged decision ms (mean) and runner calls per RCPT',
  );
  for (const r of out.table) {
    const roles = (x) =>
      x
        ? Object.entries(x)
            .filter(([, v]) => v > 0)
            .map(([k, v]) => `${k} ${f(v)}`)
            .join(', ')
        : '';
    console.log(
      `  conc ${r.concurrency}: script by process: ${roles(r.script.serverCpuByRole)}; no-script: ${roles(r.noscript.serverCpuByRole)}`,
    );
    console.log(
      `  conc ${r.concurrency}: script ${f(r.script.serverCpuMsPerOp)} (bench ${f(r.script.benchCpuMsPerOp)}), no-script ${f(r.noscript.serverCpuMsPerOp)}, floor ${f(r.floor.serverCpuMsPerOp)}; raw spawn: bench+children ${f(r.raw.benchCpuMsPerOp)} (raw CPU / script CPU ${f(r.raw.benchCpuMsPerOp / r.script.serverCpuMsPerOp)}: the rate ratio a CPU-bound machine would give); daemon ms script ${f(r.script.daemonMeanMs)} (${f(r.script.runnerCallsPerRcpt, 1)} runner calls, ${f(r.script.runnerCallMeanMs)} each), no-script ${f(r.noscript.daemonMeanMs)} (${f(r.noscript.runnerCallsPerRcpt, 1)} calls, ${f(r.noscript.runnerCallMeanMs)} each)`,
    );
  }
  if (out.profile) {
    console.log('\nprofile, concurrency 1 (median of rounds):');
    console.log(
      '| stage | ops/s | p50 ms | p99 ms | mean ms | CPU ms/op (server tree; bench process incl. its reaped children) |',
    );
    console.log('|---|---|---|---|---|---|');
    for (const p of out.profile) {
      const roles = p.serverCpuByRole
        ? Object.entries(p.serverCpuByRole)
            .filter(([, v]) => v > 0)
            .map(([k, v]) => `${k} ${f(v)}`)
            .join(', ')
        : '';
      console.log(
        `| ${p.name} | ${f(p.rate, 0)} | ${f(p.p50)} | ${f(p.p99)} | ${f(p.mean)} | ${f(p.serverCpuMsPerOp)} ${roles ? `(${roles})` : ''}; bench ${f(p.benchCpuMsPerOp)} |`,
      );
    }
    console.log(
      `runner's own timing of its spawner call (durationMs): p50 ${f(out.profileRunnerSpawnerMs.p50)}, mean ${f(out.profileRunnerSpawnerMs.mean)}`,
    );
  }
  console.log(`\nmachine at end: load ${out.machineEnd.load}`);
  if (opts.json) writeFileSync(opts.json, JSON.stringify(out, null, 2));
} catch (err) {
  console.error(`bench/policy failed: ${err?.stack ?? err}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
