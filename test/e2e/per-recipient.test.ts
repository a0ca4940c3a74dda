/**
 * Issue 14, item 2: different downstream answers per recipient, with real peers on both sides.
 * A real Postfix (Debian's) is the sending MTA, relaying through asmtpd (its relayhost):
 *  - to a real Postfix downstream that refuses one recipient at RCPT: that refusal reaches
 *    asmtpd's RCPT (the downstream transaction is open alongside the client's), so the sending
 *    Postfix bounces that recipient alone and delivers the others once;
 *  - to a real Dovecot LMTP (Debian's dovecot-lmtpd) that refuses one recipient at RCPT (unknown),
 *    one after the data for good (552 5.2.2 over quota) and one after the data for now (451 4.2.0):
 *    the client gets 250, the deliverable recipient has one copy, the deferred one is in asmtpd's
 *    hold queue (its retries come with the hold-queue issue), the over-quota one gets a DSN from
 *    asmtpd (RFC 3464), the unknown one is bounced by the sending Postfix — each alone.
 * Bounces go to a sender mailbox on the same downstream, so they can be read.
 * Then SMTPUTF8 (item 3): refused at MAIL with Dovecot behind (it offers none), delivered with
 * Postfix behind.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startPostfix, postfixUnavailableReason, type PostfixInstance } from '../support/postfix.js';
import { startDovecotLmtp, dovecotUnavailableReason, type DovecotLmtp } from '../support/dovecot.js';
import { SmtpClient } from '../support/smtp-client.js';
import { listHeld } from 'asmtpd/dist/relay/hold-queue.js';

const unavailable = postfixUnavailableReason() ?? dovecotUnavailableReason();
if (unavailable && process.env.CI) throw new Error(`CI needs Postfix and Dovecot for these tests: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Submit one message to a Postfix smtpd; returns its final reply. */
async function submit(port: number, from: string, to: string[], body: string): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await c.greeting();
    const r = await c.send(from, to, body);
    await c.cmd('QUIT').catch(() => undefined);
    return r.last;
  } finally {
    c.close();
  }
}

/** Postfix's log lines "to=<rcpt>, … status=X" for a recipient, as [status…]. */
function statuses(log: string, rcpt: string): string[] {
  return log
    .split('\n')
    .filter((l) => l.includes(`to=<${rcpt}>`) && / status=/.test(l))
    .map((l) => /status=(\w+)/.exec(l)![1]!);
}

async function until(pred: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) return;
    await sleep(100);
  }
}

describe('SMTP downstream (Postfix) refusing at RCPT', () => {
  let down: PostfixInstance;
  let d: Daemon;
  let sender: PostfixInstance;
  before(async () => {
    if (skip) return;
    down = await startPostfix({
      mode: 'maildir',
      mainCf: {
        smtpd_recipient_restrictions:
          'check_recipient_access inline:{ { refused@example.test = 550 5.1.1 no such mailbox here } }, permit_mynetworks, reject',
      },
    });
    d = await startDaemon({ conf: `RelayHost 127.0.0.1:${down.port}\nRelayNet 127.0.0.0/8` });
    sender = await startPostfix({ mode: { relayTo: `127.0.0.1:${d.port}` } });
  });
  after(async () => {
    await sender?.stop();
    await d?.stop();
    await down?.stop();
  });

  test(
    'Postfix → asmtpd → Postfix refusing one recipient at RCPT: the others get one copy each, the refused one bounces alone',
    { skip },
    async () => {
      const body =
        'From: sender@example.test\r\nSubject: three recipients\r\nMessage-ID: <pr-1@example.test>\r\n\r\nhello\r\n';
      assert.match(
        await submit(
          sender.port,
          'sender@example.test',
          ['good1@example.test', 'refused@example.test', 'good2@example.test'],
          body,
        ),
        /^250 /,
      );
      // delivered twice (good1, good2) plus the sending Postfix's bounce to the sender
      await down.waitForMessages(3, 30_000);
      await sleep(3000); // the sending Postfix retries within 1–5 s: give a duplicate the time to show
      const files = (await down.readMessages()).map((b) => b.toString('latin1'));
      const to = (who: string): string[] =>
        files.filter(
          (f) =>
            f.includes(`\nDelivered-To: ${who}\n`) ||
            f.startsWith(`Delivered-To: ${who}\n`) ||
            new RegExp(`^Delivered-To: ${who}$`, 'm').test(f),
        );
      assert.equal(to('good1@example.test').length, 1, 'good1: exactly one copy');
      assert.equal(to('good2@example.test').length, 1, 'good2: exactly one copy');
      assert.equal(to('refused@example.test').length, 0);
      const bounces = to('sender@example.test');
      assert.equal(bounces.length, 1, 'one bounce to the sender');
      assert.match(
        bounces[0]!,
        /<refused@example\.test>: host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.1\.1\s+<refused@example\.test>: Recipient address rejected: no such mailbox here\s+\(in reply to RCPT TO command\)/,
      );
      assert.doesNotMatch(
        bounces[0]!.split(/\ncontent-type: message\/delivery-status/i)[0]!,
        /good[12]@example\.test/,
        'the bounce names the refused recipient only',
      );
      const log = await sender.log();
      assert.deepEqual(statuses(log, 'good1@example.test'), ['sent']);
      assert.deepEqual(statuses(log, 'good2@example.test'), ['sent']);
      assert.deepEqual(statuses(log, 'refused@example.test'), ['bounced']);
      const rcpt = d.logs.find((l) => l.event === 'rcpt.decision' && l['to'] === 'refused@example.test');
      assert.equal(rcpt?.['downstream'], 'refused');
      assert.equal(
        rcpt?.['reply'],
        '550 5.1.1 <refused@example.test>: Recipient address rejected: no such mailbox here',
      );
    },
  );
});

