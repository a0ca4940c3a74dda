// A private, throw-away Dovecot LMTP server for tests (Debian's dovecot-core + dovecot-lmtpd).
//
//   const dv = await startDovecotLmtp({ users: ['good', 'ok2'], fullUsers: ['full'], brokenUsers: ['broken'] });
//   ... LMTP to dv.host:dv.port (asmtpd: RelayHost lmtp:127.0.0.1:PORT) ...
//   await dv.messages('good')   // the files in good's Maildir/new
//   await dv.stop();
//
// Each instance lives in its own temp dir: DIR/dovecot.conf, DIR/run (base_dir), DIR/mail/<user>
// (homes, Maildir under each, owned by nobody), DIR/dovecot.log. Users are local parts (any
// domain: auth_username_format %Ln); anybody else gets 550 5.1.1 at RCPT. A `full` user has a 1-byte
// quota: Dovecot refuses the message for them after the data with 552 5.2.2 (quota_full_tempfail
// is no). A `broken` user's home lies under a plain file: 451 4.2.0 after the data (a temporary
// failure, as a full or unwritable disk gives). Dovecot 2.3 LMTP offers no SMTPUTF8.
// Loopback only: one inet listener on 127.0.0.1:PORT; no IMAP/POP3, no TLS. Needs root (master).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePort } from './ports.js';

const DOVECOT = '/usr/sbin/dovecot';
const NOBODY = 65534;

export interface DovecotLmtp {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  /** paths of the messages delivered to a user's INBOX (Maildir new/ and cur/) */
  messages(user: string): Promise<string[]>;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** null when a private Dovecot can be started here; otherwise why not. */
export function dovecotUnavailableReason(): string | null {
  if (!existsSync(DOVECOT) || !existsSync('/usr/lib/dovecot/lmtp'))
    return 'Dovecot LMTP is not installed (apt-get install dovecot-core dovecot-lmtpd, see .ci/run)';
  if (process.getuid?.() !== 0) return 'a private Dovecot needs root (its master runs as root)';
  return null;
}

export async function startDovecotLmtp(opts: {
  users: string[];
  fullUsers?: string[];
  brokenUsers?: string[];
}): Promise<DovecotLmtp> {
  const reason = dovecotUnavailableReason();
  if (reason) throw new Error(`startDovecotLmtp: ${reason}`);
  const dir = await mkdtemp(join(tmpdir(), 'asmtpd-dovecot-'));
  await chmod(dir, 0o755);
  const mail = join(dir, 'mail');
  await mkdir(join(dir, 'run'));
  await mkdir(mail, { mode: 0o755 });
  const lines: string[] = [];
  for (const u of [...opts.users, ...(opts.fullUsers ?? [])]) {
    await mkdir(join(mail, u));
    await chown(join(mail, u), NOBODY, NOBODY);
    const quota = opts.fullUsers?.includes(u) ? '::userdb_quota_rule=*:storage=1' : '';
    lines.push(`${u}:{PLAIN}unused:${NOBODY}:${NOBODY}::${join(mail, u)}${quota}`);
  }
  for (const u of opts.brokenUsers ?? []) {
    await writeFile(join(mail, `${u}-file`), 'not a directory\n');
    lines.push(`${u}:{PLAIN}unused:${NOBODY}:${NOBODY}::${join(mail, `${u}-file`, 'home')}`);
  }
  await writeFile(join(dir, 'users'), lines.join('\n') + '\n', { mode: 0o644 });
  const port = await freePort();
  const conf = `# written by test/support/dovecot.ts
base_dir = ${join(dir, 'run')}
state_dir = ${join(dir, 'run')}
instance_name = asmtpd-test-${port}
protocols = lmtp
listen = 127.0.0.1
ssl = no
log_path = ${join(dir, 'dovecot.log')}
info_log_path = ${join(dir, 'dovecot.log')}
mail_location = maildir:~/Maildir
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
auth_username_format = %Ln
mail_plugins = quota
plugin {
  quota = maildir:User quota
}
passdb {
  driver = passwd-file
  args = ${join(dir, 'users')}
}
userdb {
  driver = passwd-file
  args = ${join(dir, 'users')}
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${port}
  }
  unix_listener lmtp {
    mode = 0600
  }
}
service anvil {
  chroot =
}
service log {
  chroot =
}
service stats {
  chroot =
}
`;
  const { log, stop } = await runDovecot(dir, conf);
  await waitForGreeting(port, 10_000).catch(async (err: Error) => {
    const text = await log();
    await stop();
    throw new Error(`${err.message}\n${text}`);
  });
  return {
    host: '127.0.0.1',
    port,
    dir,
    async messages(user) {
      const out: string[] = [];
      for (const sub of ['new', 'cur']) {
        const d = join(mail, user, 'Maildir', sub);
        for (const name of await readdir(d).catch(() => [] as string[])) out.push(join(d, name));
      }
      return out.sort();
    },
    log,
    stop,
  };
}

/** Write DIR/dovecot.conf, start that Dovecot; stop() stops it and removes DIR (idempotent). */
async function runDovecot(dir: string, conf: string): Promise<{ log(): Promise<string>; stop(): Promise<void> }> {
  const confPath = join(dir, 'dovecot.conf');
  await writeFile(confPath, conf);
  const log = (): Promise<string> => readFile(join(dir, 'dovecot.log'), 'utf8').catch(() => '');
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    spawnSync(DOVECOT, ['-c', confPath, 'stop'], { stdio: 'ignore', timeout: 10_000 });
    const pidFile = join(dir, 'run', 'master.pid');
    for (let i = 0; i < 100 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 50));
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  };
  const started = spawnSync(DOVECOT, ['-c', confPath], { encoding: 'utf8', timeout: 10_000 });
  if (started.status !== 0) {
    const text = `${started.stdout}${started.stderr}${await log()}`;
    await stop();
    throw new Error(`dovecot -c ${confPath} failed (${started.status}): ${text}`);
  }
  return { log, stop };
}

