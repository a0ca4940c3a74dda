// A private, throw-away Postfix instance for tests (and bench/smtp).
//
//   const pf = await startPostfix({ mode: 'maildir' });            // deliver everything to one Maildir
//   const pf = await startPostfix({ mode: { relayTo: '127.0.0.1:2525' } }); // relay everything there
//   const pf = await startPostfix({ mode: { local: { domain: 'local.test', mailboxCommand: '…' } } });
//                                                     // local(8) delivers to this machine's accounts
//   ... SMTP to pf.host:pf.port ...
//   const files = await pf.waitForMessages(1, 10_000);
//   await pf.stop();
//
// Each instance lives in its own temp dir (mkdtemp under os.tmpdir()):
//   DIR/etc      config_directory (main.cf + master.cf written here)
//   DIR/spool    queue_directory
//   DIR/data     data_directory (owned by the postfix user)
//   DIR/Maildir  the one Maildir (maildir mode), owned by nobody:nogroup (65534)
//   DIR/maillog  Postfix's log (maillog_file via postlogd); tail it with pf.log()
//
// Design decisions:
// - Must run as root (master(8) needs it). As root, `postfix -c DIR` does not
//   require DIR to be listed in alternate_config_directories of the default
//   /etc/postfix/main.cf (that check only applies to non-root callers), and
//   the harness never calls the set-gid tools (postdrop/postqueue) that would
//   enforce it. So /etc/postfix/main.cf is neither needed nor touched.
// - Maildir mode accepts ANY recipient in ANY domain and delivers it to the
//   single Maildir DIR/Maildir/ with the virtual(8) agent:
//   mydestination empty, virtual_mailbox_domains = static:all,
//   virtual_mailbox_maps = static:Maildir/, uid/gid 65534 (nobody/nogroup).
// - Relay mode: mydestination empty, no local delivery, relayhost =
//   [host]:port; clients in mynetworks (127.0.0.0/8) may relay to any domain.
// - Local mode: mydestination = the domain, delivered by local(8) to the system's accounts
//   (getpwnam: users made with test/support/users.ts) through mailbox_command (run by local(8)
//   with the recipient's uid and gid, as in a real installation); no aliases, no
//   local_recipient_maps (an unknown user bounces at delivery), recipient_delimiter +; any other
//   domain is refused (default_transport = error).
// - Loopback only: inet_interfaces = 127.0.0.1, inet_protocols = ipv4, one
//   smtpd on 127.0.0.1:PORT in master.cf. No DNS at all:
//   smtp_dns_support_level = disabled (the Postfix >= 3 name of
//   disable_dns_lookups), smtp_host_lookup = native, smtpd_peername_lookup = no.
// - Transparent: no header rewriting for local clients
//   (local_header_rewrite_clients empty), no MIME output conversion, no
//   outbound line-length folding, no content filters or milters. Postfix still
//   prepends its own headers: Received (smtpd), plus Return-Path and
//   Delivered-To (virtual delivery).
// - Fast queue: queue_run_delay/minimal_backoff_time 1s, maximal_backoff_time 5s.
// - No chroot anywhere (our own master.cf).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type PostfixMode =
  | 'maildir'
  | { relayTo: string }
  /** local(8) delivery for `domain` through `mailboxCommand` (Postfix's syntax: run by /bin/sh when it has shell characters) */
  | { local: { domain: string; mailboxCommand: string } };

export interface StartPostfixOptions {
  /** TCP port for the instance's smtpd on 127.0.0.1. Default: a free port. */
  smtpdPort?: number;
  mode: PostfixMode;
  /** Extra main.cf lines (`name = value`), appended last (so they win). */
  mainCf?: Record<string, string>;
  /** smtpd process limit in master.cf (default: '-' = default_process_limit, 100). */
  smtpdProcessLimit?: number;
  /**
   * Maildir mode: only these recipients exist (virtual_mailbox_maps = texthash:DIR/etc/recipients,
   * virtual_mailbox_domains = their domains); any other recipient of those domains gets Postfix's
   * `550 5.1.1 <…>: Recipient address rejected: User unknown in virtual mailbox table` at RCPT.
   */
  recipients?: string[];
  /** The address smtpd listens on: 127.0.0.1 (default) or ::1 (inet_protocols = ipv6; mynetworks [::1]/128 too). */
  listen?: '127.0.0.1' | '::1';
}

