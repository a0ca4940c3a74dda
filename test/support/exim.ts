// Exim 4 (Debian's exim4-daemon-light) as a sending MTA for tests, without installing it: the
// package conflicts with postfix, so .ci/run unpacks it (apt-get download + dpkg -x) into
// EXIM_ROOT and creates its compiled-in Debian-exim account. Nothing of it runs as a daemon.
//
//   const ex = await makeExim({ smarthost: `127.0.0.1::${port}` });
//   const r = ex.send('sender@x.test', ['rcpt@y.test'], 'Subject: x\n\nbody\n');   // exim -odi
//   (await ex.mainlog())  ex.queueCount()  await ex.stop()
//
// Each instance: DIR/exim.conf (manualroute of every address to the smarthost, smtp transport
// without TLS, a short retry rule), DIR/spool, DIR/log/mainlog. exim_path points at the unpacked
// binary (Exim re-executes itself for deliveries). `-odi`: the delivery happens in the foreground
// of the submitting process, as the reproduction did.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const EXIM_ROOT = process.env.ASMTPD_EXIM_ROOT ?? '/opt/asmtpd-test/exim4';
const EXIM_BIN = join(EXIM_ROOT, 'usr/sbin/exim4');

function accountIds(name: string): { uid: number; gid: number } | null {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && f[3] !== undefined) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  return null;
}

export function eximUnavailableReason(): string | null {
  if (!existsSync(EXIM_BIN))
    return `Exim is not unpacked at ${EXIM_ROOT} (.ci/run: apt-get download exim4-daemon-light; dpkg -x)`;
  if (!accountIds('Debian-exim')) return 'no Debian-exim account (.ci/run creates it)';
  if (process.getuid?.() !== 0) return 'Exim as a test MTA needs root here';
  return null;
}

export interface Exim {
  dir: string;
  /**
   * submit a message (LF line ends, as a local program would) and deliver it at once (-odi).
   * Asynchronous: the test's own DNS server must go on answering while Exim talks to asmtpd.
   */
  send(from: string, to: string[], message: string): Promise<{ status: number | null; output: string }>;
  mainlog(): Promise<string>;
  /** messages still in Exim's queue (deferred) */
  queueCount(): number;
  stop(): Promise<void>;
}

export async function makeExim(opts: { smarthost: string }): Promise<Exim> {
  const reason = eximUnavailableReason();
  if (reason) throw new Error(`makeExim: ${reason}`);
  const ids = accountIds('Debian-exim')!;
  const dir = await mkdtemp(join(tmpdir(), 'asmtpd-exim-'));
  await chmod(dir, 0o755);
  for (const sub of ['spool', 'log']) {
    await mkdir(join(dir, sub), { mode: 0o750 });
    await chown(join(dir, sub), ids.uid, ids.gid);
  }
  const conf = join(dir, 'exim.conf');
  await writeFile(
    conf,
    `# written by test/support/exim.ts
exim_path = ${EXIM_BIN}
primary_hostname = exim.harness.test
spool_directory = ${join(dir, 'spool')}
log_file_path = ${join(dir, 'log')}/%slog
exim_user = Debian-exim
exim_group = Debian-exim
trusted_users = root
host_lookup =
rfc1413_hosts =
daemon_smtp_ports =
keep_environment =
message_size_limit = 50M

begin routers
to_asmtpd:
  driver = manualroute
  route_list = * ${opts.smarthost} byname
  transport = to_asmtpd
  self = send

begin transports
to_asmtpd:
  driver = smtp
  hosts_avoid_tls = *
  allow_localhost

begin retry
* * F,1h,1m
`,
  );
  const exim = (args: string[], input?: string): { status: number | null; output: string } => {
    const r = spawnSync(EXIM_BIN, ['-C', conf, ...args], { input: input ?? '', encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  };
  const eximAsync = (args: string[], input: string): Promise<{ status: number | null; output: string }> =>
    new Promise((resolve) => {
      const p = spawn(EXIM_BIN, ['-C', conf, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      p.stdout.on('data', (b: Buffer) => (output += b.toString()));
      p.stderr.on('data', (b: Buffer) => (output += b.toString()));
      const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
      p.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, output });
      });
      p.stdin.end(input);
    });
  return {
    dir,
    send: (from, to, message) => eximAsync(['-odi', '-f', from, ...to], message),
    mainlog: () => readFile(join(dir, 'log', 'mainlog'), 'utf8').catch(() => ''),
    queueCount: () => Number(exim(['-bpc']).output.trim()) || 0,
    stop: () => rm(dir, { recursive: true, force: true }),
  };
}
