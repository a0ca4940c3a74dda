/**
 * Start the real asmtpd daemon (packages/asmtpd/bin/asmtpd -d) on a temp config for a test, and
 * collect its JSON log lines. Every test gets its own port and DBDir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { startDnsServer } from './dns-server.js';

/**
 * The daemon under test: this checkout's, or (ASMTPD_UNDER_TEST=/path/to/another/checkout, built)
 * another build's — how docs/security.md shows each attack test failing on an older version.
 */
/** Workers of the daemons tests start: ASMTPD_TEST_WORKERS (CI runs part of test/e2e with 2), else 1. */
export function testWorkers(): number {
  const n = Number(process.env.ASMTPD_TEST_WORKERS ?? '1');
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

export const ASMTPD_BIN = process.env.ASMTPD_UNDER_TEST
  ? join(process.env.ASMTPD_UNDER_TEST, 'packages/asmtpd/bin/asmtpd')
  : new URL('../../../packages/asmtpd/bin/asmtpd', import.meta.url).pathname;

export interface LogLine {
  event: string;
  level: string;
  [k: string]: unknown;
}

export interface Daemon {
  port: number;
  dir: string;
  dbDir: string;
  confPath: string;
  proc: ChildProcess;
  logs: LogLine[];
  /** wait for a log line matching the predicate */
  waitLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<number | null>;
  writeConf(text: string): void;
}

export interface DaemonOptions {
  /** extra config lines (SMTPPort, BindAddr 127.0.0.1, DBDir, Hostname are provided) */
  conf?: string;
  hostname?: string;
  verbose?: boolean;
  /** EtcDir (system scripts); default: the daemon's temp dir */
  etcDir?: string;
  /**
   * The machine's resolver, as a config without DNS lines uses it: no DNS line is added, and the
   * daemon runs in a private mount namespace (`unshare --mount`, root only) in which this file is
   * bind-mounted on /etc/resolv.conf — for the daemon and every process it starts, and for no
   * other process of the machine. The file must name a loopback DNS server on port 53.
   */
  resolvConf?: string;
  /**
   * the whole configuration file instead of the base lines and `conf` (a shipped file with the
   * values a test must use put in): the port, DBDir, EtcDir and the quiet loopback DNS server
   */
  fullConf?: (t: { port: number; dbDir: string; etcDir: string; dnsServer: string }) => string;
  /** a command to start the daemon under (e.g. setpriv with a capability bounding set) */
  wrapper?: string[];
}

/**
 * freePort() found the port free a moment before the daemon binds it; another test may have taken
 * it since (EADDRINUSE): then the daemon is started again on a new port, twice at most.
 */
export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDaemonOnce(opts);
    } catch (err) {
      if (attempt < 3 && /EADDRINUSE/.test((err as Error).message)) continue;
      throw err;
    }
  }
}

