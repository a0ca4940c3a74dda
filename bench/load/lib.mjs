// Shared pieces of the load benchmarks (issue 7, item 5): bench/load/idle.mjs, drip.mjs, soak.mjs.
//
//   parseOptions(defaults)            --name value options (numbers stay numbers), --help prints the header
//   ensureNofile(min)                 re-exec this script through `prlimit --nofile=N:N` when
//                                     RLIMIT_NOFILE is below min (root may raise its hard limit)
//   startQuietDns()                   bench/smtp/dns-child.mjs in a child process, no records
//                                     (every lookup NXDOMAIN), so the daemon never asks a public resolver
//   startSmtpSink()                   Postfix's smtp-sink (the RelayHost), counting messages
//   startAsmtpd({conf, name})         `prlimit --nofile=65536:65536 node asmtpd -d -f CONF`, log lines
//                                     into $TMPDIR/bench-load-NAME.log, a memory preload (below)
//   memory(pid)                       VmRSS of the daemon and of its process tree (runner, perl
//                                     spawner) from /proc, plus open fds and CPU ticks
//   smtp helpers: connectRaw, Conn (reply reader), transaction()
//   percentile(), mib(), linearTrend()
//
// The memory preload (NODE_OPTIONS=--require) makes the daemon report process.memoryUsage() on
// SIGUSR2 (no GC) and after a full GC on SIGWINCH, as one JSON line appended to a file: asmtpd
// itself exposes no heap figures.
import { execFileSync, fork, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..', '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const mib = (bytes) => bytes / 1048576;
export const fmt = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : String(n));

const t0 = Date.now();
export const log = (s) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${s}`);

export function parseOptions(defaults, usage) {
  const opts = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (k === 'help' || k === 'h') {
      console.log(usage);
      process.exit(0);
    }
    if (!(k in opts)) {
      console.error(`unknown option ${argv[i]}\n${usage}`);
      process.exit(2);
    }
    opts[k] = typeof defaults[k] === 'number' ? Number(argv[++i]) : argv[++i];
  }
  return opts;
}

export function requireRoot() {
  if (process.getuid?.() !== 0) {
    console.error(
      'run as root: the daemon is started as in production (it binds, starts its runner and drops to AvengerUser)',
    );
    process.exit(2);
  }
  const bin = join(root, 'packages', 'asmtpd', 'dist', 'cli', 'main.js');
  if (!existsSync(bin)) {
    console.error(`${bin} missing: run pnpm build first`);
    process.exit(2);
  }
}

export function nofileLimit(pid = 'self') {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m
    ? { soft: m[1] === 'unlimited' ? Infinity : Number(m[1]), hard: m[2] === 'unlimited' ? Infinity : Number(m[2]) }
    : { soft: 0, hard: 0 };
}

/**
 * Re-run this script with RLIMIT_NOFILE raised when it is below min (returns only when it is high
 * enough). Raising the hard limit needs CAP_SYS_RESOURCE; without it (some containers) the hard
 * limit is the ceiling, and Node already starts with its soft limit raised to the hard one.
 */
export function ensureNofile(min) {
  const { soft, hard } = nofileLimit();
  if (soft >= min) return;
  const n = daemonNofile(Math.max(65536, min));
  if (process.env.BENCH_LOAD_REEXEC || n < min) {
    console.error(
      `RLIMIT_NOFILE is ${soft} (hard ${hard}); need ${min}. Raise it (ulimit -n, or CAP_SYS_RESOURCE) or use fewer connections.`,
    );
    process.exit(2);
  }
  const r = spawnSync(
    'prlimit',
    [`--nofile=${n}:${n}`, '--', process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    {
      stdio: 'inherit',
      env: { ...process.env, BENCH_LOAD_REEXEC: '1' },
    },
  );
  process.exit(r.status ?? 1);
}

/** The RLIMIT_NOFILE to give the daemon: `want`, or this process's hard limit if we may not raise it. */
export function daemonNofile(want) {
  const probe = spawnSync('prlimit', [`--nofile=${want}:${want}`, '--', 'true']);
  return probe.status === 0 ? want : nofileLimit().hard;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Loopback DNS with no records, in its own process (bench/smtp/dns-child.mjs). */
export async function startQuietDns() {
  const built = join(root, 'test', 'dist', 'support', 'dns-server.js');
  if (!existsSync(built)) throw new Error(`${built} missing: run pnpm build`);
  const child = fork(
    join(root, 'bench', 'smtp', 'dns-child.mjs'),
    [JSON.stringify([{ name: 'load', zone: 'empty' }])],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
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
      w(m.stats.load);
    }
  });
  return {
    pid: child.pid,
    udp: addrs.load.udp,
    /** queries since the previous call (which clears the server's list, so it does not grow) */
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

/** Postfix's smtp-sink on 127.0.0.1 (as in bench/smtp): accepts everything, counts messages. */
export async function startSmtpSink() {
  const bin = ['/usr/sbin/smtp-sink', '/usr/lib/postfix/sbin/smtp-sink'].find((p) => existsSync(p));
  if (!bin) throw new Error("smtp-sink not found: install Debian's postfix package (apt-get install postfix)");
  const port = await freePort();
  // -u postfix: required as root; -c: running counter "sess=N quit=N mesg=N\r" on stdout; backlog 1024
  const p = spawn(bin, ['-u', 'postfix', '-c', `127.0.0.1:${port}`, '1024'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  let err = '';
  p.stdout.on('data', (d) => (tail = (tail + d.toString()).slice(-200)));
  p.stderr.on('data', (d) => (err += d.toString()));
  await waitBanner(port, 5000).catch((e) => {
    p.kill('SIGKILL');
    throw new Error(`smtp-sink: ${e.message}: ${err}`);
  });
  return {
    port,
    pid: p.pid,
    count: () => {
      const m = [...tail.matchAll(/mesg=(\d+)/g)].pop();
      return m ? Number(m[1]) : 0;
    },
    stop: () => p.kill('SIGTERM'),
  };
}

async function waitBanner(port, timeoutMs, proc = null) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`exited with ${proc.exitCode}`);
    try {
      const c = await connectRaw(port);
      const r = await c.reply(2000);
      c.destroy();
      if (r.code === 220) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`no 220 on port ${port} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

