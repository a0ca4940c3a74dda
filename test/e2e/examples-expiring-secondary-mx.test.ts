/**
 * Two shipped examples (examples/dot-avenger) through the real daemon, installed verbatim into
 * test users' ~/.avenger:
 *   expiring-addresses/rcpt+default — you+CODE@ is accepted while the macutil code (made by the
 *     user with the installed command) is genuine and unexpired, refused 550 5.1.1 otherwise;
 *   secondary-mx/rcpt — `dns -t MX` (a loopback DNS server) and smtpdcheck: deferred while the
 *     better MX (a second asmtpd on port 25 of another loopback address) answers, accepted once it
 *     is down, deferred when the MX lookup fails.
 * Needs root (test accounts, port 25); in CI that is a failure if missing, elsewhere the tests
 * are skipped with the reason.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/dot-avenger/', import.meta.url));
const TOOLS = fileURLToPath(new URL('../../../packages/asmtpd/tools', import.meta.url));
const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

// the primary MX listens on port 25 of its own loopback address (as a real MX does)
const PRIMARY_IP = `127.${randomInt(64, 127)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;

let exp: TestUser, mx: TestUser, other: TestUser, av: TestUser;
let etc: string;
let dns: DnsServer;
let sink: Sink;
let d: Daemon;
let primary: Daemon | null = null;

function install(u: TestUser, example: string, file: string): void {
  const body = readFileSync(join(EXAMPLES, example, file), 'utf8');
  writeScript(u, file, body, 0o755);
}

before(async () => {
  if (unavailable) return;
  exp = createUser('exexp');
  mx = createUser('exmx');
  other = createUser('exoth');
  av = createUser('exmxav');
  install(exp, 'expiring-addresses', 'rcpt+default');
  install(mx, 'secondary-mx', 'rcpt');
  dns = await startDnsServer({
    doh: false,
    records: {
      'b.example': [
        { type: 'MX', priority: 10, exchange: 'primary.b.example' },
        { type: 'MX', priority: 20, exchange: 'backup.b.example' },
      ],
      'primary.b.example': [{ type: 'A', address: PRIMARY_IP }],
      'backup.b.example': [{ type: 'A', address: '127.0.0.1' }],
      'c.example': [{ type: 'SERVFAIL', only: 'MX' }],
    },
  });
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-exmx-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, [exp, mx, other, av].map(passwdLine).join(''));
  chmodSync(passwd, 0o644);
  sink = await startSink();
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain a.example b.example c.example d.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      `AvengerUser ${av.name}`,
      'AvengerTimeout 30s',
      `RelayHost 127.0.0.1:${sink.port}`,
      'DNSResolver system',
      `DNSServer 127.0.0.1:${dns.udp.port}`,
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await primary?.stop();
  await d?.stop();
  await sink?.close();
  await dns?.close();
  for (const u of [exp, mx, other, av]) if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

/** One RCPT in a fresh session (no per-session decision cache): the reply line. */
async function rcpt(to: string): Promise<string> {
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    assert.equal((await c.cmd('MAIL FROM:<sender@remote.example>')).code, 250);
    return (await c.cmd(`RCPT TO:<${to}>`)).last;
  } finally {
    c.close();
  }
}

/** The installed macutil, run as the user. */
function macutil(u: TestUser, ...args: string[]): string {
  const r = spawnSync(
    'setpriv',
    [`--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', '--', join(TOOLS, 'macutil'), ...args],
    {
      encoding: 'utf8',
      cwd: u.home,
      env: { HOME: u.home, USER: u.name, PATH: '/usr/local/bin:/usr/bin:/bin' },
    },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

const EXPIRED = '550 5.1.1 this address has expired or never existed';

test(
  'expiring addresses: a genuine code is accepted (any case); expired, forged and foreign codes are refused 550 5.1.1',
  { skip },
  async () => {
    const address = macutil(exp, '--sender', `${exp.name}+*@a.example`);
    assert.match(address, new RegExp(`^${exp.name}\\+[a-z2-7]{16}@a\\.example$`));
    assert.match(await rcpt(address), /^250 /);
    assert.match(
      await rcpt(address.toUpperCase().replace(exp.name.toUpperCase(), exp.name)),
      /^250 /,
      'the code in upper case',
    );
    const code = address.slice(exp.name.length + 1, address.indexOf('@'));
    const forged = code.slice(0, 15) + (code[15] === 'a' ? 'b' : 'a');
    assert.equal(await rcpt(`${exp.name}+${forged}@a.example`), EXPIRED);
    assert.equal(await rcpt(`${exp.name}+${'a'.repeat(16)}@a.example`), EXPIRED);
    assert.equal(await rcpt(`${exp.name}+shop@a.example`), EXPIRED, 'any other extension is not a code');
    const expired = macutil(exp, '--gen', '--expire=-1m');
    assert.equal(await rcpt(`${exp.name}+${expired}@a.example`), EXPIRED);
    const foreign = macutil(other, '--gen');
    assert.equal(await rcpt(`${exp.name}+${foreign}@a.example`), EXPIRED, "another user's code");
    assert.match(await rcpt(`${exp.name}@a.example`), /^250 /, 'the plain address has no rule');

    // a whole message to a live address is delivered downstream
    const c = await SmtpClient.connect(d.port);
    try {
      await c.greeting();
      const r = await c.send('sender@remote.example', [address], 'Subject: to an expiring address\r\n\r\nhi\r\n');
      assert.match(r.last, /^250 /);
    } finally {
      c.close();
    }
    assert.ok(sink.messages.some((m) => m.data.toString().includes('Subject: to an expiring address')));
  },
);

test('expiring addresses: a code is accepted until its expiry, refused after it', { skip }, async () => {
  const expiresAt = Math.floor(Date.now() / 1000) + 3;
  const address = macutil(exp, '--sender', `${exp.name}+*@a.example`, `--expire=${expiresAt}`);
  assert.match(await rcpt(address), /^250 /);
  // the condition is the clock passing the code's expiry second
  while (Math.floor(Date.now() / 1000) <= expiresAt) await new Promise((r) => setTimeout(r, 250));
  assert.equal(await rcpt(address), EXPIRED);
});

test(
  'secondary MX: deferred while the better MX answers SMTP, accepted when it is down, deferred when the MX lookup fails',
  { skip },
  async () => {
    primary = await startDaemon({
      fullConf: ({ dbDir, etcDir, dnsServer }) =>
        [
          'SMTPPort 25',
          `BindAddr ${PRIMARY_IP}`,
          `DBDir ${dbDir}`,
          `EtcDir ${etcDir}`,
          'Hostname primary.b.example',
          'DNSResolver system',
          `DNSServer ${dnsServer}`,
          'SMTPCB no',
          'SynFP no',
        ].join('\n') + '\n',
    });
    assert.equal(await rcpt(`${mx.name}@b.example`), '451 4.7.1 the primary MX primary.b.example is up: deliver there');
    await primary.stop();
    primary = null;
    assert.match(await rcpt(`${mx.name}@b.example`), /^250 /, 'the primary is down: this host takes the mail');
    assert.equal(
      await rcpt(`${mx.name}@c.example`),
      '451 4.4.3 cannot look up the MX hosts of c.example, try again later',
    );
    assert.match(await rcpt(`${mx.name}@d.example`), /^250 /, 'no MX records: the only host');
  },
);