describe('LMTP downstream (Dovecot) with mixed results', () => {
  let dv: DovecotLmtp;
  let d: Daemon;
  let sender: PostfixInstance;
  before(async () => {
    if (skip) return;
    dv = await startDovecotLmtp({ users: ['good', 'sender'], fullUsers: ['full'], brokenUsers: ['broken'] });
    d = await startDaemon({ conf: `RelayHost lmtp:127.0.0.1:${dv.port}\nRelayNet 127.0.0.0/8` });
    sender = await startPostfix({ mode: { relayTo: `127.0.0.1:${d.port}` } });
  });
  after(async () => {
    await sender?.stop();
    await d?.stop();
    await dv?.stop();
  });

  test(
    'Postfix → asmtpd → Dovecot LMTP (550 at RCPT, 552 and 451 after the data): one copy, the deferred one held, each refusal bounced alone',
    { skip },
    async () => {
      const filler = 'x'.repeat(2000); // over the 1-byte quota of "full"
      const body = `From: sender@example.test\r\nSubject: four recipients\r\nMessage-ID: <lmtp-1@example.test>\r\n\r\n${filler}\r\n`;
      assert.match(
        await submit(
          sender.port,
          'sender@example.test',
          ['good@example.test', 'unknown@example.test', 'full@example.test', 'broken@example.test'],
          body,
        ),
        /^250 /,
      );
      // the sender's mailbox gets two bounces: Postfix's (unknown, refused at RCPT) and asmtpd's DSN (full)
      await until(
        async () => (await dv.messages('sender')).length >= 2 && (await dv.messages('good')).length >= 1,
        30_000,
      );
      await sleep(3000); // time for a retry, had the sending Postfix been given a 4xx
      assert.equal((await dv.messages('good')).length, 1, 'the deliverable recipient: exactly one copy');
      assert.equal((await dv.messages('full')).length, 0);
      const log = await sender.log();
      assert.deepEqual(statuses(log, 'good@example.test'), ['sent']);
      assert.deepEqual(statuses(log, 'full@example.test'), ['sent'], 'asmtpd took it (and bounces it itself)');
      assert.deepEqual(statuses(log, 'broken@example.test'), ['sent'], 'asmtpd took it (and holds it)');
      assert.deepEqual(statuses(log, 'unknown@example.test'), ['bounced']);

      const held = await listHeld(join(d.dbDir, 'queue'));
      assert.equal(held.length, 1, 'one copy held, for the deferred recipient only');
      assert.deepEqual(held[0]!.to, ['broken@example.test']);
      assert.match(held[0]!.heldReason ?? '', /^451 4\.2\.0 <broken@example\.test> /);
      assert.ok(readFileSync(held[0]!.path, 'latin1').includes(filler), 'the whole message is held');

      const bounces = await Promise.all((await dv.messages('sender')).map((f) => readFileSync(f, 'latin1')));
      const dsn = bounces.find((b) => /^From: Mail Delivery System <MAILER-DAEMON@mx\.example\.test>$/m.test(b));
      const postfixBounce = bounces.find((b) => b !== dsn);
      assert.ok(dsn, 'asmtpd sent a DSN');
      assert.match(dsn!, /^Return-Path: <>$/m, 'from the null sender');
      assert.match(dsn!, /Content-Type: multipart\/report; report-type=delivery-status;/);
      assert.match(dsn!, /Content-Type: message\/delivery-status\r?\n\r?\nReporting-MTA: dns; mx\.example\.test\r?\n/);
      assert.match(dsn!, /Final-Recipient: rfc822; full@example\.test\r?\nAction: failed\r?\nStatus: 5\.2\.2\r?\n/);
      assert.match(dsn!, /Diagnostic-Code: smtp; 552 5\.2\.2 <full@example\.test> Quota exceeded/);
      assert.match(dsn!, /Content-Type: text\/rfc822-headers\r?\n\r?\n[\s\S]*^Message-ID: <lmtp-1@example\.test>$/m);
      assert.doesNotMatch(
        dsn!,
        /good@example\.test|broken@example\.test|unknown@example\.test/,
        'the DSN names the refused recipient only',
      );
      assert.ok(!dsn!.includes(filler), 'headers only, not the body');
      assert.ok(postfixBounce && postfixBounce.includes('<unknown@example.test>'), 'Postfix bounced the RCPT refusal');
      assert.doesNotMatch(postfixBounce!.split(/\ncontent-type: message\/delivery-status/i)[0]!, /good@|full@|broken@/);
      const done = d.logs.find((l) => l.event === 'dsn.sent');
      assert.equal(done?.['result'], 'delivered');
    },
  );

  test(
    'Dovecot LMTP behind: no SMTPUTF8 offered; MAIL with SMTPUTF8 is refused at MAIL (555 5.6.7), never after DATA',
    { skip },
    async () => {
      const c = await SmtpClient.connect(d.port);
      try {
        await c.greeting();
        const ehlo = await c.cmd('EHLO client.test');
        assert.ok(!ehlo.lines.some((l) => /SMTPUTF8/.test(l)), ehlo.lines.join(' | '));
        assert.ok(
          ehlo.lines.some((l) => /^250[- ]8BITMIME$/.test(l)),
          'Dovecot offers 8BITMIME: so do we',
        );
        const m = await c.cmd('MAIL FROM:<jos\xc3\xa9@example.test> SMTPUTF8');
        assert.equal(
          m.last,
          '555 5.6.7 SMTPUTF8 is not supported here: the mail store behind this server cannot take internationalized mail',
        );
      } finally {
        c.close();
      }
    },
  );
});

