/**
 * user-tcp.ts's SYN builder without a device: the packet craftSyn makes for a fingerprint is read
 * back by asmtpd's own SYN parser as that fingerprint, header fields and checksums included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatFingerprint } from 'asmtpd/dist/facts/synfp/fingerprint.js';
import { parseSynPacket } from 'asmtpd/dist/facts/synfp/syn-packet.js';
import { craftSyn } from './user-tcp.js';

const A = { src: '198.18.7.20', dst: '198.18.7.1', sport: 40001, dport: 2525 };

function sum16(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) + (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

test('craftSyn: the SYN asmtpd parses back is the fingerprint asked for, with valid checksums', () => {
  for (const fp of [
    '64240:128:1:52:M1460,N,W8,N,N,S',
    '65535:64:1:64:M1460,N,W6,N,N,T,S,E',
    '65535:62:1:60:M1460,N,W6,S,T',
    '64240:64:1:60:M1460,S,T,N,W7',
    '1024:40:0:44:M536',
    '512:255:0:40:.',
  ]) {
    const p = craftSyn(fp, A, 12345, 777);
    const syn = parseSynPacket(p);
    assert.ok(syn, fp);
    assert.equal(formatFingerprint(syn), fp);
    assert.deepEqual([syn.srcIp, syn.dstIp, syn.srcPort, syn.dstPort], [A.src, A.dst, A.sport, A.dport]);
    assert.equal(sum16(p.subarray(0, 20)), 0xffff, `${fp}: IPv4 header checksum`);
    const pseudo = Buffer.concat([p.subarray(12, 20), Buffer.from([0, 6, 0, p.length - 20])]);
    assert.equal(sum16(Buffer.concat([pseudo, p.subarray(20)])), 0xffff, `${fp}: TCP checksum`);
    assert.equal(p.readUInt32BE(24), 12345, 'sequence number');
  }
  // the timestamp: TSval as given, TSecr zero; T0 sends a zero TSval
  const mac = craftSyn('65535:64:1:64:M1460,N,W6,N,N,T,S,E', A, 1, 777);
  // options M1460 (4 bytes), N, W6 (3), N, N: the timestamp option at 10, its TSval at 12
  assert.deepEqual([mac[40 + 10], mac.readUInt32BE(40 + 12), mac.readUInt32BE(40 + 16)], [8, 777, 0]);
  assert.equal(
    formatFingerprint(parseSynPacket(craftSyn('5840:64:1:60:M1460,S,T0,N,W2', A))!),
    '5840:64:1:60:M1460,S,T0,N,W2',
  );
});

test('craftSyn refuses a fingerprint that is no SYN: a size other than 40 + its options', () => {
  assert.throws(() => craftSyn('64240:128:1:60:M1460,N,W8,N,N,S', A), /52-byte IPv4 SYN, not 60/);
  assert.throws(() => craftSyn('64240:128:1:51:M1460,N,W8,N,S', A), /whole 32-bit words|not 51/);
  assert.throws(() => craftSyn('S4:64:1:60:M*,S,T,N,W7', A), /not a fingerprint/);
});