const MEMORY_PRELOAD = `
// bench/load: memory figures of the daemon on request (loaded with NODE_OPTIONS=--require).
// SIGUSR2: process.memoryUsage() as it is; SIGWINCH: after a full GC. One JSON line appended to
// the file named by BENCH_LOAD_MEMFILE.
const fs = require('node:fs');
const file = process.env.BENCH_LOAD_MEMFILE;
if (file && (process.argv[1] || '').endsWith('/bin/asmtpd')) {
  const v8 = require('node:v8');
  const vm = require('node:vm');
  let gc = null;
  const report = (kind, id) => {
    const m = process.memoryUsage();
    fs.appendFileSync(file, JSON.stringify({ kind, id, at: Date.now(), pid: process.pid, rss: m.rss, heapUsed: m.heapUsed,
      heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }) + '\\n');
  };
  process.on('SIGUSR2', () => report('raw'));
  process.on('SIGWINCH', () => {
    if (!gc) { v8.setFlagsFromString('--expose_gc'); gc = vm.runInNewContext('gc'); }
    gc(); gc();
    setTimeout(() => {
      try { gc({ type: 'major', execution: 'sync', flavor: 'last-resort' }); } catch { gc(); }
      report('gc');
    }, 200);
  });
}
`;

/**
 * The daemon as in production: `asmtpd -d -f CONF` started as root (it drops to AvengerUser
 * itself), through prlimit so it may hold 65,536 descriptors. `conf`: config lines added to
 * the base (port, BindAddr 127.0.0.1, DBDir, Hostname, quiet DNS, SMTPCB no, SynFP no).
 */