describe('SMTPUTF8 with Postfix behind', () => {
  let down: PostfixInstance;
  let d: Daemon;
  before(async () => {
    if (skip) return;
    down = await startPostfix({ mode: 'maildir', mainCf: { smtputf8_enable: 'yes' } });
    d = await startDaemon({ conf: `RelayHost 127.0.0.1:${down.port}\nRelayNet 127.0.0.0/8` });
  });
  after(async () => {
    await d?.stop();
    await down?.stop();
  });

  test('Postfix behind (SMTPUTF8 offered): an internationalized message is delivered', { skip }, async () => {
    const c = await SmtpClient.connect(d.port);
    try {
      await c.greeting();
      const ehlo = await c.cmd('EHLO client.test');
      assert.ok(
        ehlo.lines.some((l) => /^250[- ]SMTPUTF8$/.test(l)),
        ehlo.lines.join(' | '),
      );
      assert.equal((await c.cmd('MAIL FROM:<jos\xc3\xa9@example.test> SMTPUTF8')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<\xc3\xbcser@example.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      c.write('From: jos\xc3\xa9@example.test\r\nSubject: caf\xc3\xa9 \xe2\x98\x95\r\n\r\nbody\r\n.\r\n');
      assert.match((await c.reply(30_000)).last, /^250 2\.0\.0 /);
    } finally {
      c.close();
    }
    const [file] = await down.waitForMessages(1, 20_000);
    const text = readFileSync(file!, 'utf8');
    assert.match(text, /^Subject: café ☕$/m);
    assert.match(text, /^Delivered-To: üser@example\.test$/m);
  });
});
