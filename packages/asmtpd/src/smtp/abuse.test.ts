import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AbuseDetector, commandVerb, isHttpRequestLine, type AbuseKind } from './abuse.js';

const EHLO_REPLY = ['mx.example.test Nice to meet you', 'PIPELINING', '8BITMIME', 'SIZE 100'];

function detector(): { d: AbuseDetector; seen: Array<[AbuseKind, Record<string, unknown>]> } {
  const seen: Array<[AbuseKind, Record<string, unknown>]> = [];
  return { d: new AbuseDetector((k, detail) => seen.push([k, detail])), seen };
}
const b = (s: string): Buffer => Buffer.from(s, 'latin1');

test('pre-greeting: any byte before the banner, reported once; nothing after a plain dialogue', () => {
  const { d, seen } = detector();
  d.input(b('EH'), false);
  d.input(b('LO x\r\n'), false);
  d.replied(220, ['mx ESMTP']);
  d.dispatched('EHLO');
  d.replied(250, EHLO_REPLY);
  assert.deepEqual(seen, [['pre-greeting', { bytes: 2, sample: 'EH' }]]);

  const ok = detector();
  ok.d.replied(220, ['mx ESMTP']);
  ok.d.input(b('HELO x\r\n'), false);
  ok.d.dispatched('HELO');
  ok.d.replied(250, ['mx']);
  ok.d.input(b('MAIL FROM:<a@b>\r\n'), false);
  ok.d.dispatched('MAIL');
  ok.d.replied(250, ['2.1.0 ok']);
  ok.d.input(b('DATA\r\n'), false);
  ok.d.dispatched('DATA');
  ok.d.replied(354, ['go']);
  ok.d.input(b('Subject: x\r\n\r\nline\r\nmore\r\n.\r\n'), true);
  ok.d.messageEnded(b(''));
  ok.d.replied(250, ['queued']);
  ok.d.input(b('QUIT\r\n'), false);
  assert.deepEqual(ok.seen, []);
});

test('unadvertised: after HELO, a second command before the reply, or in the same segment', () => {
  const late = detector();
  late.d.replied(220, ['mx']);
  late.d.input(b('HELO x\r\n'), false);
  late.d.dispatched('HELO');
  late.d.input(b('MAIL FROM:<a@b>\r\n'), false); // the HELO reply is not written yet
  assert.deepEqual(late.seen, [['unadvertised', { after: 'HELO', sample: 'MAIL FROM:<a@b>\\r\\n' }]]);

  const same = detector();
  same.d.replied(220, ['mx']);
  same.d.dispatched('HELO');
  same.d.replied(250, ['mx']);
  same.d.input(b('MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n'), false);
  same.d.input(b('DATA\r\nSubject: x\r\n'), false);
  assert.deepEqual(
    same.seen.map(([k, d]) => [k, d.after]),
    [['unadvertised', 'MAIL']],
  );
});

test('unadvertised: pipelining the EHLO itself; allowed once the EHLO reply offered PIPELINING', () => {
  const early = detector();
  early.d.replied(220, ['mx']);
  early.d.input(b('EHLO x\r\nMAIL FROM:<a@b>\r\n'), false);
  assert.deepEqual(
    early.seen.map(([k, d]) => [k, d.after]),
    [['unadvertised', 'EHLO']],
  );

  const rfc2920 = detector();
  rfc2920.d.replied(220, ['mx']);
  rfc2920.d.input(b('EHLO x\r\n'), false);
  rfc2920.d.dispatched('EHLO');
  rfc2920.d.replied(250, EHLO_REPLY);
  rfc2920.d.input(b('MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n'), false);
  rfc2920.d.dispatched('MAIL');
  rfc2920.d.input(b('RCPT TO:<e@f>\r\n'), false);
  rfc2920.d.replied(250, ['ok']);
  rfc2920.d.messageEnded(b('QUIT\r\n'));
  assert.equal(rfc2920.seen.length, 0);
  // a new EHLO withdraws the offer until its own reply
  rfc2920.d.dispatched('EHLO');
  rfc2920.d.input(b('MAIL FROM:<a@b>\r\n'), false);
  assert.deepEqual(
    rfc2920.seen.map(([k, d]) => [k, d.after]),
    [['unadvertised', 'EHLO']],
  );

  const noOffer = detector(); // an EHLO reply without PIPELINING offers nothing
  noOffer.d.replied(220, ['mx']);
  noOffer.d.dispatched('EHLO');
  noOffer.d.replied(250, ['mx', '8BITMIME']);
  noOffer.d.input(b('MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n'), false);
  assert.equal(noOffer.seen.length, 1);
});

test('unadvertised: bytes after the end-of-data dot, or before its reply, without PIPELINING', () => {
  const same = detector();
  same.d.replied(220, ['mx']);
  same.d.dispatched('HELO');
  same.d.replied(250, ['mx']);
  same.d.messageEnded(b('QUIT\r\n'));
  assert.deepEqual(same.seen, [['unadvertised', { after: '.', sample: 'QUIT\\r\\n' }]]);

  const late = detector();
  late.d.replied(220, ['mx']);
  late.d.messageEnded(b(''));
  late.d.input(b('QUIT\r\n'), false);
  assert.deepEqual(
    late.seen.map(([k, d]) => [k, d.after]),
    [['unadvertised', '.']],
  );
});

test('message content is never read as commands; post reported once with the line', () => {
  const { d, seen } = detector();
  d.replied(220, ['mx']);
  d.dispatched('HELO');
  d.replied(250, ['mx']);
  d.dispatched('DATA');
  d.replied(354, ['go']);
  d.input(b('a\r\nb\r\nc\r\n'), true);
  assert.deepEqual(seen, []);
  d.post('GET / HTTP/1.1');
  d.post('POST / HTTP/1.1');
  assert.deepEqual(seen, [['post', { command: 'GET / HTTP/1.1' }]]);
});

test('isHttpRequestLine and commandVerb', () => {
  for (const l of [
    'POST / HTTP/1.1',
    'get http://x/ HTTP/1.0',
    'CONNECT mx.example:25 HTTP/1.1',
    'Head /',
    'PUT /x HTTP/1.1',
    'OPTIONS * HTTP/1.0',
    'POST x',
  ]) {
    assert.equal(isHttpRequestLine(l), true, l);
  }
  for (const l of [
    'POST',
    'GETTER x',
    'HELO get',
    'HELP',
    'EHLO head',
    'MAIL FROM:<post@x>',
    'PUT /x',
    'Host: example.org',
    '',
  ]) {
    assert.equal(isHttpRequestLine(l), false, l);
  }
  assert.equal(commandVerb('mail FROM:<a@b>'), 'MAIL');
  assert.equal(commandVerb('\u0000x'), '?');
});

test('an HTTP request with its header lines in one segment is post, not pipelining', () => {
  const { d, seen } = detector();
  d.replied(220, ['mx']);
  d.input(b('POST / HTTP/1.1\r\nHost: x\r\n\r\n'), false);
  assert.deepEqual(seen, []);
});
