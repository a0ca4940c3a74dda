/**
 * SMTP AUTH (issue 16, item 2) over a real socket: an AuthFile of `doveadm pw` hashes (one user per
 * scheme: SHA512-CRYPT, BLF-CRYPT, ARGON2ID), real AUTH PLAIN and AUTH LOGIN exchanges inside
 * STARTTLS (a self-signed certificate made with openssl), and a second daemon without
 * certificates and with InsecureAuth. Each test speaks from its own loopback address, so the
 * per-IP failure counts of one do not reach another.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { canCreateUsers, createUser, etcWithPasswd, removeUser, writeScript, type TestUser } from '../support/users.js';
import { dotStuff } from '../support/smtp-client.js';
import { openDialogue, startTls, type SmtpDialogue } from '../support/smtp-dialogue.js';

const DOVEADM = '/usr/bin/doveadm';
const skip =
  canCreateUsers() ??
  (!existsSync('/usr/bin/openssl')
    ? 'openssl is not installed'
    : !existsSync(DOVEADM)
      ? 'doveadm is not installed (apt-get install dovecot-core)'
      : false);

/** user → [scheme, password] */
const USERS: Record<string, [string, string]> = {
  sha: ['SHA512-CRYPT', 'sha secret 1'],
  blf: ['BLF-CRYPT', 'blf secret 2'],
  argon: ['ARGON2ID', 'argon secret 3'],
};

let certs: string;
let u: TestUser;
let etc: string;
let sink: Sink;
let d: Daemon;
let insecure: Daemon;

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

type Dialogue = SmtpDialogue;

async function open(port: number, from: string): Promise<{ s: Dialogue; ehlo: string }> {
  const { dialogue, ehlo } = await openDialogue(port, { from });
  return { s: dialogue, ehlo };
}

/** Connect from `from`, EHLO, STARTTLS, EHLO again: the dialogue inside TLS. */
async function openTls(port: number, from: string): Promise<{ s: Dialogue; ehloInClear: string; ehlo: string }> {
  const { dialogue, ehloInClear, ehlo } = await startTls(port, { from });
  return { s: dialogue, ehloInClear, ehlo };
}

const plain = (user: string, password: string): string => `AUTH PLAIN ${b64(`\0${user}\0${password}`)}`;

async function login(s: Dialogue, user: string, password: string): Promise<string> {
  assert.equal(await s.cmd('AUTH LOGIN'), '334 VXNlcm5hbWU6');
  assert.equal(await s.cmd(b64(user)), '334 UGFzc3dvcmQ6');
  return s.cmd(b64(password));
}

before(async () => {
  if (skip) return;
  certs = mkdtempSync(join(tmpdir(), 'asmtpd-auth-tls-'));
  chmodSync(certs, 0o755);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'key.pem',
      '-out',
      'cert.pem',
      '-subj',
      '/CN=mx.test',
      '-days',
      '2',
    ],
    { cwd: certs, stdio: 'pipe' },
  );
  chmodSync(join(certs, 'key.pem'), 0o644);
  u = createUser('auth');
  writeScript(u, 'rcpt', 'accept "user=$AUTH_USER"');
  const files = etcWithPasswd([u]);
  etc = files.etc;
  // the AuthFile, with hashes as Dovecot makes them; DaemonUser reads it (re-read when it changes)
  const authFile = join(etc, 'auth-users');
  const lines = Object.entries(USERS).map(([name, [scheme, pw]]) => {
    const hash = execFileSync(DOVEADM, ['pw', '-s', scheme, '-p', pw], { encoding: 'utf8' }).trim();
    return `${name}:${hash}\n`;
  });
  writeFileSync(authFile, '# made by doveadm pw\n' + lines.join(''));
  chmodSync(authFile, 0o644);
  sink = await startSink();
  const common = [
    'LocalDomain a.example',
    // loopback clients (the default RelayNet) would relay anyway
    'RelayNet 10.99.0.0/16',
    `PasswdFile ${files.passwd}`,
    `RelayHost 127.0.0.1:${sink.port}`,
    `AuthFile ${authFile}`,
  ];
  d = await startDaemon({
    etcDir: etc,
    conf: [
      ...common,
      `TLSCert ${join(certs, 'cert.pem')}`,
      `TLSKey ${join(certs, 'key.pem')}`,
      'AuthMaxFailures 3',
    ].join('\n'),
  });
  insecure = await startDaemon({ etcDir: etc, conf: [...common, 'InsecureAuth yes'].join('\n') });
});