export async function startAsmtpd({ conf = [], name = 'asmtpd', dns, nofile = 65536 }) {
  const main = join(root, 'packages', 'asmtpd', 'bin', 'asmtpd');
  const dir = mkdtempSync(join(tmpdir(), 'bench-load-'));
  chmodSync(dir, 0o755); // the SMTP process drops root and must still reach DBDir and the preload
  const port = await freePort();
  const confPath = join(dir, 'asmtpd.conf');
  writeFileSync(
    confPath,
    [
      `SMTPPort ${port}`,
      'BindAddr 127.0.0.1',
      'Hostname load.asmtpd.test',
      `DBDir ${join(dir, 'db')}`,
      `EtcDir ${dir}`,
      'DNSResolver system',
      `DNSServer ${dns.udp}`,
      'SMTPCB no',
      'SynFP no',
      ...conf,
      '',
    ].join('\n'),
  );
  const preload = join(dir, 'memory-preload.cjs');
  writeFileSync(preload, MEMORY_PRELOAD);
  chmodSync(preload, 0o644);
  const memFile = join(dir, 'memory.jsonl');
  writeFileSync(memFile, '');
  chmodSync(memFile, 0o666); // appended to by the daemon after it became AvengerUser
  const logFile = join(tmpdir(), `bench-load-${name}.log`); // kept after the run
  const logFd = openSync(logFile, 'w');
  const limit = daemonNofile(nofile);
  const p = spawn('prlimit', [`--nofile=${limit}:${limit}`, '--', process.execPath, main, '-d', '-f', confPath], {
    stdio: ['ignore', 'ignore', logFd],
    env: { ...process.env, NODE_ENV: 'production', NODE_OPTIONS: `--require ${preload}`, BENCH_LOAD_MEMFILE: memFile },
  });
  closeSync(logFd);
  const tail = () => readFileSync(logFile, 'utf8').slice(-3000);
  try {
    await waitBanner(port, 20_000, p);
  } catch (e) {
    p.kill('SIGKILL');
    throw new Error(`asmtpd did not start: ${e.message}\n${tail()}`);
  }
  /** the preload's report (kind 'raw' without GC, 'gc' after a full GC) */
  const heap = async (kind = 'raw') => {
    const before = readFileSync(memFile, 'utf8').length;
    process.kill(p.pid, kind === 'gc' ? 'SIGWINCH' : 'SIGUSR2');
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      await sleep(kind === 'gc' ? 100 : 20);
      const text = readFileSync(memFile, 'utf8').slice(before);
      const line = text.split('\n').find((l) => l.includes(`"kind":"${kind}"`));
      if (line) return JSON.parse(line);
    }
    return null;
  };
  return {
    name,
    port,
    pid: p.pid,
    dir,
    logFile,
    confPath,
    heap,
    alive: () => p.exitCode === null && p.signalCode === null,
    tail,
    stop: async () => {
      if (p.exitCode === null) p.kill('SIGTERM');
      await Promise.race([new Promise((r) => (p.exitCode !== null ? r() : p.once('exit', r))), sleep(15_000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      return { code: p.exitCode, signal: p.signalCode };
    },
  };
}

// ------------------------------------------------------------------------ /proc
function statusField(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function childrenOf(pid) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The pid and every descendant, with name, VmRSS (bytes), CPU ticks (utime+stime). */
export function processTree(pid) {
  const rows = [];
  const visit = (p) => {
    let name = '?';
    let ticks = 0;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks = Number(f[11]) + Number(f[12]);
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (name === 'spawner') name = 'spawner';
      else if (name === 'perl') name = cmd.some((a) => a.includes('syn-capture')) ? 'syn capture' : 'perl';
      else if (cmd.some((a) => a.includes('avenger-runner'))) name = 'runner';
      else if (cmd.some((a) => a.endsWith('/asmtpd'))) name = 'asmtpd';
    } catch {
      return;
    }
    rows.push({ pid: p, name, rss: statusField(p, 'VmRSS') * 1024, ticks });
    for (const c of childrenOf(p)) visit(c);
  };
  visit(pid);
  return rows;
}

/** Daemon RSS, tree RSS (daemon + runner + its helpers), fds, CPU ticks of the tree. */
export function memory(pid) {
  const tree = processTree(pid);
  let fds = 0;
  try {
    fds = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    /* gone */
  }
  return {
    rss: tree[0]?.rss ?? 0,
    treeRss: tree.reduce((a, r) => a + r.rss, 0),
    tree: tree.map(({ pid: p, name, rss }) => ({ pid: p, name, rss })),
    ticks: tree.reduce((a, r) => a + r.ticks, 0),
    daemonTicks: tree[0]?.ticks ?? 0,
    fds,
  };
}

/**
 * The process's mappings from /proc/PID/smaps: {start, size, rss (bytes), perms, name}. A glibc
 * malloc arena is an anonymous 64 MiB region: a read-write part followed by a `---p` rest.
 */
export function smaps(pid) {
  const out = [];
  let cur = null;
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      cur = {
        start: head[1],
        end: head[2],
        size: parseInt(head[2], 16) - parseInt(head[1], 16),
        rss: 0,
        perms: head[3],
        name: head[4] || '',
      };
      out.push(cur);
    } else if (cur && line.startsWith('Rss:')) cur.rss = Number(line.split(/\s+/)[1]) * 1024;
  }
  // mark malloc-arena-like regions: an anonymous rw mapping and the ---p rest after it, 64 MiB in all
  for (let i = 0; i < out.length; i++) {
    const m = out[i];
    const next = out[i + 1];
    if (
      !m.name &&
      m.perms.startsWith('rw') &&
      next &&
      !next.name &&
      next.perms.startsWith('---') &&
      next.start === m.end &&
      m.size + next.size === 64 * 1048576
    )
      m.arena = true;
  }
  return out;
}

