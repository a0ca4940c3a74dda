// A private, throw-away ClamAV daemon for tests (Debian's clamav-daemon), with a signature database
// made here by sigtool: none can be downloaded (no freshclam), and clamd refuses to start without one.
//
//   const cd = await startClamd();
//   ... clamdscan --config-file=FILE (FILE: "LocalSocket ${cd.socket}") --stream - < message ...
//   await cd.log()    // clamd's log: "instream(local): Asmtpd.Test.EICAR.UNOFFICIAL FOUND"
//   await cd.stop();
//
// The database holds one body signature (DIR/db/asmtpd-test.ndb): the EICAR test string, anywhere in
// any file, as its hex dump by `sigtool --hex-dump`. clamd scans mail (ScanMail), so the string is
// found in a plain-text body and in a base64 attachment alike; it reports the signature as
// TEST_SIGNATURE_FOUND (".UNOFFICIAL": not from a signed ClamAV database).
// Each instance lives in its own temp dir (mode 0755 so test users reach the socket): DIR/clamd.conf,
// DIR/clamd.sock (LocalSocket, mode 0666 like Debian's /run/clamav/clamd.ctl), DIR/db, DIR/clamd.log.
// Foreground, no syslog; as root clamd gives up root for the clamav account (its `User` option).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountIds } from './procs.js';

const CLAMD = '/usr/sbin/clamd';

/** The EICAR anti-virus test file (eicar.org), in two pieces so this source is no test file itself. */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
/** The name of the signature the test database holds, and how clamd reports a match. */
export const TEST_SIGNATURE = 'Asmtpd.Test.EICAR';
export const TEST_SIGNATURE_FOUND = `${TEST_SIGNATURE}.UNOFFICIAL`;

export interface Clamd {
  /** the LocalSocket (mode 0666) */
  readonly socket: string;
  readonly dir: string;
  readonly pid: number;
  /** clamd's log file (LogClean: every scan, clean or not) */
  log(): Promise<string>;
  /** the PING command answered PONG */
  ping(): Promise<boolean>;
  stop(): Promise<void>;
}

/** null when a private clamd can be started here; otherwise why not. */
export function clamdUnavailableReason(): string | null {
  for (const cmd of [CLAMD, '/usr/bin/clamdscan', '/usr/bin/sigtool'])
    if (!existsSync(cmd))
      return `${cmd} is not installed (apt-get install clamav-daemon clamdscan clamav, see .ci/run)`;
  if (process.getuid?.() === 0) {
    try {
      accountIds('clamav');
    } catch {
      return 'the clamav account is missing (created by the clamav-base package)';
    }
  }
  return null;
}

/** The test database: one .ndb body signature for the EICAR string, made with sigtool. */
function testDatabase(): string {
  const hex = spawnSync('sigtool', ['--hex-dump'], { input: EICAR, encoding: 'utf8', timeout: 30_000 });
  if (hex.status !== 0) throw new Error(`sigtool --hex-dump failed (${hex.status}): ${hex.stderr}`);
  // Name:TargetType:Offset:HexSignature — target 0 (any file), offset * (anywhere)
  return `${TEST_SIGNATURE}:0:*:${hex.stdout.trim()}\n`;
}

export async function startClamd(opts: { streamMaxLength?: string } = {}): Promise<Clamd> {
  const reason = clamdUnavailableReason();
  if (reason) throw new Error(`startClamd: ${reason}`);
  const dir = await mkdtemp(join(tmpdir(), 'asmtpd-clamd-'));
  await chmod(dir, 0o755);
  const db = join(dir, 'db');
  await mkdir(db, { mode: 0o755 });
  await writeFile(join(db, 'asmtpd-test.ndb'), testDatabase(), { mode: 0o644 });
  const socket = join(dir, 'clamd.sock');
  const root = process.getuid?.() === 0;
  if (root) {
    const { uid, gid } = accountIds('clamav');
    for (const p of [dir, db, join(db, 'asmtpd-test.ndb')]) await chown(p, uid, gid);
  }
  const confPath = join(dir, 'clamd.conf');
  await writeFile(
    confPath,
    [
      '# written by test/support/clamd.ts',
      `LocalSocket ${socket}`,
      'LocalSocketMode 666',
      'FixStaleSocket yes',
      ...(root ? ['User clamav'] : []),
      'Foreground yes',
      `DatabaseDirectory ${db}`,
      `TemporaryDirectory ${dir}`,
      `LogFile ${join(dir, 'clamd.log')}`,
      'LogSyslog no',
      'LogClean yes',
      `PidFile ${join(dir, 'clamd.pid')}`,
      'ScanMail yes',
      'SelfCheck 0',
      'MaxThreads 4',
      ...(opts.streamMaxLength ? [`StreamMaxLength ${opts.streamMaxLength}`] : []),
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const proc = spawn(CLAMD, ['-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
  let output = '';
  proc.stdout?.on('data', (b: Buffer) => (output += b.toString('utf8')));
  proc.stderr?.on('data', (b: Buffer) => (output += b.toString('utf8')));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const log = (): Promise<string> => readFile(join(dir, 'clamd.log'), 'utf8').catch(() => '');
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await terminate(proc, exited);
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  };
  const ping = (): Promise<boolean> => clamdPing(socket);
  const deadline = Date.now() + 60_000;
  while (!(await ping())) {
    if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(
        `clamd -c ${confPath} did not answer PING (exit ${proc.exitCode ?? proc.signalCode}):\n${output}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { socket, dir, pid: proc.pid!, log, ping, stop };
}

/** clamd's own protocol: "zPING\0" → "PONG\0". */
function clamdPing(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socket);
    let got = '';
    s.setTimeout(2000, () => (s.destroy(), resolve(false)));
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write('zPING\0'));
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('close', () => resolve(got === 'PONG\0'));
  });
}

/** SIGTERM, then SIGKILL after 10 s; resolves when the process is gone. */
export async function terminate(proc: ChildProcess, exited: Promise<void>): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