after(async () => {
  if (skip) return;
  await d?.stop();
  await insecure?.stop();
  await sink?.close();
  if (u) removeUser(u);
  rmSync(certs, { recursive: true, force: true });
  rmSync(etc, { recursive: true, force: true });
});

test('AUTH is neither offered nor taken before STARTTLS; inside TLS it is', { skip }, async () => {
  const { s, ehloInClear, ehlo } = await openTls(d.port, '127.0.0.10');
  assert.doesNotMatch(ehloInClear, /AUTH/);
  assert.match(ehloInClear, /250[ -]STARTTLS/);
  assert.match(ehlo, /^250[ -]AUTH PLAIN LOGIN\r?$/m);
  s.socket.end();
  const clear = await open(d.port, '127.0.0.10');
  assert.match(await clear.s.cmd(plain('sha', USERS.sha![1])), /^5\d\d /);
  assert.match(await clear.s.cmd('MAIL FROM:<s@remote.test>'), /^250 /);
  assert.match(await clear.s.cmd('RCPT TO:<x@other.example>'), /^550 5\.7\.1 relaying denied$/);
  clear.s.socket.end();
});

test('every scheme, PLAIN and LOGIN: the right password 235, a wrong one 535 5.7.8', { skip }, async () => {
  let ip = 11;
  for (const [user, [, password]] of Object.entries(USERS)) {
    for (const mech of ['PLAIN', 'LOGIN']) {
      const { s } = await openTls(d.port, `127.0.0.${ip++}`);
      const wrong = mech === 'PLAIN' ? await s.cmd(plain(user, password + 'x')) : await login(s, user, password + 'x');
      assert.equal(wrong, '535 5.7.8 authentication credentials invalid', `${user} ${mech}`);
      const right = mech === 'PLAIN' ? await s.cmd(plain(user, password)) : await login(s, user, password);
      assert.match(right, /^235 2\.7\.0 /, `${user} ${mech}`);
      // no second AUTH in a session
      assert.match(await s.cmd(plain(user, password)), /^503 /);
      s.socket.end();
    }
  }
  const { s } = await openTls(d.port, `127.0.0.${ip++}`);
  assert.equal(await s.cmd(plain('nobody', 'sha secret 1')), '535 5.7.8 authentication credentials invalid');
  s.socket.end();
  await d.waitLog((l) => l.event === 'auth.decision' && l.result === 'failed' && l.reason === 'unknown-user');
});

