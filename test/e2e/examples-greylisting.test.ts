/**
 * The greylisting example (examples/dot-avenger/greylisting) end to end through the real daemon:
 * two users' rcpt (verbatim) redirect to AvengerUser, whose rcpt+greylist+default (verbatim) keeps
 * one dbutil database; greylist.delay is installed and then set to DELAY_S seconds, as an
 * administrator would, without touching the script. Shown: the first attempt of a (client, sender,
 * recipient) gets 451, a retry before the delay 451, retries after a restart of the daemon 451
 * until the delay has passed since the first attempt, then 250 (the first-seen record survived
 * the restart unchanged); a pass survives a restart too; another sender or another recipient is
 * greylisted on its own; an extension address (rcpt+default) is greylisted and then delivered.
 * Needs root (test accounts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { installExample } from '../support/examples.js';
import { SmtpClient } from '../support/smtp-client.js';
import { startSink, type Sink } from '../support/sink.js';
import { tool } from '../support/tool-runs.js';
import { canCreateUsers, createUser, passwdLine, removeUser, type TestUser } from '../support/users.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const DELAY_S = 6;

let bob: TestUser, carol: TestUser, av: TestUser;
let etc: string;
let passwd: string;
let sink: Sink;
let d: Daemon;

const start = (): Promise<Daemon> =>
  startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      'Separator +',
      `AvengerUser ${av.name}`,
      'AvengerTimeout 20s',
      `RelayHost 127.0.0.1:${sink.port}`,
    ].join('\n'),
  });

before(async () => {
  if (unavailable) return;
  bob = createUser('grbob');
  carol = createUser('grcarol');
  av = createUser('graveng');
  for (const u of [bob, carol]) {
    installExample(u, 'greylisting', 'rcpt');
    installExample(u, 'greylisting', 'rcpt', 'rcpt+default');
  }
  installExample(av, 'greylisting', 'rcpt+greylist+default');
  installExample(av, 'greylisting', 'greylist.delay');
  // the administrator's setting, in its own file: the script is not edited
  writeFileSync(join(av.home, '.avenger', 'greylist.delay'), `${DELAY_S}\n`);
  etc = mkdtempSync(join(tmpdir(), 'asmtpd-grey-etc-'));
  chmodSync(etc, 0o755);
  passwd = join(etc, 'passwd');
  writeFileSync(passwd, [bob, carol, av].map(passwdLine).join(''));
  chmodSync(passwd, 0o644);
  sink = await startSink();
  d = await start();
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await sink?.close();
  for (const u of [bob, carol, av]) if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

/** One RCPT of (sender, recipient); its reply line. */
async function rcpt(from: string, to: string): Promise<string> {
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
    return (await c.cmd(`RCPT TO:<${to}>`)).last;
  } finally {
    c.close();
  }
}

const GREYLISTED = /^451 4\.7\.1 greylisted, try again in \d+ seconds$/;

/** Retry until 250 (each earlier answer must be the greylisting 451); ms from `since` to the 250. */
async function retryUntilAccepted(from: string, to: string, since: number): Promise<number> {
  for (;;) {
    const r = await rcpt(from, to);
    if (r.startsWith('250 ')) return Date.now() - since;
    assert.match(r, GREYLISTED);
    assert.ok(Date.now() - since < 60_000, `still greylisted after a minute: ${r}`);
    await new Promise((res) => setTimeout(res, 300));
  }
}

/** AvengerUser's database as `dbutil -d` prints it, run as AvengerUser. */
async function dump(): Promise<string[]> {
  const r = await tool(av, 'dbutil', ['-d', join(av.home, 'greylist.db')]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

test(
  'first attempt 451, early retry 451, retry after the delay 250; state survives restarts; pairs independent',
  { skip },
  async () => {
    const s1 = 'one@remote.example';
    const s2 = 'two@remote.example';
    const B = `${bob.name}@a.example`;
    const C = `${carol.name}@a.example`;

    const t0 = Date.now();
    assert.equal(await rcpt(s1, B), `451 4.7.1 greylisted, try again in ${DELAY_S} seconds`);
    assert.match(await rcpt(s1, B), GREYLISTED, 'a retry before the delay');
    const seen = (await dump()).find((l) => l.startsWith(`127.0.0 ${s1} ${B.toLowerCase()} `));
    assert.ok(seen, 'the key: client network, sender, original recipient');
    assert.match(seen, /^\S+ \S+ \S+ \d+ \(\d+\)$/, 'value: the first-seen time; expiry: 2 days');

    // a restart of the daemon: the first-seen record is AvengerUser's file, it stays as it was
    await d.stop();
    d = await start();
    assert.ok((await dump()).includes(seen), 'the first-seen record is unchanged');

    const waited = await retryUntilAccepted(s1, B, t0);
    // times are whole seconds: a pass comes at least DELAY_S - 1 s after the first attempt
    assert.ok(waited >= (DELAY_S - 1) * 1000, `accepted ${waited} ms after the first attempt`);
    assert.ok(
      (await dump()).some((l) => l.startsWith(`127.0.0 ${s1} ${B.toLowerCase()} passed (`)),
      'remembered as passed',
    );

    // the same client with another recipient, or another sender, is greylisted on its own
    const t1 = Date.now();
    assert.equal(await rcpt(s1, C), `451 4.7.1 greylisted, try again in ${DELAY_S} seconds`);
    assert.equal(await rcpt(s2, B), `451 4.7.1 greylisted, try again in ${DELAY_S} seconds`);
    assert.match(await rcpt(s1, B), /^250 /, 'the passed pair is not greylisted again');

    // a pass survives a restart too
    await d.stop();
    d = await start();
    assert.match(await rcpt(s1, B), /^250 /, 'passed before the restart: accepted at once');

    const waitedC = await retryUntilAccepted(s1, C, t1);
    assert.ok(waitedC >= (DELAY_S - 1) * 1000, `second pair accepted ${waitedC} ms after its first attempt`);
  },
);

test('a message through the greylist is delivered (the pass is a provisional accept)', { skip }, async () => {
  const from = 'three@remote.example';
  const to = `${carol.name}+shop@a.example`;
  const t0 = Date.now();
  assert.match(await rcpt(from, to), GREYLISTED);
  await retryUntilAccepted(from, to, t0);
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    await c.cmd(`MAIL FROM:<${from}>`);
    assert.match((await c.cmd(`RCPT TO:<${to}>`)).last, /^250 /);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(`From: ${from}\r\nSubject: greylisted once\r\nMessage-ID: <grey-${process.pid}@x>\r\n\r\nhi\r\n.\r\n`);
    assert.match((await c.reply(30_000)).last, /^250 2\.0\.0 /);
  } finally {
    c.close();
  }
  assert.ok(sink.messages.some((m) => m.data.toString('latin1').includes(`<grey-${process.pid}@x>`)));
  // the user's extension travelled in the redirect: the key names carol+shop
  assert.ok((await dump()).some((l) => l.includes(` ${from} ${to.toLowerCase()} passed`)));
});
