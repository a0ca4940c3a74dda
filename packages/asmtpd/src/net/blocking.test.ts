/** The arithmetic of dictionary-attack blocking: networks, durations, the in-memory set. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockSet, blockDurationMs, blockNetOf, parseBlockNet } from './blocking.js';

test('blockNetOf: the BlockNetmask network of a client, IPv4-mapped as IPv4', () => {
  const cases: [string, { v4: number; v6: number }, string | null][] = [
    ['192.0.2.77', { v4: 32, v6: 64 }, '192.0.2.77/32'],
    ['192.0.2.77', { v4: 24, v6: 64 }, '192.0.2.0/24'],
    ['192.0.2.77', { v4: 20, v6: 64 }, '192.0.0.0/20'],
    ['::ffff:192.0.2.77', { v4: 24, v6: 64 }, '192.0.2.0/24'],
    ['2001:db8:1:2:3:4:5:6', { v4: 32, v6: 64 }, '2001:db8:1:2::/64'],
    ['2001:DB8:1:2::9', { v4: 32, v6: 48 }, '2001:db8:1::/48'],
    ['2001:db8::1', { v4: 32, v6: 128 }, '2001:db8::1/128'],
    ['::1', { v4: 32, v6: 64 }, '::/64'],
    ['not-an-ip', { v4: 32, v6: 64 }, null],
  ];
  for (const [ip, masks, want] of cases) assert.equal(blockNetOf(ip, masks), want, ip);
});

test('parseBlockNet: an admin IP or IP/N, host bits masked off', () => {
  assert.deepEqual(parseBlockNet('192.0.2.9'), { net: '192.0.2.9/32', family: 4, prefix: 32 });
  assert.deepEqual(parseBlockNet('192.0.2.9/24'), { net: '192.0.2.0/24', family: 4, prefix: 24 });
  assert.deepEqual(parseBlockNet('2001:db8::7/64'), { net: '2001:db8::/64', family: 6, prefix: 64 });
  assert.equal(parseBlockNet('192.0.2.9/33'), null);
  assert.equal(parseBlockNet('example.org'), null);
});

test('blockDurationMs: BlockTime, doubled per repeat offence, capped at BlockTimeMax', () => {
  const t = { blockTimeMs: 4 * 3_600_000, blockTimeMaxMs: 7 * 86_400_000 };
  const hours = [1, 2, 3, 4, 5, 6, 7, 100].map((o) => blockDurationMs(o, t) / 3_600_000);
  assert.deepEqual(hours, [4, 8, 16, 32, 64, 128, 168, 168]);
});

test('BlockSet: finds a live block by address across prefix lengths, not an ended one', () => {
  const set = new BlockSet();
  set.replace([
    { net: '192.0.2.0/24', until: 2000 },
    { net: '198.51.100.7/32', until: 1000 },
    { net: '2001:db8:1:2::/64', until: 2000 },
  ]);
  assert.deepEqual(set.find('192.0.2.200', 1500), { net: '192.0.2.0/24', until: 2000 });
  assert.deepEqual(set.find('198.51.100.7', 500), { net: '198.51.100.7/32', until: 1000 });
  assert.equal(set.find('198.51.100.7', 1000), null, 'ended at until');
  assert.equal(set.find('198.51.100.8', 500), null);
  assert.deepEqual(set.find('2001:db8:1:2:ffff::1', 0)?.net, '2001:db8:1:2::/64');
  assert.equal(set.find('2001:db8:1:3::1', 0), null);
  set.delete('192.0.2.0/24');
  assert.equal(set.find('192.0.2.200', 1500), null);
});