/** RSS by kind of mapping: file-backed, [heap] (brk), malloc arenas, other anonymous (V8 pages, buffers, stacks). */
export function smapsSummary(maps) {
  const r = { file: 0, brk: 0, arenas: 0, anon: 0, other: 0 };
  for (const m of maps) {
    if (m.name.startsWith('/')) r.file += m.rss;
    else if (m.name === '[heap]') r.brk += m.rss;
    else if (m.arena) r.arenas += m.rss;
    else if (!m.name) r.anon += m.rss;
    else r.other += m.rss;
  }
  return r;
}

/** The mappings whose RSS grew most between two smaps() snapshots. */
export function smapsGrowth(before, after, top = 8) {
  const old = new Map(before.map((m) => [m.start, m]));
  return after
    .map((m) => ({
      start: m.start,
      size: m.size,
      perms: m.perms,
      name: m.name || (m.arena ? '(malloc arena)' : '(anon)'),
      before: old.get(m.start)?.rss ?? 0,
      after: m.rss,
    }))
    .map((m) => ({ ...m, growth: m.after - m.before }))
    .sort((a, b) => b.growth - a.growth)
    .slice(0, top);
}

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export function loadAverage() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

/** /proc/stat's first line: idle and total jiffies of all CPUs (busy = 1 - Δidle/Δtotal). */
export function cpuTimes() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: f[3] + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
}

/** Busy fraction of all CPUs over `ms` (from /proc/stat). */
export async function cpuBusy(ms = 1000) {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await sleep(ms);
  const b = read();
  return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
}

