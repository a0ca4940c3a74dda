import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthFailures, failureDelayMs } from './auth-limiter.js';

test('failureDelayMs: grows with each failure, at most 8 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 10].map(failureDelayMs), [0, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
});

test('AuthFailures: counted per IP within a fixed window from the first failure', () => {
  let now = 1000;
  const f = new AuthFailures(60_000, () => now);
  assert.equal(f.count('192.0.2.1'), 0);
  assert.equal(f.fail('192.0.2.1'), 1);
  now += 30_000;
  assert.equal(f.fail('192.0.2.1'), 2);
  assert.equal(f.fail('192.0.2.2'), 1);
  assert.equal(f.count('192.0.2.1'), 2);
  now += 30_000; // 60 s after the first failure of 192.0.2.1
  assert.equal(f.count('192.0.2.1'), 0);
  assert.equal(f.count('192.0.2.2'), 1);
  assert.equal(f.fail('192.0.2.1'), 1);
});
