import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TtlCache } from './ttl-cache.js';

test('TtlCache keeps an answer for its smallest TTL, never a TTL-0 or empty answer', () => {
  let now = 1_000_000;
  const c = new TtlCache(10, () => now);
  c.set('a:x', { answers: [{ ttl: 60 }, { ttl: 30 }] });
  c.set('a:zero', { answers: [{ ttl: 0 }] });
  c.set('txt:none', { answers: [] });
  assert.equal(c.get('a:zero'), undefined);
  assert.equal(c.get('txt:none'), undefined);
  assert.equal(c.get('a:x')?.ttl, 30);
  now += 29_999;
  assert.ok(c.get('a:x'));
  now += 1;
  assert.equal(c.get('a:x'), undefined, 'expired after 30 s');
  assert.equal(c.size, 0);
});

test('TtlCache is bounded: the least recently used entry goes', () => {
  const c = new TtlCache(2);
  c.set('1', { answers: [{ ttl: 100 }] });
  c.set('2', { answers: [{ ttl: 100 }] });
  assert.ok(c.get('1'));
  c.set('3', { answers: [{ ttl: 100 }] });
  assert.ok(c.get('1'));
  assert.equal(c.get('2'), undefined);
  assert.ok(c.get('3'));
  assert.equal(c.size, 2);
});