async function startDaemonOnce(opts: DaemonOptions = {}): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-e2e-'));
  // never let a test daemon ask the machine's resolver (it is not on loopback): unless the test
  // names its own DNSServer, a quiet loopback server answers NXDOMAIN to everything
  const quietDns =
    opts.resolvConf !== undefined || (/^DNSServer /im.test(opts.conf ?? '') && !opts.fullConf)
      ? null
      : await startDnsServer({ doh: false });
  // the daemon gives up root after start: it must still reach its DBDir and its config
  chmodSync(dir, 0o755);
  const dbDir = join(dir, 'db');
  const port = await freePort();
  const confPath = join(dir, 'asmtpd.conf');
  const etcDir = opts.etcDir ?? dir;
  const base = (text: string): string =>
    [
      `SMTPPort ${port}`,
      'BindAddr 127.0.0.1',
      `DBDir ${dbDir}`,
      `EtcDir ${etcDir}`,
      `Hostname ${opts.hostname ?? 'mx.example.test'}`,
      // as root the daemon becomes DaemonUser (asmtpd) and runs system scripts as AvengerUser
      // (avenger): the default accounts, created by the first daemon that needs them
      ...(quietDns ? ['DNSResolver system', `DNSServer 127.0.0.1:${quietDns.udp.port}`] : []),
      // the bounce probe would connect to port 25 of the senders' domains: only where a test asks
      ...(/^SMTPCB /im.test(text) ? [] : ['SMTPCB no']),
      // SYN capture is on by default as root; tests about it say so (X-Avenger stays comparable)
      ...(/^SynFP /im.test(text) ? [] : ['SynFP no']),
      // dictionary-attack blocking (on by default) would block the many tests whose clients collect
      // unknown recipients on purpose (open relay, fuzz, faults); the tests about it set it
      ...(/^BlockUnknownRcpts /im.test(text) ? [] : ['BlockUnknownRcpts off']),
      // one SMTP process unless ASMTPD_TEST_WORKERS says how many (the shipped default is the
      // number of CPUs, which would make the tests depend on the machine); tests about workers set it
      ...(/^Workers /im.test(text) ? [] : [`Workers ${testWorkers()}`]),
    ].join('\n') + '\n';
  const writeConf = (text: string): void =>
    writeFileSync(
      confPath,
      opts.fullConf
        ? text + (/^Workers /im.test(text) ? '' : `\nWorkers ${testWorkers()}\n`)
        : base(text) + text + '\n',
    );
  writeConf(
    opts.fullConf
      ? opts.fullConf({ port, dbDir, etcDir, dnsServer: `127.0.0.1:${quietDns!.udp.port}` })
      : (opts.conf ?? ''),
  );
  const args = [ASMTPD_BIN, '-d', '-f', confPath, ...(opts.verbose ? ['--verbose'] : [])];
  const command = [...(opts.wrapper ?? []), process.execPath, ...args];
  // with resolvConf, unshare and sh exec in turn: proc.pid is the daemon's (or the wrapper's) pid
  const [cmd, ...argv] = (
    opts.resolvConf === undefined
      ? command
      : [
          'unshare',
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"',
          'sh',
          opts.resolvConf,
          ...command,
        ]
  ) as [string, ...string[]];
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  const waiters: Array<() => void> = [];
  let stderrText = '';
  let partial = '';
  proc.stderr!.on('data', (d: Buffer) => {
    partial += d.toString();
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        stderrText += line + '\n';
      }
    }
    for (const w of waiters.splice(0)) w();
  });
  let exited: number | null | undefined;
  proc.on('exit', (code) => {
    exited = code;
    for (const w of waiters.splice(0)) w();
  });
  const waitLog = async (pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = logs.find(pred);
      if (hit) return hit;
      if (exited !== undefined) throw new Error(`asmtpd exited (${exited}): ${stderrText}`);
      if (Date.now() > deadline)
        throw new Error(`log line not seen; stderr: ${stderrText}; logs: ${JSON.stringify(logs.slice(-5))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  };
  try {
    await waitLog((l) => l.event === 'daemon.start', 30_000);
  } catch (err) {
    // a daemon that did not start in time is stopped too: left running, its pipes would keep the
    // test file alive forever (seen with Workers 2 on a loaded machine)
    if (exited === undefined) {
      proc.kill('SIGTERM');
      const gone = new Promise<void>((r) => proc.once('exit', () => r()));
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
    await quietDns?.close();
    throw err;
  }
  return {
    port,
    dir,
    dbDir,
    confPath,
    proc,
    logs,
    waitLog,
    writeConf,
    signal: (sig) => void proc.kill(sig),
    async stop() {
      if (exited === undefined) {
        proc.kill('SIGTERM');
        await new Promise<void>((r) => {
          const t = setTimeout(() => {
            proc.kill('SIGKILL');
            r();
          }, 10_000);
          proc.once('exit', () => {
            clearTimeout(t);
            r();
          });
          if (exited !== undefined) r();
        });
      }
      await quietDns?.close();
      rmSync(dir, { recursive: true, force: true });
      return exited ?? null;
    },
  };
}