test('an authenticated client relays (AUTH_USER, ESMTPSA); without AUTH the same is refused', { skip }, async () => {
  const before = sink.messages.length;
  const { s } = await openTls(d.port, '127.0.0.20');
  assert.match(await s.cmd('MAIL FROM:<s@remote.test>'), /^250 /);
  assert.equal(await s.cmd('RCPT TO:<x@other.example>'), '550 5.7.1 relaying denied');
  assert.equal(await s.cmd(`RCPT TO:<${u.name}@a.example>`), '250 2.1.5 user=');
  assert.match(await s.cmd('RSET'), /^250 /);
  assert.match(await s.cmd(plain('sha', USERS.sha![1])), /^235 /);
  assert.match(await s.cmd('MAIL FROM:<s@remote.test> AUTH=<>'), /^250 /);
  assert.equal(await s.cmd('RCPT TO:<x@other.example>'), '250 2.1.5 recipient ok');
  assert.equal(await s.cmd(`RCPT TO:<${u.name}@a.example>`), '250 2.1.5 user=sha');
  assert.match(await s.cmd('DATA'), /^354 /);
  s.socket.write(dotStuff('Subject: auth\r\n\r\nrelayed\r\n'));
  assert.match(await s.cmd('.'), /^250 2\.0\.0 /);
  s.socket.end();
  const m = sink.messages[before];
  assert.ok(m, 'relayed');
  assert.deepEqual(m.to.sort(), ['x@other.example', `${u.name}@a.example`].sort());
  const head = m.data
    .toString('latin1')
    .split('\r\n\r\n')[0]!
    .replace(/\r\n\s+/g, ' ');
  assert.match(head, /^Received: from client\.test .* with ESMTPSA \(TLSv1\.[23]:/m);
  const ok = await d.waitLog((l) => l.event === 'auth.decision' && l.result === 'ok' && l.ip === '127.0.0.20');
  assert.equal(ok.user, 'sha');
  assert.equal(ok.method, 'PLAIN');
});

/** The delay of the first failure (auth-limiter.ts); the n-th waits FIRST_DELAY_MS × 2^(n-1). */
const FIRST_DELAY_MS = 500;

/**
 * How long an AUTH reply came after the daemon's decision: the client's time for the command less
 * the decision's own time as the daemon logs it (auth.decision `ms`: the counts and the password
 * check — an Argon2 or bcrypt hash costs seconds of CPU on a loaded machine). What is left is the
 * failure delay plus the way there and back, which on a loaded machine is short beside the delays.
 */
async function waitAfterDecision(
  timed: { ms: number },
  pred: (l: Record<string, unknown>) => boolean,
): Promise<{ wait: number; line: Record<string, unknown> }> {
  const line = await d.waitLog((l) => l.event === 'auth.decision' && pred(l));
  return { wait: timed.ms - Number(line.ms), line };
}

test('failures wait longer each time, a success does not wait; the limit is 421 4.7.0', { skip }, async (t) => {
  const pw = USERS.sha![1];
  // per connection (AuthMaxFailures 3): 0.5 s, 1 s, then 421 and the connection closed. Each
  // delay's bounds: at least itself, less than the next step's (0.5 s of slack for the way back,
  // so the steps stay told apart); "no wait" is less than the smallest delay.
  const a = (await openTls(d.port, '127.0.0.30')).s;
  const f1 = await a.timed(plain('sha', 'guess 1'));
  assert.equal(f1.last, '535 5.7.8 authentication credentials invalid');
  const w1 = await waitAfterDecision(f1, (l) => l.ip === '127.0.0.30' && l.result === 'failed' && l.failures === 1);
  assert.equal(w1.line.delay_ms, FIRST_DELAY_MS);
  assert.ok(
    w1.wait >= FIRST_DELAY_MS - 10 && w1.wait < 2 * FIRST_DELAY_MS,
    `first failure after ${f1.ms} ms (${w1.wait} after the decision)`,
  );
  const f2 = await a.timed(plain('sha', 'guess 2'));
  const w2 = await waitAfterDecision(f2, (l) => l.ip === '127.0.0.30' && l.result === 'failed' && l.failures === 2);
  assert.equal(w2.line.delay_ms, 2 * FIRST_DELAY_MS);
  assert.ok(
    w2.wait >= 2 * FIRST_DELAY_MS - 10 && w2.wait < 4 * FIRST_DELAY_MS,
    `second failure after ${f2.ms} ms (${w2.wait} after the decision)`,
  );
  const ok = await a.timed(plain('sha', pw));
  assert.match(ok.last, /^235 /);
  const wOk = await waitAfterDecision(ok, (l) => l.ip === '127.0.0.30' && l.result === 'ok');
  assert.ok(
    wOk.wait < FIRST_DELAY_MS,
    `a success after two failures waited ${ok.ms} ms (${wOk.wait} after the decision)`,
  );
  // end to end too: the same hash's success comes sooner than its first failure did (a wait
  // before the decision would show here, not in wOk)
  assert.ok(ok.ms < f1.ms, `a success took ${ok.ms} ms, the first failure ${f1.ms} ms`);
  a.socket.end();
  const b = (await openTls(d.port, '127.0.0.31')).s;
  await b.cmd(plain('sha', 'guess 1'));
  await b.cmd(plain('blf', 'guess 2'));
  const f3 = await b.timed(plain('argon', 'guess 3'));
  assert.equal(f3.last, '421 4.7.0 too many authentication failures, closing connection');
  const w3 = await waitAfterDecision(f3, (l) => l.ip === '127.0.0.31' && l.result === 'limit');
  // a third failure's delay would be 2 s
  assert.ok(w3.wait < FIRST_DELAY_MS, `the 421 came ${f3.ms} ms after the command (${w3.wait} after the decision)`);
  await b.closed();
  t.diagnostic(
    `client ms (after the decision): 1st failure ${f1.ms} (${w1.wait}), 2nd ${f2.ms} (${w2.wait}), ` +
      `success ${ok.ms} (${wOk.wait}), the 421 ${f3.ms} (${w3.wait})`,
  );
  const limit = w3.line;
  assert.equal(limit.level, 'warn');
  assert.equal(limit.user, 'argon');
  assert.equal(limit.failures, 3);
  // per client IP, across connections: the third failure from 127.0.0.32 is the 421, and the
  // next AUTH from there is refused before any password is checked, even the right one
  for (const [i, expect] of [
    [1, /^535 /],
    [2, /^535 /],
    [3, /^421 4\.7\.0 /],
  ] as const) {
    const c = (await openTls(d.port, '127.0.0.32')).s;
    assert.match(await c.cmd(plain('sha', `guess ${i}`)), expect);
    c.socket.end();
    await c.closed();
  }
  const late = (await openTls(d.port, '127.0.0.32')).s;
  const refused = await late.timed(plain('sha', pw));
  assert.equal(refused.last, '421 4.7.0 too many authentication failures, closing connection');
  // refused before any password check (no `reason`: nothing was checked)
  const wRefused = await waitAfterDecision(
    refused,
    (l) => l.ip === '127.0.0.32' && l.result === 'limit' && l.reason === undefined,
  );
  assert.ok(wRefused.wait < FIRST_DELAY_MS, `waited ${refused.ms} ms (${wRefused.wait} after the decision)`);
  await late.closed();
  // another address is not held back by it
  const other = (await openTls(d.port, '127.0.0.33')).s;
  assert.match(await other.cmd(plain('sha', pw)), /^235 /);
  other.socket.end();
  // the passwords never reach the log
  const text = JSON.stringify(d.logs);
  for (const [, password] of Object.values(USERS)) assert.ok(!text.includes(password), 'a password in the log');
  assert.ok(!text.includes('guess 1'));
  assert.ok(!text.includes(b64('\0sha\0guess 1')));
});

test('InsecureAuth without certificates: AUTH offered in clear, Received says ESMTPA', { skip }, async () => {
  const before = sink.messages.length;
  const { s, ehlo } = await open(insecure.port, '127.0.0.40');
  assert.match(ehlo, /^250[ -]AUTH PLAIN LOGIN\r?$/m);
  assert.doesNotMatch(ehlo, /STARTTLS/);
  assert.match(await login(s, 'blf', USERS.blf![1]), /^235 /);
  assert.match(await s.cmd('MAIL FROM:<s@remote.test>'), /^250 /);
  assert.equal(await s.cmd('RCPT TO:<x@other.example>'), '250 2.1.5 recipient ok');
  assert.match(await s.cmd('DATA'), /^354 /);
  s.socket.write(dotStuff('Subject: auth\r\n\r\nin clear\r\n'));
  assert.match(await s.cmd('.'), /^250 2\.0\.0 /);
  s.socket.end();
  const m = sink.messages[before];
  assert.ok(m, 'relayed');
  assert.match(m.data.toString('latin1').replace(/\r\n\s+/g, ' '), / with ESMTPA id /);
});
