import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { MAX_EXPIRY, checkCode, makeCode, parseWhen } from './mac-code.js';

const KEY = Buffer.from('correct horse battery staple');
const NOW = 1_750_000_000;

test('a code is 16 base32 characters: expiry and a 48-bit HMAC-SHA256, checked in either case', () => {
  const code = makeCode(KEY, NOW + 3600);
  assert.match(code, /^[a-z2-7]{16}$/);
  // the layout, recomputed independently: 4 bytes of expiry, then the first 6 bytes of the MAC
  const expiry = Buffer.alloc(4);
  expiry.writeUInt32BE(NOW + 3600);
  const mac = createHmac('sha256', KEY).update('macutil1').update(expiry).digest().subarray(0, 6);
  const bits = [...Buffer.concat([expiry, mac])].map((b) => b.toString(2).padStart(8, '0')).join('');
  const expected = bits.match(/.{5}/g)!.map((five) => 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(five, 2)]);
  assert.equal(code, expected.join(''));
  assert.deepEqual(checkCode(KEY, code, NOW), { kind: 'valid', expiresAt: NOW + 3600 });
  assert.deepEqual(checkCode(KEY, code.toUpperCase(), NOW), { kind: 'valid', expiresAt: NOW + 3600 });
  assert.deepEqual(
    checkCode(KEY, code, NOW + 3600),
    { kind: 'valid', expiresAt: NOW + 3600 },
    'valid up to its second',
  );
  assert.deepEqual(checkCode(KEY, code, NOW + 3601), { kind: 'expired', expiresAt: NOW + 3600 });
});

test('forged, altered, foreign-key and malformed codes are invalid', () => {
  const code = makeCode(KEY, NOW + 3600);
  assert.equal(checkCode(Buffer.from('another key'), code, NOW).kind, 'invalid');
  // every single-character change is caught (the expiry part too: pushing the date is a forgery)
  for (let i = 0; i < code.length; i++) {
    const altered = code.slice(0, i) + (code[i] === 'a' ? 'b' : 'a') + code.slice(i + 1);
    assert.deepEqual(checkCode(KEY, altered, NOW), { kind: 'invalid', why: 'not a genuine code' }, altered);
  }
  // an expired forgery is reported as not genuine, not as expired
  assert.equal(checkCode(Buffer.from('x'), makeCode(KEY, NOW - 10), NOW).kind, 'invalid');
  for (const bad of [
    '',
    'abc',
    code + 'a',
    code.slice(0, 15) + '1',
    code.slice(0, 15) + '=',
    '$(reboot)aaaaaaa',
    'a\0aaaaaaaaaaaaaa',
  ])
    assert.match((checkCode(KEY, bad, NOW) as { why: string }).why, /^not a code/, JSON.stringify(bad));
});

test('makeCode refuses an expiry it cannot encode', () => {
  assert.throws(() => makeCode(KEY, -1), RangeError);
  assert.throws(() => makeCode(KEY, MAX_EXPIRY + 1), RangeError);
  assert.throws(() => makeCode(KEY, 1.5), RangeError);
  assert.equal(checkCode(KEY, makeCode(KEY, MAX_EXPIRY), NOW).kind, 'valid');
});

test('WHEN: intervals, epoch seconds, ISO dates; anything else is an error', () => {
  const cases: [string, number | null][] = [
    ['+0', NOW],
    ['+30', NOW + 30],
    ['+30s', NOW + 30],
    ['+5m', NOW + 300],
    ['+2h', NOW + 7200],
    ['+21d', NOW + 21 * 86_400],
    ['+1w', NOW + 604_800],
    ['+1d12h', NOW + 86_400 + 43_200],
    ['+1D', NOW + 86_400],
    ['-1h', NOW - 3600],
    ['1800000000', 1_800_000_000],
    ['2030-01-02', Date.UTC(2030, 0, 2) / 1000],
    ['2030-01-02T03:04:05Z', Date.UTC(2030, 0, 2, 3, 4, 5) / 1000],
    ['2030-01-02T03:04+02:00', Date.UTC(2030, 0, 2, 1, 4) / 1000],
    ['', null],
    ['+', null],
    ['+1y', null],
    ['1d', null],
    ['+-1', null],
    ['tomorrow', null],
    ['99999999999', null],
    ['2200-01-01', null],
    [`-${NOW + 1}`, null],
    ['2030-13-45', null],
  ];
  for (const [text, want] of cases) {
    const r = parseWhen(text, NOW);
    assert.deepEqual(r, want === null ? { kind: 'error' } : { kind: 'ok', seconds: want }, text);
  }
});
