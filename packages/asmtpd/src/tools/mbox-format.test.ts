import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  asctime,
  envelopeLine,
  envelopeSender,
  hasField,
  MboxSplitter,
  quoteFromLines,
  returnPathField,
  returnPathOf,
  splitEnvelope,
  stripLeadingFields,
} from './mbox-format.js';

const b = (s: string) => Buffer.from(s, 'latin1');

test('asctime: the local time in asctime(3) form, the day padded with a space', () => {
  assert.equal(asctime(new Date(1986, 10, 4, 8, 2, 9)), 'Tue Nov  4 08:02:09 1986');
  assert.equal(asctime(new Date(2024, 0, 31, 23, 59, 59)), 'Wed Jan 31 23:59:59 2024');
});

test('envelopeLine: "From SENDER DATE", MAILER-DAEMON for the null or an unknown sender, no spaces', () => {
  const d = new Date(2024, 1, 29, 12, 0, 0);
  assert.equal(envelopeLine('a@b.example', d).toString(), 'From a@b.example Thu Feb 29 12:00:00 2024\n');
  assert.equal(envelopeLine('', d).toString(), 'From MAILER-DAEMON Thu Feb 29 12:00:00 2024\n');
  assert.equal(envelopeLine(null, d).toString(), 'From MAILER-DAEMON Thu Feb 29 12:00:00 2024\n');
  assert.equal(envelopeLine('"a b"@x\n', d).toString(), 'From "a_b"@x_ Thu Feb 29 12:00:00 2024\n');
});

test('splitEnvelope and envelopeSender', () => {
  const { envelope, rest } = splitEnvelope(b('From s@x.example  Mon Jan  1 00:00:00 2024\nSubject: a\n\nx\n'));
  assert.equal(envelope?.toString(), 'From s@x.example  Mon Jan  1 00:00:00 2024\n');
  assert.equal(rest.toString(), 'Subject: a\n\nx\n');
  assert.equal(envelopeSender(envelope!), 's@x.example');
  assert.equal(envelopeSender(b('From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n')), '');
  assert.equal(envelopeSender(b('From  Mon\n')), null);
  assert.equal(splitEnvelope(b('From: a@b\n\nx')).envelope, null, 'a From: field is not an envelope line');
});

test('header fields: only the header counts, folded values, case-insensitive names', () => {
  const m = b('Subject: x\nreturn-path:\n <a@b.example>\n\nReturn-Path: <body@x>\n');
  assert.equal(hasField(m, 'Return-Path'), true);
  assert.equal(returnPathOf(m), 'a@b.example');
  assert.equal(hasField(b('Subject: x\n\nReturn-Path: <a@b>\n'), 'Return-Path'), false);
  assert.equal(hasField(b('\nReturn-Path: <a@b>\n'), 'Return-Path'), false, 'an empty header');
  assert.equal(returnPathOf(b('Return-Path: <>\r\nSubject: x\r\n\r\n')), '');
  assert.equal(returnPathField('a\r\nBcc: x@y').toString(), 'Return-Path: <a??Bcc: x@y>\n');
});

test('stripLeadingFields: the fields at the very top, continuation lines included', () => {
  const m = b('Return-Path: <a>\nreturn-path:\n\t<b>\nSubject: s\nReturn-Path: <c>\n\nbody\n');
  assert.equal(stripLeadingFields(m, 'Return-Path').toString(), 'Subject: s\nReturn-Path: <c>\n\nbody\n');
  assert.equal(stripLeadingFields(b('Subject: s\n'), 'Return-Path').toString(), 'Subject: s\n');
});

test('quoteFromLines: ">" before every /^>*From / line, nothing else', () => {
  const cases: Array<[string, string]> = [
    ['From x\n', '>From x\n'],
    ['a\nFrom b\n>From c\n>>From d\n', 'a\n>From b\n>>From c\n>>>From d\n'],
    ['From\nFrom:x\n From y\n>From\n', 'From\nFrom:x\n From y\n>From\n'],
    ['a\r\nFrom b\r\n', 'a\r\n>From b\r\n'],
    ['no newline at end\nFrom x', 'no newline at end\n>From x'],
    ['', ''],
  ];
  for (const [input, want] of cases) assert.equal(quoteFromLines(b(input)).toString(), want, JSON.stringify(input));
});

const MBOX =
  'From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From quoted\n>>From twice\nFrom: not an envelope\n\n' +
  'From b@x Mon Jan  1 00:00:01 2024\nSubject: two\n\nlast line without newline';

test('MboxSplitter: messages at envelope lines after an empty line, unquoted, separator dropped', () => {
  const s = new MboxSplitter();
  const got = [...s.push(b(MBOX)), ...s.end()];
  assert.deepEqual(
    got.map((m) => [m.envelope.toString(), m.content.toString()]),
    [
      ['From a@x Mon Jan  1 00:00:00 2024\n', 'Subject: one\n\nFrom quoted\n>From twice\nFrom: not an envelope\n'],
      ['From b@x Mon Jan  1 00:00:01 2024\n', 'Subject: two\n\nlast line without newline'],
    ],
  );
});

test('MboxSplitter: the same messages whatever the chunk boundaries', () => {
  const whole = (() => {
    const s = new MboxSplitter();
    return [...s.push(b(MBOX)), ...s.end()].map((m) => m.envelope.toString() + m.content.toString());
  })();
  for (let size = 1; size <= 13; size++) {
    const s = new MboxSplitter();
    const got: string[] = [];
    for (let at = 0; at < MBOX.length; at += size)
      for (const m of s.push(b(MBOX.slice(at, at + size)))) got.push(m.envelope.toString() + m.content.toString());
    for (const m of s.end()) got.push(m.envelope.toString() + m.content.toString());
    assert.deepEqual(got, whole, `chunks of ${size}`);
  }
});

test('MboxSplitter: a "From " line not after an empty line is part of the message; a file not starting with one is refused', () => {
  const s = new MboxSplitter();
  const got = [...s.push(b('From a Mon\nx\nFrom b Tue\n\n')), ...s.end()];
  assert.equal(got.length, 1);
  assert.equal(got[0]!.content.toString(), 'x\nFrom b Tue\n');
  assert.throws(() => new MboxSplitter().push(b('Subject: x\n\nbody\n')), /not an mbox file/);
  assert.deepEqual(new MboxSplitter().end(), []);
});
