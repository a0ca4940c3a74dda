/**
 * End to end with a real Postfix (Debian's) as the downstream MTA: asmtpd on a loopback port
 * relays to a private Postfix instance that delivers to a Maildir.
 * In CI a missing Postfix is a failure (.ci/run installs it); elsewhere the tests are skipped with
 * the reason.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startPostfix, postfixUnavailableReason, type PostfixInstance } from '../support/postfix.js';
import { SmtpClient } from '../support/smtp-client.js';

const unavailable = postfixUnavailableReason();
if (unavailable && process.env.CI) throw new Error(`CI needs a real Postfix for these tests: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let pf: PostfixInstance;
let d: Daemon;

before(async () => {
  if (unavailable) return;
  pf = await startPostfix({
    mode: 'maildir',
    mainCf: {
      smtpd_recipient_restrictions:
        'check_recipient_access inline:{ { refused@example.test = REJECT no such mailbox here } }, permit_mynetworks, reject',
    },
  });
  d = await startDaemon({ conf: `RelayHost 127.0.0.1:${pf.port}\nRelayNet 127.0.0.0/8` });
});
after(async () => {
  await d?.stop();
  await pf?.stop();
});

const BODY =
  'From: Bob <bob@remote.test>\r\nTo: someone@example.test\r\nSubject: through postfix\r\nMessage-ID: <pf-1@remote.test>\r\n\r\n' +
  'first\r\n.dot line\r\n\xe9\xe8 eight-bit\r\n\r\n  indented\r\nlast\r\n';

test(
  "accepted mail is in Postfix's Maildir with Received and X-Avenger added and the body intact",
  { skip },
  async () => {
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    const r = await c.send('bob@remote.test', ['someone@example.test'], BODY);
    c.close();
    assert.match(r.last, /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)$/);
    const id = r.last.split(' ').at(-1)!;
    const [file] = await pf.waitForMessages(1, 20_000);
    const stored = readFileSync(file!).toString('latin1');
    // Postfix stores Maildir files with LF line endings and prepends Return-Path, Delivered-To and its Received.
    const ours = stored.indexOf('Received: from client.test ([127.0.0.1])');
    assert.ok(ours > 0, stored);
    const fromOurs = stored.slice(ours);
    assert.match(
      fromOurs.replace(/\n\t/g, ' '),
      new RegExp(
        `^Received: from client\\.test \\(\\[127\\.0\\.0\\.1\\]\\) by mx\\.example\\.test \\(asmtpd [0-9.]+\\) with ESMTP id ${id} for <someone@example\\.test>;`,
      ),
    );
    assert.match(
      fromOurs,
      /\nX-Avenger: version=[0-9.]+; receiver=mx\.example\.test; client-ip=127\.0\.0\.1;\s+client-port=\d+;\s+spf=none\n/,
    );
    assert.ok(fromOurs.endsWith(BODY.replace(/\r\n/g, '\n')), 'the original message follows, byte for byte');
    assert.match(stored, /^Return-Path: <bob@remote\.test>\n/);
  },
);

test('a Postfix 5xx for a recipient is passed back to the client as is', { skip }, async () => {
  const c = await SmtpClient.connect(d.port);
  await c.greeting();
  const r = await c.send('bob@remote.test', ['refused@example.test'], 'Subject: x\r\n\r\nbody\r\n');
  c.close();
  assert.equal(r.last, '554 5.7.1 <refused@example.test>: Recipient address rejected: no such mailbox here');
});

test('Postfix down → 451 4.4.1, and mail flows again once it is back', { skip }, async () => {
  const pf2 = await startPostfix({ mode: 'maildir' });
  const d2 = await startDaemon({ conf: `RelayHost 127.0.0.1:${pf2.port}\nRelayNet 127.0.0.0/8` });
  try {
    const port = pf2.port;
    await pf2.stop();
    const c = await SmtpClient.connect(d2.port);
    await c.greeting();
    const r = await c.send('bob@remote.test', ['someone@example.test'], 'Subject: x\r\n\r\nbody\r\n');
    assert.match(r.last, /^451 4\.4\.1 /);
    c.close();
    const pf3 = await startPostfix({ mode: 'maildir', smtpdPort: port });
    try {
      const c2 = await SmtpClient.connect(d2.port);
      await c2.greeting();
      assert.match(
        (await c2.send('bob@remote.test', ['someone@example.test'], 'Subject: y\r\n\r\nbody\r\n')).last,
        /^250 /,
      );
      c2.close();
      assert.equal((await pf3.waitForMessages(1, 20_000)).length, 1);
    } finally {
      await pf3.stop();
    }
  } finally {
    await d2.stop();
  }
});
