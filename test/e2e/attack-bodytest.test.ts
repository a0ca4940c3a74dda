/**
 * Attack 5 of issue 13 (docs/security.md): a body test's stdin, opened by root by path. The SMTP
 * process writes DBDir/spool/ID.full (the message as the body test reads it) and the runner used
 * to open that path as root: a racer of the account that owns DBDir swapped the file for a symlink
 * to /etc/shadow, and an ordinary user's body test read it.
 *
 * Here a racer running as the DBDir owner replaces every *.full it sees with a symlink to a
 * root-only file, while a user's body test saves whatever it reads; 40 messages are sent. No body
 * test may ever see the root-only file: it reads the message, or the runner refuses the swapped
 * file and the client gets a 451. Needs root.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, removeUser, writeScript, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const SECRET = `ROOT-ONLY-${process.pid}-SECRET`;
let u: TestUser;
let d: Daemon;
let sink: Sink;
let base: string;
let secret: string;

before(async () => {
  if (unavailable) return;
  u = createUser('race');
  base = mkdtempSync(join(tmpdir(), 'asmtpd-attack5-'));
  chmodSync(base, 0o755);
  mkdirSync(join(base, 'root-only'), { mode: 0o700 });
  secret = join(base, 'root-only', 'shadow');
  writeFileSync(secret, `${SECRET}\n`, { mode: 0o600 });
  writeScript(u, 'rcpt', `bodytest sh -c 'cat > "$HOME/got.$$"'`);
  sink = await startSink();
  d = await startDaemon({ conf: ['LocalDomain a.example', `RelayHost 127.0.0.1:${sink.port}`].join('\n') });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await sink?.close();
  if (u) removeUser(u);
  if (base) rmSync(base, { recursive: true, force: true });
});

test(
  'a racer swapping spool files for links to a root-only file never feeds it to a body test',
  { skip },
  async (t) => {
    const spool = join(d.dbDir, 'spool');
    const owner = statSync(d.dbDir);
    const racer = spawn(
      'setpriv',
      [
        `--reuid=${owner.uid}`,
        `--regid=${owner.gid}`,
        '--clear-groups',
        '--',
        'perl',
        '-e',
        `my $n = 0; while (1) { opendir(my $dh, '${spool}') or next; for my $f (grep { /\\.full$/ } readdir $dh) { ` +
          `symlink('${secret}', "${spool}/.l$n") and rename("${spool}/.l$n", "${spool}/$f") and $n++; } closedir $dh; }`,
      ],
      { stdio: 'ignore' },
    );
    const replies: Record<string, number> = {};
    try {
      for (let i = 0; i < 40; i++) {
        const c = await SmtpClient.connect(d.port);
        await c.greeting();
        const r = await c.send(
          's@remote.example',
          [`${u.name}@a.example`],
          `Subject: message ${i}\r\n\r\nbody ${i}\r\n`,
        );
        c.close();
        const code = r.last.slice(0, 3);
        replies[code] = (replies[code] ?? 0) + 1;
      }
    } finally {
      racer.kill('SIGKILL');
    }
    const got = readdirSync(u.home)
      .filter((f) => f.startsWith('got.'))
      .map((f) => readFileSync(join(u.home, f), 'utf8'));
    const leaked = got.filter((g) => g.includes(SECRET)).length;
    t.diagnostic(
      `replies ${JSON.stringify(replies)}; body tests that ran: ${got.length}, of which read the root-only file: ${leaked}`,
    );
    assert.equal(
      leaked,
      0,
      `body tests that read the root-only file: ${leaked} of ${got.length} (replies ${JSON.stringify(replies)})`,
    );
    assert.ok(
      got.every((g) => /^Subject: message \d+/m.test(g)),
      'what a body test read was a message',
    );
    assert.equal(
      (replies['250'] ?? 0) + (replies['451'] ?? 0),
      40,
      `every message accepted or deferred: ${JSON.stringify(replies)}`,
    );
  },
);
