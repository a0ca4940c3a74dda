import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatFingerprint, formatOptions, guessInitialTtl, hopsFromTtl, parseFingerprint } from './fingerprint.js';

test('formatFingerprint / formatOptions', () => {
  assert.equal(formatOptions([]), '.');
  assert.equal(
    formatFingerprint({
      window: 65535,
      ttl: 64,
      df: 1,
      totalLength: 60,
      options: [
        { kind: 'M', value: 1460 },
        { kind: 'N' },
        { kind: 'W', value: 0 },
        { kind: 'N' },
        { kind: 'N' },
        { kind: 'T', zero: false },
      ],
    }),
    '65535:64:1:60:M1460,N,W0,N,N,T',
  );
  assert.equal(
    formatOptions([{ kind: 'T', zero: true }, { kind: 'S' }, { kind: 'E' }, { kind: '?', code: 30 }]),
    'T0,S,E,?30',
  );
});

test('parseFingerprint reads what formatFingerprint writes', () => {
  for (const s of [
    '65535:64:1:60:M1460,N,W0,N,N,T',
    '1024:50:0:40:.',
    '16616:255:1:56:M1460,W0,E',
    '0:1:0:44:T0,S,?30',
    '65495:64:1:60:M65495,S,T,N,W10',
  ]) {
    const fp = parseFingerprint(s);
    assert.ok(fp, s);
    assert.equal(formatFingerprint(fp), s);
  }
  assert.equal(formatFingerprint(parseFingerprint(' 8192:32:1:48:m536 n n s ')!), '8192:32:1:48:M536,N,N,S');
});

test('parseFingerprint refuses wildcards and junk', () => {
  for (const s of [
    '',
    'S4:64:1:60:M*,S,T,N,W0',
    '*:64:1:60:.',
    '%8192:64:1:48:M536',
    '65535:64:1:60:M*',
    '65535:64:1:60:W%2',
    '65535:64:2:60:.',
    '65536:64:1:60:.',
    '65535:256:1:60:.',
    '65535:64:1:60',
    '65535:64:1:60:.:Linux',
    '65535:64:1:60:M',
    '65535:64:1:60:X1',
    '65535:64:1:60:M1460,,N',
  ]) {
    assert.equal(parseFingerprint(s), null, s);
  }
});

test('guessInitialTtl and hopsFromTtl', () => {
  assert.deepEqual([1, 32, 33, 64, 65, 128, 129, 255].map(guessInitialTtl), [32, 32, 64, 64, 128, 128, 255, 255]);
  assert.deepEqual([64, 57, 113, 240, 30].map(hopsFromTtl), [0, 7, 15, 15, 2]);
});