export interface PostfixInstance {
  readonly port: number;
  readonly host: '127.0.0.1' | '::1';
  /** The instance's temp dir (removed by stop()). */
  readonly dir: string;
  /** Maildir path (maildir mode only). */
  readonly maildir?: string;
  /** Resolves with the paths of the delivered message files once at least n exist (sorted by name). */
  waitForMessages(n: number, timeoutMs: number): Promise<string[]>;
  /** Contents of every delivered message file (maildir mode; [] in relay mode), sorted by file name. */
  readMessages(): Promise<Buffer[]>;
  /** Number of messages still in the queue (incoming, active, deferred, hold, maildrop). */
  queueSize(): Promise<number>;
  /** Postfix's log so far (DIR/maillog). */
  log(): Promise<string>;
  /** Stops the instance (postfix stop, waits until every process of it is gone) and removes its dir. Idempotent. */
  stop(): Promise<void>;
}

const POSTFIX = '/usr/sbin/postfix';
const NOBODY = 65534;

function daemonDirectory(): string {
  const r = spawnSync('/usr/sbin/postconf', ['-dh', 'daemon_directory'], { encoding: 'utf8' });
  const d = r.status === 0 ? r.stdout.trim() : '';
  return d || '/usr/lib/postfix/sbin';
}

/** null when a private Postfix can be started here; otherwise the reason it cannot. */
export function postfixUnavailableReason(): string | null {
  if (!existsSync(POSTFIX) || !existsSync('/usr/sbin/postconf')) {
    return 'Postfix is not installed (/usr/sbin/postfix missing; `apt-get install postfix`, see .ci/run)';
  }
  if (!existsSync(join(daemonDirectory(), 'master'))) return `Postfix master(8) not found in ${daemonDirectory()}`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return 'a private Postfix instance needs root (master(8) runs as root)';
  }
  if (userIds('postfix') === null) return 'no "postfix" user on this machine';
  return null;
}

export function hasPostfix(): boolean {
  return postfixUnavailableReason() === null;
}

/**
 * For node:test tests that need Postfix: `if (!requirePostfix(t)) return;`.
 * Returns true when Postfix can be used. Otherwise: in CI (process.env.CI set)
 * throws (the test FAILS); elsewhere calls t.skip(reason) and returns false.
 */
export function requirePostfix(t: { skip(message?: string): void }): boolean {
  const reason = postfixUnavailableReason();
  if (!reason) return true;
  if (process.env.CI) throw new Error(`Postfix is required in CI: ${reason}`);
  t.skip(`skipped outside CI: ${reason}`);
  return false;
}

/** uid/gid of a user from /etc/passwd (no getpwnam in Node). */
function userIds(name: string): { uid: number; gid: number } | null {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined && f[3] !== undefined) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    /* fallthrough */
  }
  return null;
}

function groupId(name: string): number | null {
  try {
    for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined) return Number(f[2]);
    }
  } catch {
    /* fallthrough */
  }
  return null;
}

