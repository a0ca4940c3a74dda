/**
 * The stock EtcDir scripts (packages/asmtpd/share/etcdir) as `asmtpd --install-etc DIR` installs
 * them — root's, 0755, never overwriting — run by the real daemon: the stock `unknown` asks
 * aliascheck, so an unknown recipient that is an alias of /etc/aliases (or an account PasswdFile
 * does not list) is accepted, a truly unknown one refused 550 5.1.1, and an alias file that
 * cannot be read defers (451). The daemon runs in a private mount namespace in which a test file
 * is bind-mounted on /etc/aliases (for it and its scripts only). Needs root; in CI that is a
 * failure if missing, elsewhere the tests are skipped with the reason.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ASMTPD_BIN, startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, type TestUser } from '../support/users.js';

const STOCK = fileURLToPath(new URL('../../../packages/asmtpd/share/etcdir', import.meta.url));
const unavailable =
  canCreateUsers() ?? (existsSync('/etc/aliases') ? null : '/etc/aliases does not exist (nothing to bind-mount over)');
if (unavailable && process.env.CI) throw new Error(`CI runs as root with Postfix's /etc/aliases: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let base: string, etc: string, aliases: string;
let user: TestUser, av: TestUser;
let sink: Sink;
let d: Daemon;

function installEtc(dir: string): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [ASMTPD_BIN, '--install-etc', dir], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

before(async () => {
  if (unavailable) return;
  base = mkdtempSync(join(tmpdir(), 'asmtpd-stock-etc-'));
  chmodSync(base, 0o755);
  etc = join(base, 'etc', 'avenger');
  user = createUser('stock');
  av = createUser('stockav');
  aliases = join(base, 'aliases');
  writeFileSync(
    aliases,
    `# the MTA's aliases, unknown to asmtpd (no AliasFile)\nsales: ${user.name}\nhelp-desk: "|/usr/bin/ticket"\n`,
  );
  chmodSync(aliases, 0o644);
  sink = await startSink();
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await sink?.close();
  for (const u of [user, av]) if (u) removeUser(u);
  if (base) rmSync(base, { recursive: true, force: true });
});

test(
  'asmtpd --install-etc DIR: creates DIR, installs unknown, relay and default (root, 0755); a second run keeps them',
  { skip },
  () => {
    const first = installEtc(etc);
    assert.deepEqual(first, {
      status: 0,
      out: ['default', 'relay', 'unknown'].map((n) => `installed ${join(etc, n)}\n`).join(''),
      err: '',
    });
    for (const name of ['default', 'relay', 'unknown']) {
      const st = statSync(join(etc, name));
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [0, 0, 0o755], name);
      assert.deepEqual(readFileSync(join(etc, name)), readFileSync(join(STOCK, name)), name);
    }
    // the administrator edits relay; installing again changes nothing
    const edited = readFileSync(join(etc, 'relay'), 'utf8').replace('exit 0', '# edited\nexit 0');
    writeFileSync(join(etc, 'relay'), edited);
    const second = installEtc(etc);
    assert.equal(second.status, 0);
    assert.equal(
      second.out,
      ['default', 'relay', 'unknown'].map((n) => `kept ${join(etc, n)} (exists; not overwritten)\n`).join(''),
    );
    assert.equal(readFileSync(join(etc, 'relay'), 'utf8'), edited);
    const usage = installEtc('');
    assert.equal(usage.status, 1, 'an empty DIR cannot be created');
    const noDir = spawnSync(process.execPath, [ASMTPD_BIN, '--install-etc'], { encoding: 'utf8' });
    assert.equal(noDir.status, 2);
    assert.match(noDir.stderr, /--install-etc needs DIR/);
  },
);

/** One RCPT in a fresh session: the reply line. */
async function rcpt(to: string): Promise<string> {
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    assert.equal((await c.cmd('MAIL FROM:<someone@remote.example>')).code, 250);
    return (await c.cmd(`RCPT TO:<${to}>`)).last;
  } finally {
    c.close();
  }
}

test(
  'the stock unknown: a truly unknown recipient → 550 5.1.1; an /etc/aliases alias or a system account → accepted; an unreadable alias file → 451',
  { skip },
  async () => {
    assert.ok(existsSync(join(etc, 'unknown')), 'installed by the test above');
    const passwd = join(base, 'passwd');
    writeFileSync(passwd, [user, av].map(passwdLine).join(''));
    chmodSync(passwd, 0o644);
    d = await startDaemon({
      etcDir: etc,
      conf: [
        'LocalDomain a.example',
        `PasswdFile ${passwd}`, // the daemon knows only these two accounts
        'Separator +',
        `AvengerUser ${av.name}`,
        `RelayHost 127.0.0.1:${sink.port}`,
      ].join('\n'),
      // /etc/aliases is the test's file, for the daemon and its scripts only
      wrapper: [
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind "$1" /etc/aliases && shift && exec "$@"',
        'sh',
        aliases,
      ],
    });
    assert.equal(await rcpt('no-such-user@a.example'), '550 5.1.1 user unknown');
    assert.equal(await rcpt('"$(touch /tmp/stock-etc-pwned)"@a.example'), '550 5.1.1 user unknown');
    assert.equal(existsSync('/tmp/stock-etc-pwned'), false);
    assert.match(await rcpt('sales@a.example'), /^250 /, 'an alias of /etc/aliases');
    assert.match(await rcpt('Sales+orders@a.example'), /^250 /, 'an alias, with an extension');
    assert.match(await rcpt('help-desk@a.example'), /^250 /, 'an alias to a command');
    assert.match(await rcpt('daemon@a.example'), /^250 /, 'a system account PasswdFile does not list');
    assert.equal(await rcpt('no-such-user+sales@a.example'), '550 5.1.1 user unknown');
    // the accepted ones went through the stock default (no decision) and were logged as accepted
    const decision = d.logs.find((l) => l.event === 'rcpt.decision' && l.to === 'sales@a.example');
    assert.match(String(decision?.reply), /^250 /);
    // the relay and default scripts make no decision: a relaying client's recipient is accepted
    assert.match(await rcpt('friend@elsewhere.example'), /^250 /);

    chmodSync(aliases, 0o600); // AvengerUser can no longer read it: aliascheck exits 2
    try {
      assert.equal(await rcpt('no-such-user@a.example'), '451 4.3.0 cannot check this recipient now, try again later');
    } finally {
      chmodSync(aliases, 0o644);
    }
  },
);
