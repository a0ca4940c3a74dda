import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { reply } from '../reply/reply.js';
import { listHeld } from './hold-queue.js';
import { withRecipientSplit } from './recipient-split.js';
import { captureLogger, makeTempDir, writeMessage } from '../testing/relay.js';
import type { DeliveryResult, OutgoingMessage, Relay } from './types.js';

/** A relay (a fake: the unit under test is the wrapper) answering the message with `first`, anything else (the DSN) with 250. */
function fakeRelay(first: DeliveryResult): Relay & { sent: { msg: OutgoingMessage; body: string }[] } {
  const sent: { msg: OutgoingMessage; body: string }[] = [];
  return {
    sent,
    async deliver(msg) {
      sent.push({ msg, body: (await readFile(msg.spoolPath)).toString('utf8') });
      return sent.length === 1 ? first : { kind: 'accepted', response: '250 2.0.0 Ok', ms: 1 };
    },
    close: async () => {},
    describe: () => 'lmtp 127.0.0.1:24 (pooled)',
  };
}

const MIXED: DeliveryResult = {
  kind: 'per-recipient',
  ms: 5,
  results: [
    { to: 'good@example.net', kind: 'accepted' },
    { to: 'full@example.net', kind: 'rejected', reply: reply(552, '5.2.2', '<full@example.net> Quota exceeded') },
    { to: 'later@example.net', kind: 'deferred', reply: reply(451, '4.2.0', '<later@example.net> try later') },
  ],
};

test('mixed results: accepted; the deferred recipient held (fsynced, with its reason), a DSN for the refused one', async () => {
  const dir = await makeTempDir('split');
  const inner = fakeRelay(MIXED);
  const log = captureLogger();
  const relay = withRecipientSplit(inner, {
    dir: join(dir, 'queue'),
    hostname: 'mx.example.org',
    holdOnFailure: false,
  });
  const msg = await writeMessage(dir, {
    body: 'Subject: hello\r\nMessage-ID: <m1@example.org>\r\n\r\nthe body\r\n',
    to: ['good@example.net', 'full@example.net', 'later@example.net'],
  });
  const r = await relay.deliver(msg, log);
  assert.equal(r.kind, 'accepted');
  const held = await listHeld(join(dir, 'queue'));
  assert.equal(held.length, 1);
  assert.deepEqual(held[0]!.to, ['later@example.net']);
  assert.equal(held[0]!.heldReason, '451 4.2.0 <later@example.net> try later');
  assert.equal(inner.sent.length, 2, 'the message, then the DSN');
  const dsn = inner.sent[1]!;
  assert.equal(dsn.msg.from, '', 'from the null sender');
  assert.deepEqual(dsn.msg.to, ['sender@example.org']);
  assert.match(dsn.body, /^Content-Type: multipart\/report; report-type=delivery-status;\r\n\tboundary="/m);
  assert.match(
    dsn.body,
    /\r\nFinal-Recipient: rfc822; full@example\.net\r\nAction: failed\r\nStatus: 5\.2\.2\r\nRemote-MTA: dns; lmtp 127\.0\.0\.1:24 \(pooled\)\r\nDiagnostic-Code: smtp; 552 5\.2\.2 <full@example\.net> Quota exceeded\r\n/,
  );
  assert.match(
    dsn.body,
    /Content-Type: text\/rfc822-headers\r\n\r\nReceived: from test by relay\.test; [^\r]+\r\nSubject: hello\r\nMessage-ID: <m1@example\.org>\r\n/,
  );
  assert.ok(!dsn.body.includes('the body'), 'headers only');
  assert.ok(!/good@|later@/.test(dsn.body), 'the DSN names the refused recipient only');
  assert.deepEqual(
    log.lines.filter((l) => l.event === 'dsn.sent').map((l) => l.fields['result']),
    ['delivered'],
  );
});

test("no DSN for a null sender; nothing accepted → the result passes through (the first 4xx is the client's reply)", async () => {
  const dir = await makeTempDir('split-null');
  const inner = fakeRelay(MIXED);
  const log = captureLogger();
  const relay = withRecipientSplit(inner, {
    dir: join(dir, 'queue'),
    hostname: 'mx.example.org',
    holdOnFailure: false,
  });
  const r = await relay.deliver(await writeMessage(dir, { body: 'Subject: x\r\n\r\nx\r\n', from: '' }), log);
  assert.equal(r.kind, 'accepted');
  assert.equal(inner.sent.length, 1, 'no DSN to <>');
  assert.equal(log.lines.find((l) => l.event === 'dsn.sent')?.fields['result'], 'none for a null sender');

  const noneAccepted: DeliveryResult = {
    kind: 'per-recipient',
    ms: 1,
    results: MIXED.kind === 'per-recipient' ? MIXED.results.slice(1) : [],
  };
  const passthrough = await withRecipientSplit(fakeRelay(noneAccepted), {
    dir: join(dir, 'q2'),
    hostname: 'mx.example.org',
    holdOnFailure: false,
  }).deliver(await writeMessage(dir, { body: 'x\r\n' }), log);
  assert.equal(passthrough.kind, 'per-recipient');
  assert.deepEqual(await listHeld(join(dir, 'q2')), []);
  // with HoldOnFailure the deferred one is held and the refused one bounced even then
  const held = await withRecipientSplit(fakeRelay(noneAccepted), {
    dir: join(dir, 'q3'),
    hostname: 'mx.example.org',
    holdOnFailure: true,
  }).deliver(await writeMessage(dir, { body: 'x\r\n' }), log);
  assert.equal(held.kind, 'accepted');
  assert.deepEqual(
    (await listHeld(join(dir, 'q3'))).map((h) => h.to),
    [['later@example.net']],
  );
});
