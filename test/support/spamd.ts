// A private, throw-away SpamAssassin daemon for tests (Debian's spamd), with the rules Debian ships.
//
//   const sd = await startSpamd();
//   ... spamc -d 127.0.0.1 -p ${sd.port} -x -R < message ...
//   await sd.log()    // spamd's log: "spamd: result: Y 1003 - GTUBE,… user=NAME,…"
//   await sd.stop();
//
// Rules: `-C /usr/share/spamassassin`, the rules of the spamassassin package (GTUBE scores 1000),
// even where sa-update has put newer ones under /var/lib/spamassassin — none can be downloaded
// here. Site config: a private directory with Debian's /etc/spamassassin/*.pre (the plugins the
// rules need) and a local.cf of our own (no Bayes, no DNS); `-L` runs local tests only, so no
// rule asks a resolver or a network service. `-x`: no per-user preferences.
// Listens on 127.0.0.1:PORT (a free port), accepts 127.0.0.1 only, two children at most. As root
// the whole daemon runs as debian-spamd (the package's account): spamd's own -u leaves its parent
// root. Logs to stderr, kept in memory. Each instance has its own temp dir: DIR/site, DIR/home
// (the helper home directory), DIR/spamd.pid.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { accountIds, processTree, readProc } from './procs.js';
import { terminate } from './clamd.js';

const SPAMD = '/usr/sbin/spamd';
const RULES = '/usr/share/spamassassin';
const DEBIAN_SITE = '/etc/spamassassin';
const ACCOUNT = 'debian-spamd';

/** The GTUBE line (spamassassin.apache.org/gtube): SpamAssassin's test for "this is spam". */
export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*' + 'GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

export interface Spamd {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  readonly pid: number;
  /** spamd's log (stderr) so far */
  log(): string;
  stop(): Promise<void>;
}

/** null when a private spamd can be started here; otherwise why not. */
export function spamdUnavailableReason(): string | null {
  for (const f of [SPAMD, '/usr/bin/spamc', join(RULES, '20_body_tests.cf'), join(DEBIAN_SITE, 'init.pre')])
    if (!existsSync(f)) return `${f} is missing (apt-get install spamd spamc, see .ci/run)`;
  if (process.getuid?.() === 0) {
    try {
      accountIds(ACCOUNT);
    } catch {
      return `the ${ACCOUNT} account is missing (created by the spamassassin package)`;
    }
  }
  return null;
}

export async function startSpamd(): Promise<Spamd> {
  const reason = spamdUnavailableReason();
  if (reason) throw new Error(`startSpamd: ${reason}`);
  const dir = await mkdtemp(join(tmpdir(), 'asmtpd-spamd-'));
  const site = join(dir, 'site');
  const home = join(dir, 'home');
  await mkdir(site, { mode: 0o755 });
  await mkdir(home, { mode: 0o700 });
  for (const f of readdirSync(DEBIAN_SITE).filter((n) => n.endsWith('.pre')))
    await copyFile(join(DEBIAN_SITE, f), join(site, f));
  await writeFile(
    join(site, 'local.cf'),
    [
      '# written by test/support/spamd.ts',
      'use_bayes 0',
      'bayes_auto_learn 0',
      'dns_available no',
      'skip_rbl_checks 1',
      '',
    ].join('\n'),
  );
  const ids = process.getuid?.() === 0 ? accountIds(ACCOUNT) : null;
  if (ids) for (const p of [dir, site, home]) await chown(p, ids.uid, ids.gid);
  const port = await freePort();
  const args = [
    '-x',
    '-L',
    `--helper-home-dir=${home}`,
    `--configpath=${RULES}`,
    `--siteconfigpath=${site}`,
    `--listen=127.0.0.1:${port}`,
    '--allowed-ips=127.0.0.1',
    '--max-children=2',
    '--min-children=1',
    `--pidfile=${join(dir, 'spamd.pid')}`,
    '--syslog=stderr',
  ];
  const proc = spawn(SPAMD, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: '/',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', HOME: home },
    ...(ids ? { uid: ids.uid, gid: ids.gid } : {}),
  });
  let output = '';
  proc.stdout?.on('data', (b: Buffer) => (output += b.toString('utf8')));
  proc.stderr?.on('data', (b: Buffer) => (output += b.toString('utf8')));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // the parent ends its children on SIGTERM; make sure none outlives it
    const children = processTree(proc.pid!)
      .map((p) => p.pid)
      .filter((pid) => pid !== proc.pid);
    const alive = (pid: number): boolean => readProc(pid)?.cmd.startsWith('spamd child') === true;
    await terminate(proc, exited);
    for (let i = 0; i < 100 && children.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
    for (const pid of children) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  };
  // loading the rules takes a few seconds (longer on a busy machine)
  const deadline = Date.now() + 120_000;
  while (!(await spamdPing(port))) {
    if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(
        `spamd ${args.join(' ')} did not answer PING (exit ${proc.exitCode ?? proc.signalCode}):\n${output}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { host: '127.0.0.1', port, dir, pid: proc.pid!, log: () => output, stop };
}

/** The spamc protocol's PING: "PING SPAMC/1.5" → "SPAMD/1.5 0 PONG". */
function spamdPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = '';
    s.setTimeout(2000, () => (s.destroy(), resolve(false)));
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write('PING SPAMC/1.5\r\n\r\n'));
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('close', () => resolve(/^SPAMD\/[\d.]+ 0 PONG/.test(got)));
  });
}
