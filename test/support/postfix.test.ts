// Tests of the private-Postfix harness (test/support/postfix.ts) against the real Postfix.
// In CI (process.env.CI set) a missing Postfix is a FAILURE; elsewhere these tests are
// skipped with the reason printed.
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { test } from 'node:test';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { freePort, requirePostfix, startPostfix, type PostfixInstance } from './postfix.js';

/** Test message with awkward content: leading dots, a long line, 8-bit UTF-8, CRLF line ends. */
function rawMessage(tag: string): Buffer {
  const lines = [
    'From: Alice <alice@sender.test>',
    'To: Bob <bob@example.test>',
    `Subject: harness ${tag} =?UTF-8?Q?gr=C3=BC=C3=9Fe?=`,
    `Message-ID: <${tag}.${Date.now()}@sender.test>`,
    'Date: Fri, 21 Nov 2025 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'X-Folded: first part',
    '\tsecond part',
    '',
    `Body of ${tag}.`,
    '.a line starting with a dot',
    '..two dots',
    '.',
    'Grüße aus Köln — 8-bit UTF-8 ✓',
    'x'.repeat(1500),
    '',
    'end',
  ];
  return Buffer.from(lines.join('\r\n') + '\r\n', 'utf8');
}

/** Splits off the headers Postfix prepends and checks that only those were added. */
function stripPrepended(delivered: string, allowed: RegExp): { prepended: string[]; rest: string } {
  const lines = delivered.split(/(?<=\n)/);
  const prepended: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (!allowed.test(l)) break;
    let h = l;
    i++;
    while (i < lines.length && /^[ \t]/.test(lines[i]!)) h += lines[i++]!;
    prepended.push(h);
  }
  return { prepended, rest: lines.slice(i).join('') };
}

async function send(pf: PostfixInstance, from: string, to: string[], raw: Buffer): Promise<void> {
  const tr = nodemailer.createTransport({ host: pf.host, port: pf.port, secure: false, ignoreTLS: true });
  try {
    const info = await tr.sendMail({ envelope: { from, to }, raw });
    assert.deepEqual([...info.accepted].map(String).sort(), [...to].sort());
  } finally {
    tr.close();
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('connect', () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });
}

test('postfix harness: maildir mode delivers any recipient to the one Maildir, byte-identical', async (t) => {
  if (!requirePostfix(t)) return;
  const pf = await startPostfix({ mode: 'maildir' });
  try {
    assert.ok(pf.maildir && existsSync(pf.maildir));
    const raw = rawMessage('maildir');
    await send(pf, 'alice@sender.test', ['bob@example.test', 'carol@other-domain.test'], raw);
    const files = await pf.waitForMessages(2, 15_000);
    assert.equal(files.length, 2); // one file per recipient
    const msgs = await pf.readMessages();
    const expected = raw.toString('utf8').replace(/\r\n/g, '\n'); // Maildir stores LF line ends
    const rcpts = new Set<string>();
    for (const m of msgs) {
      const { prepended, rest } = stripPrepended(
        m.toString('utf8'),
        /^(Return-Path|X-Original-To|Delivered-To|Received):/i,
      );
      assert.equal(rest, expected, 'message after the prepended headers must be byte-identical');
      const names = prepended.map((h) => h.slice(0, h.indexOf(':')).toLowerCase());
      assert.deepEqual(names.sort(), ['delivered-to', 'received', 'return-path', 'x-original-to']);
      assert.ok(prepended.some((h) => /^Return-Path: <alice@sender\.test>\n$/.test(h)));
      for (const h of prepended) {
        const m2 = /^Delivered-To: (\S+)\n$/.exec(h);
        if (m2) rcpts.add(m2[1]!);
      }
    }
    assert.deepEqual([...rcpts].sort(), ['bob@example.test', 'carol@other-domain.test']);
    assert.equal(await pf.queueSize(), 0);
  } finally {
    await pf.stop();
  }
  assert.equal(existsSync(pf.dir), false, 'stop() removes the temp dir');
  assert.equal(await portOpen(pf.port), false, 'stop() closes the port');
});

test('postfix harness: relay mode relays to an smtp-server sink unchanged', async (t) => {
  if (!requirePostfix(t)) return;
  const got: { from: string; to: string[]; data: Buffer }[] = [];
  const sink = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        got.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
        });
        cb();
      });
    },
  });
  const sinkPort = await freePort();
  await new Promise<void>((r) => sink.listen(sinkPort, '127.0.0.1', () => r()));
  const pf = await startPostfix({ mode: { relayTo: `127.0.0.1:${sinkPort}` } });
  try {
    assert.equal(pf.maildir, undefined);
    const raw = rawMessage('relay');
    await send(pf, 'alice@sender.test', ['bob@example.test', 'dave@elsewhere.test'], raw);
    const deadline = Date.now() + 15_000;
    while (got.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    assert.equal(got.length, 1, `sink got nothing\n${await pf.log()}`);
    const m = got[0]!;
    assert.equal(m.from, 'alice@sender.test');
    assert.deepEqual(m.to.sort(), ['bob@example.test', 'dave@elsewhere.test']);
    const { prepended, rest } = stripPrepended(m.data.toString('utf8'), /^Received:/i);
    assert.equal(prepended.length, 1, 'Postfix prepends exactly one Received header');
    assert.ok(prepended[0]!.endsWith('\r\n'));
    assert.equal(rest, raw.toString('utf8'), 'relayed message must be byte-identical after the Received header');
    // queue drains
    const qDeadline = Date.now() + 10_000;
    while ((await pf.queueSize()) > 0 && Date.now() < qDeadline) await new Promise((r) => setTimeout(r, 25));
    assert.equal(await pf.queueSize(), 0);
  } finally {
    await pf.stop();
    await new Promise<void>((r) => sink.close(() => r()));
  }
});

test('postfix harness: several instances at once, each with its own port and dir, all stopped cleanly', async (t) => {
  if (!requirePostfix(t)) return;
  const fixedPort = await freePort();
  const [a, b, c] = await Promise.all([
    startPostfix({ mode: 'maildir' }),
    startPostfix({ mode: 'maildir', smtpdPort: fixedPort }),
    startPostfix({ mode: { relayTo: '127.0.0.1:9' } }),
  ]);
  try {
    assert.equal(b!.port, fixedPort);
    assert.equal(new Set([a!.port, b!.port, c!.port]).size, 3);
    assert.equal(new Set([a!.dir, b!.dir, c!.dir]).size, 3);
    await Promise.all([
      send(a!, 's@x.test', ['only-a@example.test'], rawMessage('a')),
      send(b!, 's@x.test', ['only-b@example.test'], rawMessage('b')),
    ]);
    const [fa, fb] = await Promise.all([a!.waitForMessages(1, 15_000), b!.waitForMessages(1, 15_000)]);
    assert.equal(fa.length, 1);
    assert.equal(fb.length, 1);
    assert.match((await a!.readMessages())[0]!.toString(), /^Delivered-To: only-a@example\.test$/m);
    assert.match((await b!.readMessages())[0]!.toString(), /^Delivered-To: only-b@example\.test$/m);
  } finally {
    await Promise.all([a!.stop(), b!.stop(), c!.stop()]);
  }
  for (const i of [a!, b!, c!]) {
    assert.equal(existsSync(i.dir), false);
    assert.equal(await portOpen(i.port), false);
  }
  await a!.stop(); // idempotent
});
