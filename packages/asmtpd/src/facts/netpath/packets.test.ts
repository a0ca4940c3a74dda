import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildEchoRequest, internetChecksum, normalizeTarget, parseReply } from './packets.js';
import { echoReply, icmpError, ipv4 } from '../../testing/netpath.js';

test('echo requests: type, id, seq, payload; IPv4 checksum valid and the same for every seq of a trace', () => {
  const sums = new Set<number>();
  for (const seq of [1, 2, 30, 0x101, 0x2ff]) {
    const p = buildEchoRequest(4, { id: 0xbeef, seq, nonce: 0x1234 });
    assert.equal(p.length, 16);
    assert.deepEqual([p[0], p[1], p.readUInt16BE(4), p.readUInt16BE(6)], [8, 0, 0xbeef, seq]);
    assert.equal(p.subarray(8, 12).toString('latin1'), 'asmt');
    assert.equal(p.readUInt16BE(12), 0x1234);
    assert.equal(internetChecksum(p), 0, 'a packet with its checksum sums to 0');
    sums.add(p.readUInt16BE(2));
  }
  assert.equal(sums.size, 1, 'Paris: one checksum per trace');
  const v6 = buildEchoRequest(6, { id: 7, seq: 3, nonce: 9 });
  assert.deepEqual(
    [v6[0], v6.readUInt16BE(2), v6.readUInt16BE(4), v6.readUInt16BE(6)],
    [128, 0, 7, 3],
    'ICMPv6: type 128, checksum left to the kernel',
  );
});

test('IPv4: echo reply, time exceeded with a full and an 8-byte quote, unreachable', () => {
  const req = buildEchoRequest(4, { id: 42, seq: 0x103, nonce: 0xabcd });
  assert.deepEqual(parseReply(4, echoReply(4, req, '198.51.100.9'), '198.51.100.9'), {
    kind: 'echo-reply',
    from: '198.51.100.9',
    code: 0,
    id: 42,
    seq: 0x103,
    nonce: 0xabcd,
    target: null,
  });
  assert.deepEqual(parseReply(4, icmpError(4, 'time-exceeded', req, '10.0.0.1', '198.51.100.9'), '10.0.0.1'), {
    kind: 'time-exceeded',
    from: '10.0.0.1',
    code: 0,
    id: 42,
    seq: 0x103,
    nonce: 0xabcd,
    target: '198.51.100.9',
  });
  assert.deepEqual(
    parseReply(4, icmpError(4, 'time-exceeded', req, '10.0.0.1', '198.51.100.9', { quote: 8 }), '10.0.0.1'),
    {
      kind: 'time-exceeded',
      from: '10.0.0.1',
      code: 0,
      id: 42,
      seq: 0x103,
      nonce: null,
      target: '198.51.100.9',
    },
    'RFC 792 quote: no nonce',
  );
  assert.deepEqual(
    parseReply(4, icmpError(4, 'unreachable', req, '10.0.0.2', '198.51.100.9', { code: 13 }), '10.0.0.2'),
    {
      kind: 'unreachable',
      from: '10.0.0.2',
      code: 13,
      id: 42,
      seq: 0x103,
      nonce: 0xabcd,
      target: '198.51.100.9',
    },
  );
});

test('IPv6: echo reply, time exceeded, unreachable (no IPv6 header on raw ICMPv6 sockets)', () => {
  const req = buildEchoRequest(6, { id: 1, seq: 2, nonce: 3 });
  assert.deepEqual(parseReply(6, echoReply(6, req, '2001:db8:5::9'), '2001:db8:5::9'), {
    kind: 'echo-reply',
    from: '2001:db8:5::9',
    code: 0,
    id: 1,
    seq: 2,
    nonce: 3,
    target: null,
  });
  assert.deepEqual(parseReply(6, icmpError(6, 'time-exceeded', req, 'fd00::1', '2001:db8:5:0:0:0:0:9'), 'fd00::1'), {
    kind: 'time-exceeded',
    from: 'fd00::1',
    code: 0,
    id: 1,
    seq: 2,
    nonce: 3,
    target: '2001:db8:5::9',
  });
  assert.equal(
    parseReply(6, icmpError(6, 'unreachable', req, 'fd00::2', '2001:db8::9', { code: 4 }), 'fd00::2')?.kind,
    'unreachable',
  );
});

test('anything else is not a reply', () => {
  const req = buildEchoRequest(4, { id: 42, seq: 1, nonce: 1 });
  assert.equal(parseReply(4, Buffer.alloc(0), '1.2.3.4'), null);
  assert.equal(parseReply(4, ipv4('1.2.3.4', '5.6.7.8', 17, req), '1.2.3.4'), null, 'not ICMP');
  assert.equal(
    parseReply(4, ipv4('1.2.3.4', '5.6.7.8', 1, req), '1.2.3.4'),
    null,
    'an echo request (our own, on loopback)',
  );
  const other = Buffer.from(req);
  other.write('ping', 8, 'latin1');
  assert.equal(parseReply(4, echoReply(4, other, '1.2.3.4'), '1.2.3.4'), null, "an echo reply to somebody else's ping");
  const te = icmpError(4, 'time-exceeded', req, '10.0.0.1', '5.6.7.8');
  assert.equal(parseReply(4, te.subarray(0, 40), '10.0.0.1'), null, 'quote cut inside the IP header');
  const v6 = icmpError(6, 'time-exceeded', buildEchoRequest(6, { id: 1, seq: 2, nonce: 3 }), 'fd00::1', 'fd00::9');
  v6[8 + 6] = 17; // the quoted packet is UDP
  assert.equal(parseReply(6, v6, 'fd00::1'), null);
  assert.equal(parseReply(6, Buffer.from([135, 0, 0, 0, 0, 0, 0, 0]), 'fe80::1'), null, 'neighbour solicitation');
});

test('normalizeTarget', () => {
  assert.deepEqual(normalizeTarget('192.0.2.1'), { family: 4, address: '192.0.2.1' });
  assert.deepEqual(normalizeTarget('::ffff:192.0.2.1'), { family: 4, address: '192.0.2.1' });
  assert.deepEqual(normalizeTarget('2001:DB8:0:0::1'), { family: 6, address: '2001:db8::1' });
  assert.deepEqual(normalizeTarget('fe80::1%eth0'), { family: 6, address: 'fe80::1', zone: 'eth0' });
  assert.equal(normalizeTarget('example.org'), null);
  assert.equal(normalizeTarget('1.2.3.4/24'), null);
});