async function waitForGreeting(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.setTimeout(2000, () => (s.destroy(), resolve(false)));
      s.on('error', () => resolve(false));
      s.once('data', (d: Buffer) => {
        s.end('QUIT\r\n');
        resolve(d.toString().startsWith('220'));
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`dovecot lmtp on 127.0.0.1:${port} did not greet within ${timeoutMs} ms`);
}

export interface DovecotAuthService {
  /** the auth-client inet listener on 127.0.0.1 (DovecotAuth inet:127.0.0.1:PORT) */
  readonly port: number;
  /** the auth-client unix socket (DovecotAuth unix:PATH), mode 0666 */
  readonly socket: string;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A private Dovecot with no protocol but its auth service: a passwd-file passdb of `passwdFile`
 * (lines `user:{SCHEME}hash`), mechanisms PLAIN and LOGIN, the auth-client listener on a unix
 * socket and on 127.0.0.1:PORT. auth_failure_delay is 0 here (asmtpd's own delay is under test).
 */
export async function startDovecotAuth(passwdFile: string): Promise<DovecotAuthService> {
  if (!existsSync(DOVECOT))
    throw new Error('startDovecotAuth: Dovecot is not installed (apt-get install dovecot-core)');
  if (process.getuid?.() !== 0) throw new Error('startDovecotAuth: a private Dovecot needs root');
  const dir = await mkdtemp(join(tmpdir(), 'asmtpd-dovecot-auth-'));
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'run'), { mode: 0o755 });
  await writeFile(join(dir, 'users'), passwdFile, { mode: 0o644 });
  const port = await freePort();
  const socket = join(dir, 'run', 'auth-client');
  const conf = `# written by test/support/dovecot.ts
base_dir = ${join(dir, 'run')}
state_dir = ${join(dir, 'run')}
instance_name = asmtpd-test-auth-${port}
protocols =
listen = 127.0.0.1
ssl = no
log_path = ${join(dir, 'dovecot.log')}
default_internal_user = dovecot
default_login_user = dovenull
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = ${join(dir, 'users')}
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  inet_listener {
    address = 127.0.0.1
    port = ${port}
  }
}
service anvil {
  chroot =
}
service log {
  chroot =
}
service stats {
  chroot =
}
`;
  const { log, stop } = await runDovecot(dir, conf);
  // the auth service answers VERSION at once
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.setTimeout(2000, () => (s.destroy(), resolve(false)));
      s.on('error', () => resolve(false));
      s.once('data', (d: Buffer) => {
        s.destroy();
        resolve(d.toString().startsWith('VERSION'));
      });
    });
    if (ok && existsSync(socket)) break;
    if (Date.now() > deadline) {
      const text = await log();
      await stop();
      throw new Error(`dovecot auth on 127.0.0.1:${port} did not answer\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, socket, log, stop };
}
