import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RouteFact } from '../client-facts.js';
import { createRouteCache, FAILURE_TTL_MS, routeCacheKey } from './route-cache.js';

function fakeTrace(): {
  trace: (ip: string) => Promise<RouteFact>;
  calls: string[];
  settle(ip: string, fact: RouteFact | Error): void;
} {
  const calls: string[] = [];
  const pending = new Map<string, { resolve: (f: RouteFact) => void; reject: (e: Error) => void }[]>();
  return {
    calls,
    trace(ip) {
      calls.push(ip);
      return new Promise((resolve, reject) => {
        const list = pending.get(ip) ?? [];
        list.push({ resolve, reject });
        pending.set(ip, list);
      });
    },
    settle(ip, fact) {
      for (const p of pending.get(ip) ?? []) fact instanceof Error ? p.reject(fact) : p.resolve(fact);
      pending.delete(ip);
    },
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('routeCacheKey: /24 for IPv4 (also IPv4-mapped), /48 for IPv6; null for a non-address', () => {
  assert.equal(routeCacheKey('192.0.2.77'), '192.0.2.0/24');
  assert.equal(routeCacheKey('::ffff:192.0.2.77'), '192.0.2.0/24');
  assert.equal(routeCacheKey('2001:db8:abcd:12::1'), '2001:db8:abcd::/48');
  assert.equal(routeCacheKey('2001:DB8:ABCD:0012:0:0:0:1'), '2001:db8:abcd::/48');
  assert.equal(routeCacheKey('2001::1'), '2001::/48');
  assert.equal(routeCacheKey('::1'), '::/48');
  assert.equal(routeCacheKey('nonsense'), null);
});

test('one trace per /24, shared while in progress; another client of the network gets its own address last', async () => {
  const f = fakeTrace();
  const cached = createRouteCache(f.trace, 60_000);
  const a = cached('192.0.2.10');
  const b = cached('192.0.2.20');
  const other = cached('192.0.3.10');
  assert.deepEqual(f.calls, ['192.0.2.10', '192.0.3.10']);
  f.settle('192.0.2.10', { hops: 3, path: ['10.0.0.1', '*', '192.0.2.10'] });
  f.settle('192.0.3.10', { hops: 2, path: ['10.0.0.1', '10.0.0.9'] });
  assert.deepEqual(await a, { hops: 3, path: ['10.0.0.1', '*', '192.0.2.10'] });
  assert.deepEqual(await b, { hops: 3, path: ['10.0.0.1', '*', '192.0.2.20'] });
  assert.deepEqual(await other, { hops: 2, path: ['10.0.0.1', '10.0.0.9'] }, 'not reached: the path is kept as is');
  assert.deepEqual(await cached('192.0.2.30'), { hops: 3, path: ['10.0.0.1', '*', '192.0.2.30'] });
  assert.deepEqual(await cached('::ffff:192.0.2.10'), { hops: 3, path: ['10.0.0.1', '*', '192.0.2.10'] });
  assert.equal(f.calls.length, 2);
  // callers get copies: changing one does not change the cache
  (await cached('192.0.2.10')).path.push('x');
  assert.equal((await cached('192.0.2.10')).path.length, 3);
});

test('IPv6 per /48', async () => {
  const f = fakeTrace();
  const cached = createRouteCache(f.trace, 60_000);
  const a = cached('2001:db8:1:1::5');
  const b = cached('2001:db8:1:ffff::6');
  const c = cached('2001:db8:2::5');
  assert.deepEqual(f.calls, ['2001:db8:1:1::5', '2001:db8:2::5']);
  f.settle('2001:db8:1:1::5', { hops: 2, path: ['fd00::1', '2001:db8:1:1::5'] });
  f.settle('2001:db8:2::5', { hops: 1, path: ['2001:db8:2::5'] });
  assert.deepEqual(await a, { hops: 2, path: ['fd00::1', '2001:db8:1:1::5'] });
  assert.deepEqual(await b, { hops: 2, path: ['fd00::1', '2001:db8:1:ffff::6'] });
  assert.deepEqual(await c, { hops: 1, path: ['2001:db8:2::5'] });
});

test('results expire ttlMs after they arrived; failures after at most FAILURE_TTL_MS', async () => {
  let t = 1_000_000;
  const f = fakeTrace();
  const cached = createRouteCache(f.trace, 10 * 60_000, () => t);
  const first = cached('192.0.2.1');
  t += 5 * 60_000; // a slow trace: its age counts from its result
  f.settle('192.0.2.1', { hops: 1, path: ['192.0.2.1'] });
  await first;
  t += 9 * 60_000;
  void cached('192.0.2.1');
  assert.equal(f.calls.length, 1, 'still fresh');
  t += 60_001;
  const again = cached('192.0.2.1');
  assert.equal(f.calls.length, 2, 'expired: traced again');
  f.settle('192.0.2.1', new Error('no answer'));
  await assert.rejects(again, /no answer/);
  await assert.rejects(cached('192.0.2.99'), /no answer/, 'a failure is cached too');
  assert.equal(f.calls.length, 2);
  t += FAILURE_TTL_MS;
  void cached('192.0.2.1').catch(() => undefined);
  assert.equal(f.calls.length, 3, 'but not for long');
});

test('at most maxEntries networks; the least recently used goes', async () => {
  const f = fakeTrace();
  const cached = createRouteCache(f.trace, 60_000, Date.now, 2);
  for (const ip of ['192.0.1.1', '192.0.2.1', '192.0.3.1']) {
    const p = cached(ip);
    f.settle(ip, { hops: 1, path: [ip] });
    await p;
  }
  assert.equal(f.calls.length, 3);
  void cached('192.0.2.1'); // still there (and now most recent)
  void cached('192.0.3.1');
  assert.equal(f.calls.length, 3);
  const gone = cached('192.0.1.1');
  assert.equal(f.calls.length, 4, 'the first network was evicted');
  f.settle('192.0.1.1', { hops: 1, path: ['192.0.1.1'] });
  await gone;
  await tick();
});

test('a non-address is passed through to the trace (which rejects it), never cached', async () => {
  const calls: string[] = [];
  const cached = createRouteCache((ip) => {
    calls.push(ip);
    return Promise.reject(new Error('bad address'));
  }, 60_000);
  await assert.rejects(cached('x'), /bad address/);
  await assert.rejects(cached('x'), /bad address/);
  assert.equal(calls.length, 2);
});
