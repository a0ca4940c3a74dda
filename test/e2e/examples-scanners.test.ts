/**
 * The scanner examples (examples/dot-avenger/clamav, examples/dot-avenger/spamassassin) end to end,
 * against the real daemons from Debian: a private clamd whose signature database the test makes
 * with sigtool (test/support/clamd.ts), a private spamd with the rules Debian ships
 * (test/support/spamd.ts). The example files are installed verbatim into two test users'
 * ~/.avenger; the only test-specific files are the ones the README tells a user to write,
 * ~/.avenger/clamd.conf (the LocalSocket) and ~/.avenger/spamc.conf (-d, -p). Mail goes through the
 * real asmtpd daemon to a sink; the body tests run as the users, and clamdscan/spamc talk to the
 * daemons. Needs root (accounts, the daemons' own accounts); in CI that is a failure if missing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, passwdLine, removeUser, writeScript, type TestUser } from '../support/users.js';
import { clamdUnavailableReason, EICAR, startClamd, TEST_SIGNATURE_FOUND, type Clamd } from '../support/clamd.js';
import { readProc } from '../support/procs.js';
import { GTUBE, spamdUnavailableReason, startSpamd, type Spamd } from '../support/spamd.js';

const EXAMPLES = new URL('../../../examples/dot-avenger/', import.meta.url).pathname;

const unavailable = canCreateUsers() ?? clamdUnavailableReason() ?? spamdUnavailableReason();
if (unavailable && process.env.CI) throw new Error(`CI runs as root with clamd and spamd installed: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let clam: TestUser, spam: TestUser, av: TestUser;
let etc: string;
let sink: Sink;
let clamd: Clamd;
let spamd: Spamd;
let d: Daemon;

/** Copy examples/dot-avenger/EXAMPLE/FILE verbatim into the user's ~/.avenger (scripts, 0755). */
function install(u: TestUser, example: string, file: string): void {
  const body = readFileSync(join(EXAMPLES, example, file), 'utf8');
  assert.ok(body.startsWith('#!/bin/sh\n'));
  writeScript(u, file, body, 0o755);
  assert.equal(readFileSync(join(u.home, '.avenger', file), 'utf8'), body);
}

/** A data file in ~/.avenger, owned by the user, 0644 (what the README tells the user to write). */
function userFile(u: TestUser, name: string, text: string): void {
  const path = join(u.home, '.avenger', name);
  writeFileSync(path, text);
  chownSync(path, u.uid, u.gid);
  chmodSync(path, 0o644);
}