// ------------------------------------------------------------------------ SMTP
/** A raw connection with an SMTP reply reader. */
export class Conn {
  constructor(socket) {
    this.socket = socket;
    this.buf = '';
    this.closed = false;
    this.waiter = null;
    socket.on('data', (d) => {
      this.buf += d.toString('latin1');
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }
  wake() {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
  /** one complete reply {code, last, lines} */
  async reply(timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let pos = 0;
      const lines = [];
      for (;;) {
        const nl = this.buf.indexOf('\r\n', pos);
        if (nl < 0) break;
        const line = this.buf.slice(pos, nl);
        lines.push(line);
        pos = nl + 2;
        if (line[3] !== '-') {
          this.buf = this.buf.slice(pos);
          return { code: Number(line.slice(0, 3)), last: line, lines };
        }
      }
      if (this.closed) throw new Error(`connection closed (buffered ${JSON.stringify(this.buf.slice(0, 200))})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }
  write(data) {
    if (!this.closed) this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }
  async cmd(line, timeoutMs) {
    this.write(line + '\r\n');
    return this.reply(timeoutMs);
  }
  async waitClosed(timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await new Promise((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    return this.closed;
  }
  destroy() {
    this.socket.destroy();
  }
}

export function connectRaw(port, localAddress, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host, ...(localAddress ? { localAddress } : {}) }, () => {
      s.off('error', reject);
      resolve(new Conn(s));
    });
    s.once('error', reject);
  });
}

/** A message body of about `size` bytes, CRLF lines, no line starting with a dot. */
export function body(size, tag = '') {
  const head = `From: load@bench.test\r\nTo: sink@relay.test\r\nSubject: load ${tag}\r\nMessage-ID: <${Date.now()}.${Math.random().toString(36).slice(2)}@bench.test>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopq\r\n'; // 74 octets
  return head + line.repeat(Math.max(1, Math.ceil((size - head.length) / line.length)));
}

/**
 * One whole session on a new connection: connect → 220 → EHLO → MAIL → RCPT → DATA → message →
 * 250 → QUIT → 221. Returns times in ms from the connect() call: banner, accepted (250 after the
 * dot), done (221); throws on any unexpected reply.
 */
export async function transaction(
  port,
  { localAddress, from = 'load@bench.test', rcpt = 'sink@relay.test', size = 1024 } = {},
) {
  const start = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - start) / 1e6;
  const c = await connectRaw(port, localAddress);
  try {
    const expect = (r, code, what) => {
      if (r.code !== code) throw new Error(`${what}: ${r.last}`);
    };
    expect(await c.reply(), 220, 'banner');
    const banner = ms();
    expect(await c.cmd('EHLO probe.bench.test'), 250, 'EHLO');
    expect(await c.cmd(`MAIL FROM:<${from}>`), 250, 'MAIL');
    expect(await c.cmd(`RCPT TO:<${rcpt}>`), 250, 'RCPT');
    expect(await c.cmd('DATA'), 354, 'DATA');
    c.write(body(size, 'probe') + '.\r\n');
    expect(await c.reply(), 250, 'end of data');
    const accepted = ms();
    expect(await c.cmd('QUIT'), 221, 'QUIT');
    const done = ms();
    return { banner, accepted, done };
  } finally {
    c.destroy();
  }
}

/** Time to the 220 banner of a new connection, ms; the connection is closed with QUIT. */
export async function bannerTime(port, localAddress) {
  const start = process.hrtime.bigint();
  const c = await connectRaw(port, localAddress);
  try {
    const r = await c.reply();
    if (r.code !== 220) throw new Error(`banner: ${r.last}`);
    const t = Number(process.hrtime.bigint() - start) / 1e6;
    c.write('QUIT\r\n');
    await c.reply().catch(() => undefined);
    return t;
  } finally {
    c.destroy();
  }
}

// ------------------------------------------------------------------------ statistics
export function percentile(values, p) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function summary(values) {
  return {
    n: values.length,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: values.length ? Math.max(...values) : NaN,
    mean: values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN,
  };
}

/** Least-squares line through (x, y): slope per unit of x, intercept, and r². */
export function linearTrend(points) {
  const n = points.length;
  if (n < 2) return { slope: NaN, intercept: NaN, r2: NaN };
  let sx = 0,
    sy = 0,
    sxx = 0,
    sxy = 0,
    syy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    syy += y * y;
  }
  const den = n * sxx - sx * sx;
  const slope = den ? (n * sxy - sx * sy) / den : NaN;
  const intercept = (sy - slope * sx) / n;
  const r = (n * sxy - sx * sy) / Math.sqrt(den * (n * syy - sy * sy) || NaN);
  return { slope, intercept, r2: r * r };
}
