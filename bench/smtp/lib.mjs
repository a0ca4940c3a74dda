// Shared by the benchmarks under bench/ (smtp/run.mjs, tls/run.mjs, fair/run.mjs): the Postfix
// harness, CPU accounting from /proc, smtp-sink, the smtp-source load, a free port, waiting for a
// greeting, and what the machine is.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
export const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

/** The path of a command, or an error naming the package that has it. */
export function need(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} not found: apt-get install postfix (see .ci/run)`);
  return r.stdout.trim();
}

/** test/support/postfix.ts (startPostfix, freePort): the built one, or just it compiled now. */
export async function loadHarness() {
  const ts = join(root, 'test', 'support', 'postfix.ts');
  const built = join(root, 'test', 'dist', 'support', 'postfix.js');
  if (existsSync(built) && statSync(built).mtimeMs >= statSync(ts).mtimeMs) return import(pathToFileURL(built).href);
  // Compile just the harness (it only imports node builtins), so the bench does
  // not depend on the whole workspace building.
  const out = mkdtempSync(join(tmpdir(), 'bench-harness-'));
  execFileSync(
    join(root, 'node_modules', '.bin', 'tsc'),
    [
      ts,
      '--outDir',
      out,
      '--module',
      'NodeNext',
      '--moduleResolution',
      'NodeNext',
      '--target',
      'ES2022',
      '--types',
      'node',
      '--skipLibCheck',
      '--strict',
    ],
    { stdio: 'inherit' },
  );
  return import(pathToFileURL(join(out, 'postfix.js')).href);
}

// ---------------------------------------------------------------- CPU accounting
export const CLK_TCK = 100;
function procTimes(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // fields after ')' start at index 0 = state(3); utime=14 stime=15 cutime=16 cstime=17 (1-based)
    return { ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}

/** CPU seconds used so far by pid, its reaped children and its live descendants. */
export function treeCpu(pid) {
  const me = procTimes(pid);
  if (!me) return 0;
  let ticks = me.self + me.children;
  const all = [];
  for (const name of readdirSafe('/proc')) if (/^\d+$/.test(name)) all.push(Number(name));
  const ppid = new Map();
  for (const p of all) {
    const t = procTimes(p);
    if (t) ppid.set(p, t);
  }
  const todo = [pid];
  while (todo.length) {
    const cur = todo.pop();
    for (const [p, t] of ppid) {
      if (t.ppid === cur) {
        ticks += t.self; // its own reaped children are in its .children, but Postfix daemons fork none
        todo.push(p);
      }
    }
  }
  return ticks / CLK_TCK;
}

function readdirSafe(d) {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

/** Jiffies of all cores since boot: idle and total (/proc/stat). */
export function cpuBusy() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  return { idle, total: f.reduce((a, b) => a + b, 0) };
}

/** How busy the machine is over `ms`, in percent of all cores. */
export async function busyPercent(ms) {
  const a = cpuBusy();
  await sleep(ms);
  const b = cpuBusy();
  return 100 * (1 - (b.idle - a.idle) / Math.max(1, b.total - a.total));
}

// ---------------------------------------------------------------- SMTP peers
/** Resolves once 127.0.0.1:port greets with 220 (retrying while nothing listens). */
export function waitGreeting(port, timeoutMs, proc) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (proc && proc.exitCode !== null) return reject(new Error(`exited with ${proc.exitCode} before greeting`));
      const s = connect({ host: '127.0.0.1', port });
      s.once('data', (d) => {
        s.end('QUIT\r\n');
        if (String(d).startsWith('220')) resolve();
        else reject(new Error(`greeting: ${String(d).trim()}`));
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`no greeting on port ${port} within ${timeoutMs} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

/** Postfix's smtp-sink on 127.0.0.1:port, counting messages (`count()`). */
export async function startSink(port) {
  // -u postfix: required as root. backlog 1024. -c: running counter "sess=N quit=N mesg=N\r" on stdout.
  const p = spawn(need('smtp-sink'), ['-u', 'postfix', '-c', `127.0.0.1:${port}`, '1024'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  let err = '';
  p.stdout.on('data', (d) => {
    tail = (tail + d.toString()).slice(-200);
  });
  p.stderr.on('data', (d) => (err += d.toString()));
  await waitGreeting(port, 5000, p).catch((e) => {
    throw new Error(`smtp-sink: ${e.message}: ${err}`);
  });
  const count = () => {
    const m = [...tail.matchAll(/mesg=(\d+)/g)].pop();
    return m ? Number(m[1]) : 0;
  };
  return { port, pid: p.pid, count, stop: () => p.kill('SIGTERM') };
}

/** Until the sink has counted `expected` messages. */
export async function waitSink(sink, expected, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (sink.count() < expected) {
    if (Date.now() > deadline) throw new Error(`sink counted ${sink.count()} of ${expected}`);
    await sleep(5);
  }
}

/** What the figures were measured on. */
export function machine() {
  const cpu = cpus();
  const sh = (c) => {
    try {
      return execFileSync('sh', ['-c', c], { encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  };
  return {
    cpu: `${cpu[0]?.model ?? '?'} x${cpu.length}`,
    memGiB: Math.round(Number(sh("awk '/MemTotal/{print $2}' /proc/meminfo")) / 1048576),
    kernel: sh('uname -r'),
    os: sh('. /etc/os-release; echo $PRETTY_NAME'),
    node: process.version,
    postfix: sh('postconf -dh mail_version'),
    asmtpdCommit:
      sh(`git -C ${root} rev-parse --short HEAD`) +
      (sh(`git -C ${root} status --porcelain -- packages/asmtpd | head -1`) ? '+dirty' : ''),
    tmpdirFs: sh(`df -T ${tmpdir()} | awk 'NR==2{print $2}'`),
  };
}

/**
 * Postfix's smtp-source against 127.0.0.1:port (`sessions` parallel, `count` messages of `size`
 * bytes; `reuse`: one connection per session, -d); resolves with its wall clock in ms, rejects
 * on a non-zero exit (its stderr in the error) or after timeoutMs (killed).
 */
export function smtpSource(port, { sessions, count, size, from, rcpt, helo, reuse = false, timeoutMs = 600_000 }) {
  const args = [
    '-4',
    '-s',
    String(sessions),
    '-m',
    String(count),
    '-l',
    String(size),
    '-f',
    from,
    '-t',
    rcpt,
    '-M',
    helo,
  ];
  if (reuse) args.unshift('-d');
  args.push(`127.0.0.1:${port}`);
  const bin = need('smtp-source');
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`smtp-source exited ${code ?? sig}: ${err.trim().slice(0, 500)}`));
      else resolve(performance.now() - t0);
    });
  });
}

/** A TCP port free on 127.0.0.1 now (the kernel's pick). */
export function freeLoopbackPort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
