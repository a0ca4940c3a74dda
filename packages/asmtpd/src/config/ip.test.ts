import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, parseIpAddress } from './ip.js';

const ADDRESSES: [string, string | null][] = [
  ['127.0.0.1', '127.0.0.1'],
  ['0.0.0.0', '0.0.0.0'],
  ['::', '::'],
  ['::1', '::1'],
  ['2001:DB8:0:0:0:0:0:25', '2001:db8::25'],
  ['2001:db8:0000:0001:0:0:0:1', '2001:db8:0:1::1'],
  ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
  ['2001:db8:1:1:1:1:1:1', '2001:db8:1:1:1:1:1:1'],
  ['2001:db8::1:0:0:1', '2001:db8::1:0:0:1'],
  ['::ffff:192.0.2.1', '::ffff:c000:201'],
  ['fe80::1%eth0', 'fe80::1%eth0'],
  ['256.0.0.1', null],
  ['1.2.3', null],
  ['example.org', null],
  ['', null],
  [':::1', null],
  ['1::2::3', null],
];

for (const [input, expected] of ADDRESSES) {
  test(`ip address: ${JSON.stringify(input)} → ${expected ?? 'refused'}`, () => {
    const r = parseIpAddress(input);
    if (expected === null) assert.equal(r.kind, 'error');
    else assert.deepEqual(r, { kind: 'ok', value: expected });
  });
}

/** [input, family, network address, prefix, warns] or [input, null] */
const NETWORKS: ([string, 4 | 6, string, number, boolean] | [string, null])[] = [
  ['127.0.0.0/8', 4, '127.0.0.0', 8, false],
  ['10.1.2.3/8', 4, '10.0.0.0', 8, true],
  ['192.0.2.1', 4, '192.0.2.1', 32, false],
  ['192.0.2.128/25', 4, '192.0.2.128', 25, false],
  ['192.0.2.200/25', 4, '192.0.2.128', 25, true],
  ['0.0.0.0/0', 4, '0.0.0.0', 0, false],
  ['::1', 6, '::1', 128, false],
  ['2001:db8::/32', 6, '2001:db8::', 32, false],
  ['2001:DB8:ffff::1/33', 6, '2001:db8:8000::', 33, true],
  ['::/0', 6, '::', 0, false],
  ['10.0.0.0/33', null],
  ['10.0.0.0/-1', null],
  ['10.0.0.0/', null],
  ['10.0.0.0/8/8', null],
  ['10.0.0.0/08x', null],
  ['::1/129', null],
  ['fe80::1%eth0/64', null],
  ['example.org/24', null],
  ['', null],
];

for (const row of NETWORKS) {
  const [input] = row;
  test(`cidr: ${JSON.stringify(input)}`, () => {
    const r = parseCidr(input);
    if (row[1] === null) {
      assert.equal(r.kind, 'error');
      return;
    }
    const [, family, address, prefix, warns] = row;
    assert.equal(r.kind, 'ok');
    if (r.kind !== 'ok') return;
    assert.deepEqual(r.value, { family, address, prefix, text: input });
    assert.equal(r.warning !== undefined, warns);
  });
}

test('cidr: the prefix error names the family limit', () => {
  const r = parseCidr('::/200');
  assert.deepEqual(r, { kind: 'error', message: 'prefix length must be 0 to 128 for IPv6' });
});