/** A currently free TCP port on 127.0.0.1 (bind to 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function parseHostPort(spec: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(spec.trim());
  if (!m || !m[1] || !m[2]) throw new Error(`relayTo must be 'host:port', got ${JSON.stringify(spec)}`);
  return { host: m[1], port: Number(m[2]) };
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', (e) => resolve({ code: -1, out: out + String(e) }));
    // 'exit', not 'close': `postfix start` leaves a daemon behind that may hold the pipes open a while.
    p.on('exit', (code) => {
      p.stdout.destroy();
      p.stderr.destroy();
      resolve({ code: code ?? -1, out });
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Every descendant pid of `root` (from /proc/PID/stat). */
async function descendants(root: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = await readFile(`/proc/${name}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(name), Number(rest[1]));
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    const p = todo.pop()!;
    for (const [pid, ppid] of parent) if (ppid === p) (out.push(pid), todo.push(pid));
  }
  return out;
}

/** Waits until the smtpd answers with a 220 greeting. */
async function waitForGreeting(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      let buf = '';
      const done = (v: boolean) => (s.destroy(), resolve(v));
      s.setTimeout(2000, () => done(false));
      s.on('error', (e) => ((last = String(e)), done(false)));
      s.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('\n')) {
          last = buf.trim();
          if (buf.startsWith('220')) s.end('QUIT\r\n');
          done(buf.startsWith('220'));
        }
      });
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`postfix smtpd on ${host}:${port} did not greet within ${timeoutMs} ms (last: ${last})`);
}

function mainCf(o: {
  dir: string;
  port: number;
  mode: PostfixMode;
  extra: Record<string, string> | undefined;
  recipients?: string[] | undefined;
  listen: '127.0.0.1' | '::1';
}): string {
  const p: [string, string][] = [
    ['compatibility_level', '3.6'],
    ['queue_directory', join(o.dir, 'spool')],
    ['data_directory', join(o.dir, 'data')],
    ['maillog_file', join(o.dir, 'maillog')],
    ['maillog_file_prefixes', o.dir],
    ['myhostname', `pf${o.port}.harness.test`],
    ['mydomain', 'harness.test'],
    ['myorigin', '$myhostname'],
    ['inet_interfaces', o.listen],
    ['inet_protocols', o.listen === '::1' ? 'ipv6' : 'ipv4'],
    ['mynetworks', o.listen === '::1' ? '127.0.0.0/8 [::1]/128' : '127.0.0.0/8'],
    ['smtpd_banner', '$myhostname ESMTP Postfix (test harness)'],
    // no DNS anywhere
    ['smtp_dns_support_level', 'disabled'],
    ['lmtp_dns_support_level', 'disabled'],
    ['smtp_host_lookup', 'native'],
    ['lmtp_host_lookup', 'native'],
    ['smtpd_peername_lookup', 'no'],
    // transparency: don't touch the message
    ['local_header_rewrite_clients', ''],
    ['append_dot_mydomain', 'no'],
    ['disable_mime_output_conversion', 'yes'],
    ['smtp_line_length_limit', '0'],
    ['content_filter', ''],
    ['smtpd_milters', ''],
    ['non_smtpd_milters', ''],
    ['header_checks', ''],
    ['body_checks', ''],
    ['biff', 'no'],
    ['message_size_limit', '52428800'],
    // fast queue
    ['queue_run_delay', '1s'],
    ['minimal_backoff_time', '1s'],
    ['maximal_backoff_time', '5s'],
    ['smtpd_delay_reject', 'yes'],
    ['smtpd_relay_restrictions', 'permit_mynetworks, reject_unauth_destination'],
    ['mydestination', ''],
    ['relay_domains', ''],
    ['local_recipient_maps', ''],
    ['alias_maps', ''],
    ['alias_database', ''],
  ];
  if (o.mode === 'maildir') {
    const listed = o.recipients !== undefined;
    const domains = [...new Set((o.recipients ?? []).map((r) => r.slice(r.lastIndexOf('@') + 1)))];
    p.push(
      ['virtual_mailbox_domains', listed ? domains.join(' ') : 'static:all'],
      ['virtual_mailbox_base', o.dir],
      ['virtual_mailbox_maps', listed ? `texthash:${join(o.dir, 'etc', 'recipients')}` : 'static:Maildir/'],
      ['virtual_uid_maps', `static:${NOBODY}`],
      ['virtual_gid_maps', `static:${NOBODY}`],
      ['virtual_minimum_uid', '100'],
      ['virtual_mailbox_limit', '0'],
      ['virtual_transport', 'virtual'],
    );
  } else if ('local' in o.mode) {
    p.push(
      ['mydestination', o.mode.local.domain],
      ['local_transport', 'local'],
      ['mailbox_command', o.mode.local.mailboxCommand],
      ['recipient_delimiter', '+'],
      ['mailbox_size_limit', '0'],
      ['default_transport', 'error:the test harness delivers locally only'],
    );
  } else {
    const { host, port } = parseHostPort(o.mode.relayTo);
    p.push(['relayhost', `[${host}]:${port}`], ['default_transport', 'smtp']);
  }
  for (const [k, v] of Object.entries(o.extra ?? {})) p.push([k, v]);
  return '# written by test/support/postfix.ts\n' + p.map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
}

function masterCf(listen: string, port: number, smtpdProcessLimit: number | undefined): string {
  const lim = smtpdProcessLimit === undefined ? '-' : String(smtpdProcessLimit);
  // service type private unpriv chroot wakeup maxproc command
  return `# written by test/support/postfix.ts -- no chroot anywhere
${listen === '::1' ? '[::1]' : listen}:${port} inet n - n - ${lim} smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

// Safety net: instances a test forgot to stop (or a crash) must not outlive
// the test process. Postfix's children exit on their own once master is gone.
const live = new Map<string, () => number>();
process.once('exit', () => {
  for (const [dir, pid] of live) {
    try {
      if (pid()) process.kill(pid(), 'SIGKILL');
    } catch {
      /* gone */
    }
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
});

/** Starts a private Postfix instance. Throws (with Postfix's log) if it cannot. */
export async function startPostfix(opts: StartPostfixOptions): Promise<PostfixInstance> {
  const reason = postfixUnavailableReason();
  if (reason) throw new Error(`startPostfix: ${reason}`);
  // A port from freePort() may be taken by someone else before master binds it:
  // then try again with another one (not when the caller chose the port).
  for (let attempt = 1; ; attempt++) {
    const port = opts.smtpdPort ?? (await freePort());
    try {
      return await startOnce(opts, port);
    } catch (e) {
      if (opts.smtpdPort !== undefined || attempt >= 3 || !/address already in use/i.test(String(e))) throw e;
    }
  }
}

async function startOnce(opts: StartPostfixOptions, port: number): Promise<PostfixInstance> {
  const pfUser = userIds('postfix')!;
  const listen = opts.listen ?? '127.0.0.1';

  const dir = await mkdtemp(join(tmpdir(), 'asmtpd-postfix-'));
  await chmod(dir, 0o755); // postfix's unprivileged daemons must traverse it
  const etc = join(dir, 'etc');
  const spool = join(dir, 'spool');
  const data = join(dir, 'data');
  await mkdir(etc);
  await mkdir(spool, { mode: 0o755 });
  await mkdir(data, { mode: 0o700 });
  await chown(data, pfUser.uid, pfUser.gid);
  let maildir: string | undefined;
  if (opts.mode === 'maildir') {
    maildir = join(dir, 'Maildir');
    for (const sub of ['', 'new', 'cur', 'tmp']) {
      await mkdir(join(maildir, sub), { mode: 0o755 });
      await chown(join(maildir, sub), NOBODY, NOBODY);
    }
  }
  // Pre-create the queue directories exactly as `postfix check` (post-install
  // create-missing) would, and ask postfix-script to skip its integrity checks
  // once (queue_directory/quick-start): a fresh start then takes ~0.2 s instead
  // of ~2 s. If that start fails, the retry below runs the full checks.
  const postdropGid = groupId('postdrop') ?? 0;
  const queueDirs: [string, number, number, number][] = [
    ...[
      'active',
      'bounce',
      'corrupt',
      'defer',
      'deferred',
      'flush',
      'hold',
      'incoming',
      'private',
      'saved',
      'trace',
    ].map((q): [string, number, number, number] => [q, 0o700, pfUser.uid, 0]),
    ['maildrop', 0o730, pfUser.uid, postdropGid],
    ['public', 0o710, pfUser.uid, postdropGid],
    ['pid', 0o755, 0, 0],
  ];
  for (const [q, mode, uid, gid] of queueDirs) {
    await mkdir(join(spool, q));
    await chmod(join(spool, q), mode);
    await chown(join(spool, q), uid, gid);
  }
  await writeFile(join(spool, 'quick-start'), '');
  if (opts.recipients)
    await writeFile(join(etc, 'recipients'), opts.recipients.map((r) => `${r} Maildir/\n`).join(''), { mode: 0o644 });
  await writeFile(
    join(etc, 'main.cf'),
    mainCf({ dir, port, mode: opts.mode, extra: opts.mainCf, recipients: opts.recipients, listen }),
  );
  await writeFile(join(etc, 'master.cf'), masterCf(listen, port, opts.smtpdProcessLimit));
  // Postfix sleeps (300 ms steps, ~2 s) before reading a config file whose mtime
  // is not yet in the past; back-date them.
  const past = new Date(Date.now() - 60_000);
  for (const f of ['main.cf', 'master.cf']) await utimes(join(etc, f), past, past);

  const readLog = () => readFile(join(dir, 'maillog'), 'utf8').catch(() => '');
  let stopped = false;
  let masterPid = 0;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const pidText = await readFile(join(spool, 'pid', 'master.pid'), 'utf8').catch(() => '');
    masterPid = Number(pidText.trim()) || masterPid;
    const kids = masterPid ? await descendants(masterPid) : [];
    // What `postfix stop` does (postfix-script: kill `sed 1q pid/master.pid`),
    // without its 1 s sleep loop: SIGTERM to master, which terminates its
    // children; we then wait for master and every child to be gone (SIGKILL
    // after 10 s). Without a pid file, fall back to `postfix -c DIR stop`.
    if (masterPid && pidAlive(masterPid)) process.kill(masterPid, 'SIGTERM');
    else await run(POSTFIX, ['-c', etc, 'stop']);
    const all = masterPid ? [masterPid, ...kids] : kids;
    const deadline = Date.now() + 10_000;
    while (all.some(pidAlive) && Date.now() < deadline) await sleep(25);
    for (const pid of all.filter(pidAlive)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    while (all.some(pidAlive) && Date.now() < deadline + 2_000) await sleep(25);
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    live.delete(dir);
  };

  live.set(dir, () => masterPid);
  let started = await run(POSTFIX, ['-c', etc, 'start']);
  if (started.code !== 0) started = await run(POSTFIX, ['-c', etc, 'start']); // full checks this time
  if (started.code !== 0) {
    const log = await readLog();
    await stop().catch(() => undefined);
    throw new Error(`postfix -c ${etc} start failed (exit ${started.code}): ${started.out}\n--- maillog ---\n${log}`);
  }
  masterPid = Number((await readFile(join(spool, 'pid', 'master.pid'), 'utf8').catch(() => '')).trim()) || 0;
  try {
    await waitForGreeting(listen, port, 10_000);
  } catch (e) {
    const log = await readLog();
    await stop().catch(() => undefined);
    throw new Error(`${(e as Error).message}\n--- maillog ---\n${log}`);
  }

  const listNew = async (): Promise<string[]> => {
    if (!maildir) return [];
    const names = await readdir(join(maildir, 'new')).catch(() => [] as string[]);
    return names
      .filter((n) => !n.startsWith('.'))
      .sort()
      .map((n) => join(maildir!, 'new', n));
  };

  const countFiles = async (d: string): Promise<number> => {
    let n = 0;
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      n += e.isDirectory() ? await countFiles(join(d, e.name)) : 1;
    }
    return n;
  };

  const inst: PostfixInstance = {
    port,
    host: listen,
    dir,
    ...(maildir ? { maildir } : {}),
    async waitForMessages(n: number, timeoutMs: number): Promise<string[]> {
      if (!maildir) throw new Error('waitForMessages: only in maildir mode');
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const files = await listNew();
        if (files.length >= n) return files;
        if (Date.now() >= deadline) {
          throw new Error(
            `waitForMessages: ${files.length}/${n} messages after ${timeoutMs} ms in ${maildir}\n--- maillog ---\n${await readLog()}`,
          );
        }
        await sleep(25);
      }
    },
    async readMessages(): Promise<Buffer[]> {
      return Promise.all((await listNew()).map((f) => readFile(f)));
    },
    async queueSize(): Promise<number> {
      let n = 0;
      for (const q of ['maildrop', 'incoming', 'active', 'deferred', 'hold']) n += await countFiles(join(spool, q));
      return n;
    },
    log: readLog,
    stop,
  };
  return inst;
}

/** True if `p` exists (helper for callers checking leftovers). */
export async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