before(async () => {
  if (unavailable) return;
  clam = createUser('exclam');
  spam = createUser('exspam');
  av = createUser('exscnav');
  // started side by side; whatever started is stopped by after() even when another failed
  const started = await Promise.allSettled([startClamd(), startSpamd(), startSink()]);
  if (started[0].status === 'fulfilled') clamd = started[0].value;
  if (started[1].status === 'fulfilled') spamd = started[1].value;
  if (started[2].status === 'fulfilled') sink = started[2].value;
  for (const r of started) if (r.status === 'rejected') throw r.reason;

  install(clam, 'clamav', 'rcpt');
  install(clam, 'clamav', 'clamav-check');
  userFile(clam, 'clamd.conf', `LocalSocket ${clamd.socket}\n`);

  install(spam, 'spamassassin', 'rcpt');
  install(spam, 'spamassassin', 'spam-check');
  userFile(spam, 'spamc.conf', `-d ${spamd.host}\n-p ${spamd.port}\n`);

  etc = mkdtempSync(join(tmpdir(), 'asmtpd-scanners-etc-'));
  chmodSync(etc, 0o755);
  const passwd = join(etc, 'passwd');
  writeFileSync(passwd, [clam, spam, av].map(passwdLine).join(''));
  chmodSync(passwd, 0o644);
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain a.example',
      `PasswdFile ${passwd}`,
      `AvengerUser ${av.name}`,
      'AvengerTimeout 60s',
      `RelayHost 127.0.0.1:${sink.port}`,
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  await Promise.all([clamd?.stop(), spamd?.stop(), sink?.close()]);
  for (const u of [clam, spam, av]) if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

/** One transaction to one recipient: the RCPT reply and the DATA reply. */
async function send(to: string, message: string): Promise<{ rcpt: string; data: string }> {
  const c = await SmtpClient.connect(d.port);
  try {
    await c.greeting();
    await c.cmd('EHLO client.example');
    assert.equal((await c.cmd('MAIL FROM:<sender@remote.example>')).code, 250);
    const rcpt = (await c.cmd(`RCPT TO:<${to}>`)).last;
    assert.equal(rcpt, '250 2.1.5 recipient ok');
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(message.replace(/(^|\r\n)\./g, '$1..'));
    c.write('.\r\n');
    return { rcpt, data: (await c.reply(90_000)).last };
  } finally {
    c.close();
  }
}

let serial = 0;
/** A well-formed message (Date, Message-ID, …) with the given body lines, or a multipart one. */
function message(to: string, body: string[], extraHeaders: string[] = []): { text: string; id: string } {
  const id = `<scanners-${process.pid}-${++serial}@client.example>`;
  const text = [
    'From: Sender <sender@remote.example>',
    `To: <${to}>`,
    'Subject: quarterly figures',
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: ${id}`,
    'MIME-Version: 1.0',
    ...extraHeaders,
    '',
    ...body,
    '',
  ].join('\r\n');
  return { text, id };
}

/** A multipart/mixed message with a text part and a base64 attachment holding `attachment`. */
function withAttachment(to: string, attachment: string): { text: string; id: string } {
  const b64 = Buffer.from(attachment).toString('base64');
  return message(
    to,
    [
      '--b1',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      'The figures are attached.',
      '--b1',
      'Content-Type: application/octet-stream; name="figures.com"',
      'Content-Transfer-Encoding: base64',
      'Content-Disposition: attachment; filename="figures.com"',
      '',
      b64,
      '--b1--',
    ],
    ['Content-Type: multipart/mixed; boundary="b1"'],
  );
}

const plain = (to: string, lines: string[]): { text: string; id: string } =>
  message(to, lines, ['Content-Type: text/plain; charset=us-ascii']);

function delivered(id: string): boolean {
  return sink.messages.some((m) => m.data.toString('latin1').includes(`Message-ID: ${id}`));
}

/** Wait (10 s at most) for a condition about a daemon's log; fail with the log. */
async function until(cond: () => Promise<boolean>, log: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`condition not met; log:\n${await log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const QUEUED = /^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/;

// --- ClamAV ------------------------------------------------------------------------------------------

test(
  'clamav: the test signature is refused with 554 5.7.1 naming it (plain text and base64 attachment); never delivered',
  { skip },
  async (t) => {
    const to = `${clam.name}@a.example`;
    const refused = `554 5.7.1 message refused: ClamAV found ${TEST_SIGNATURE_FOUND}`;
    const inText = plain(to, ['Please run this:', EICAR, 'Thanks.']);
    const attached = withAttachment(to, EICAR);
    assert.ok(!attached.text.includes('EICAR'), 'the attachment is base64: only MIME decoding finds it');
    for (const [why, m] of [
      ['in the text', inText],
      ['in an attachment', attached],
    ] as const) {
      const r = await send(to, m.text);
      t.diagnostic(`DATA → ${r.data}`);
      assert.equal(r.data, refused, why);
      assert.ok(!delivered(m.id), `not delivered: ${why}`);
    }
    // the real clamd scanned both streams, and the body test ran as the user
    const found = `instream(local): ${TEST_SIGNATURE_FOUND} FOUND`;
    await until(
      async () => (await clamd.log()).split(found).length - 1 === 2,
      () => clamd.log(),
    );
    const done = await d.waitLog((l) => l.event === 'bodytest.done' && l.user === clam.name && l.verdict === 'refuse');
    assert.deepEqual(done.argv, [join(clam.home, '.avenger', 'clamav-check')]);
    assert.equal(done.reply, refused);
    assert.equal(done.detail, 'exit 100');
  },
);

test('clamav: a clean message (and a clean attachment) is accepted with 250 and delivered', { skip }, async (t) => {
  const to = `${clam.name}@a.example`;
  for (const m of [plain(to, ['The figures look fine.']), withAttachment(to, 'harmless bytes\n')]) {
    const r = await send(to, m.text);
    t.diagnostic(`DATA → ${r.data}`);
    assert.match(r.data, QUEUED);
    assert.ok(delivered(m.id));
  }
  await until(
    async () => (await clamd.log()).split('instream(local): OK').length - 1 === 2,
    () => clamd.log(),
  );
});

// --- SpamAssassin ------------------------------------------------------------------------------------

test(
  "spamassassin: GTUBE is refused with 554 5.7.1 carrying spamd's score, required score and rules; never delivered",
  { skip },
  async (t) => {
    const to = `${spam.name}@a.example`;
    const m = plain(to, ['Buy now.', GTUBE]);
    const r = await send(to, m.text);
    t.diagnostic(`DATA → ${r.data}`);
    // GTUBE alone scores 1000; the other rules that hit depend on the message and the rule set
    const reply =
      /^554 5\.7\.1 message refused as spam: SpamAssassin score (\d+)\.\d, required 5\.0 \(GTUBE(,[A-Z0-9_]+){0,4}\)$/.exec(
        r.data,
      );
    assert.ok(reply, r.data);
    assert.ok(Number(reply[1]) > 900, r.data);
    assert.ok(!delivered(m.id));
    // spamd judged it, for this user (spamc sends the name of the account it runs as)
    const result = /spamd: result: Y\s+(\d+) - (\S+) .*user=(\w+)/;
    await until(
      async () => result.test(spamd.log()),
      async () => spamd.log(),
    );
    const verdict = result.exec(spamd.log())!;
    assert.equal(verdict[3], spam.name);
    assert.ok(verdict[2]!.split(',').includes('GTUBE'));
    assert.equal(verdict[1], reply[1], 'the reply carries the score spamd logged (whole points)');
    const done = await d.waitLog((l) => l.event === 'bodytest.done' && l.user === spam.name && l.verdict === 'refuse');
    assert.deepEqual(done.argv, [join(spam.home, '.avenger', 'spam-check')]);
  },
);

test('spamassassin: a clean message is accepted with 250 and delivered', { skip }, async (t) => {
  const to = `${spam.name}@a.example`;
  const m = plain(to, ['Hello,', '', 'the meeting is moved to Thursday at ten.', '', 'Regards,', 'Sam']);
  const r = await send(to, m.text);
  t.diagnostic(`DATA → ${r.data}`);
  assert.match(r.data, QUEUED);
  assert.ok(delivered(m.id));
  await until(
    async () => new RegExp(`spamd: result: \\.\\s+-?\\d+ - .*user=${spam.name}`).test(spamd.log()),
    async () => spamd.log(),
  );
});

test(
  "spamassassin: a message over spamc's size limit (500 KB) is not sent to spamd and is accepted",
  { skip },
  async (t) => {
    const to = `${spam.name}@a.example`;
    const filler = Array.from({ length: 12000 }, (_, i) => `line ${i} of a long report, nothing to see here at all`);
    const m = plain(to, [GTUBE, ...filler]);
    assert.ok(m.text.length > 500 * 1024);
    const before = spamd.log().split('result:').length;
    const r = await send(to, m.text);
    t.diagnostic(`DATA → ${r.data}`);
    assert.match(r.data, QUEUED);
    assert.ok(delivered(m.id));
    assert.equal(spamd.log().split('result:').length, before, 'spamd never saw it');
  },
);

// --- the scanners down: defer, never accept unscanned --------------------------------------------------

test('clamav: clamd down → 451 4.7.1, for a clean message too; nothing delivered', { skip }, async (t) => {
  const to = `${clam.name}@a.example`;
  await clamd.stop();
  assert.equal(readProc(clamd.pid), null, 'clamd is gone');
  const deferred = '451 4.7.1 message could not be scanned for viruses, try again later';
  for (const m of [plain(to, ['The figures look fine.']), plain(to, [EICAR])]) {
    const r = await send(to, m.text);
    t.diagnostic(`DATA → ${r.data}`);
    assert.equal(r.data, deferred);
    assert.ok(!delivered(m.id));
  }
});

test('spamassassin: spamd down → 451 4.7.1, GTUBE or not; nothing delivered', { skip }, async (t) => {
  const to = `${spam.name}@a.example`;
  await spamd.stop();
  assert.equal(readProc(spamd.pid), null, 'spamd is gone');
  const deferred = '451 4.7.1 message could not be checked for spam, try again later';
  for (const m of [plain(to, ['the meeting is moved to Thursday.']), plain(to, [GTUBE])]) {
    const r = await send(to, m.text);
    t.diagnostic(`DATA → ${r.data}`);
    assert.equal(r.data, deferred);
    assert.ok(!delivered(m.id));
  }
});
