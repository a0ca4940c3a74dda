import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSpfLine } from './spf.js';
import { formatRblResult } from './rbl.js';

test('parseSpfLine: the two forms, the null sender, angle brackets', () => {
  assert.deepEqual(parseSpfLine(['192.0.2.1', 'a@b.example']), {
    ip: '192.0.2.1',
    sender: 'a@b.example',
    helo: '',
    policy: null,
  });
  assert.deepEqual(parseSpfLine(['2001:db8::1', '<>', 'h.example']), {
    ip: '2001:db8::1',
    sender: '',
    helo: 'h.example',
    policy: null,
  });
  assert.deepEqual(parseSpfLine(['192.0.2.1', '<a@b.example>', 'h', '--', 'mx', '-all']), {
    ip: '192.0.2.1',
    sender: 'a@b.example',
    helo: 'h',
    policy: 'mx -all',
  });
});

test('parseSpfLine: malformed lines', () => {
  for (const words of [
    ['192.0.2.1'],
    ['x', 'a@b'],
    ['192.0.2.1', 'a@b', 'h', 'extra'],
    ['192.0.2.1', 'a@b', '--', 'mx'],
    ['192.0.2.1', 'a@b', 'h', '--'],
    ['192.0.2.1', 'a@b', 'h', '--', 'bogus:x'],
  ]) {
    assert.ok('error' in parseSpfLine(words), words.join(' '));
  }
});

test('formatRblResult', () => {
  const r = {
    score: 3,
    listed: [
      { zone: 'a.example', score: 1, reason: 'say "hi"', codes: ['127.0.0.2'] },
      { zone: 'b.example', score: 2, reason: 'listed by b.example', codes: ['127.0.0.2', '127.0.0.4'] },
    ],
    problems: [{ zone: 'c.example', kind: 'lookup' as const, detail: 'ETIMEOUT' }],
  };
  assert.deepEqual(formatRblResult('192.0.2.1', r, 2), [
    '192.0.2.1: a.example score 1 (127.0.0.2) "say \\"hi\\""',
    '192.0.2.1: b.example score 2 (127.0.0.2 127.0.0.4) "listed by b.example"',
    '192.0.2.1: c.example lookup failed: ETIMEOUT',
    '192.0.2.1: total 3 >= threshold 2: reject 550 5.7.1 listed by a.example, b.example: say "hi"; listed by b.example',
  ]);
  assert.deepEqual(formatRblResult('192.0.2.1', { score: 0, listed: [], problems: [] }, 1), [
    '192.0.2.1: total 0 < threshold 1: accept',
  ]);
  assert.deepEqual(formatRblResult('192.0.2.1', { score: 0, listed: [], problems: [] }, 0), [
    '192.0.2.1: total 0, not listed: accept',
  ]);
});
