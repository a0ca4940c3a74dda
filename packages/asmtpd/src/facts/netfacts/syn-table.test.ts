import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SynTable } from './syn-table.js';
import type { SynInfo } from '../synfp/syn-packet.js';

function syn(srcIp: string, srcPort: number, ttl = 64): SynInfo {
  return {
    family: srcIp.includes(':') ? 6 : 4,
    srcIp,
    srcPort,
    dstIp: '127.0.0.1',
    dstPort: 25,
    ttl,
    df: 1,
    totalLength: 60,
    window: 65535,
    options: [],
    mss: null,
    quirks: [],
  };
}

test('a SYN that arrived first is taken at once, and only once', async () => {
  const t = new SynTable();
  t.add(syn('192.0.2.1', 1000));
  assert.equal((await t.take('192.0.2.1', 1000, 0))?.srcPort, 1000);
  assert.equal(await t.take('192.0.2.1', 1000, 0), null);
  assert.equal(t.size, 0);
});

test('take waits for a SYN that comes a little later; gives up after waitMs', async () => {
  const t = new SynTable();
  const pending = t.take('192.0.2.1', 1001, 1000);
  setTimeout(() => t.add(syn('192.0.2.1', 1001, 50)), 20);
  assert.equal((await pending)?.ttl, 50);
  const started = Date.now();
  assert.equal(await t.take('192.0.2.1', 1002, 50), null);
  assert.ok(Date.now() - started >= 45);
});

test('addresses compare in one form: IPv4-mapped, upper case, uncompressed IPv6', async () => {
  const t = new SynTable();
  t.add(syn('192.0.2.1', 1));
  t.add(syn('2001:db8::1', 2));
  assert.ok(await t.take('::ffff:192.0.2.1', 1, 0));
  assert.ok(await t.take('2001:DB8:0:0:0:0:0:1', 2, 0));
});

test('a retransmitted SYN replaces the first; old entries expire; the table is bounded', async () => {
  let now = 0;
  const t = new SynTable({ ttlMs: 1000, maxEntries: 3, now: () => now });
  t.add(syn('192.0.2.1', 1, 60));
  t.add(syn('192.0.2.1', 1, 61));
  assert.equal(t.size, 1);
  assert.equal((await t.take('192.0.2.1', 1, 0))?.ttl, 61);
  t.add(syn('192.0.2.1', 2));
  now = 2000;
  assert.equal(await t.take('192.0.2.1', 2, 0), null, 'expired');
  for (let p = 10; p < 20; p++) t.add(syn('192.0.2.9', p));
  assert.equal(t.size, 3);
  assert.ok(await t.take('192.0.2.9', 19, 0));
  assert.equal(await t.take('192.0.2.9', 10, 0), null);
});

test('clear() answers pending takes with null', async () => {
  const t = new SynTable();
  const pending = t.take('192.0.2.1', 5, 10_000);
  t.clear();
  assert.equal(await pending, null);
});
