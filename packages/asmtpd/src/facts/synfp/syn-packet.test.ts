import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSynPacket, parseTcpSyn } from './syn-packet.js';
import { formatFingerprint } from './fingerprint.js';

// ---- hand-built packets -------------------------------------------------------------------
const MSS = (v: number) => [2, 4, v >> 8, v & 0xff];
const WS = (v: number) => [3, 3, v];
const SACKOK = [4, 2];
const TS = (val: number, ecr = 0) => [8, 10, ...u32(val), ...u32(ecr)];
const NOP = [1];
function u32(v: number): number[] {
  return [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

interface TcpOpts {
  sport?: number;
  dport?: number;
  flags?: number;
  window: number;
  options: number[];
  ack?: number;
  payload?: number[];
  urg?: number;
}
function tcp(o: TcpOpts): Buffer {
  const opts = [...o.options];
  while (opts.length % 4) opts.push(0);
  const h = Buffer.alloc(20 + opts.length);
  h.writeUInt16BE(o.sport ?? 40000, 0);
  h.writeUInt16BE(o.dport ?? 25, 2);
  h.writeUInt32BE(0x11223344, 4);
  h.writeUInt32BE(o.ack ?? 0, 8);
  h[12] = ((20 + opts.length) / 4) << 4;
  h[13] = o.flags ?? 0x02;
  h.writeUInt16BE(o.window, 14);
  h.writeUInt16BE(o.urg ?? 0, 18);
  Buffer.from(opts).copy(h, 20);
  return Buffer.concat([h, Buffer.from(o.payload ?? [])]);
}
function ipv4(
  seg: Buffer,
  o: { ttl: number; df?: boolean; id?: number; proto?: number; frag?: number; ipOptions?: number[] } = { ttl: 64 },
): Buffer {
  const opts = o.ipOptions ?? [];
  const ihl = 20 + opts.length;
  const h = Buffer.alloc(ihl);
  h[0] = 0x40 | (ihl / 4);
  h.writeUInt16BE(ihl + seg.length, 2);
  h.writeUInt16BE(o.id ?? 0x1234, 4);
  h.writeUInt16BE((o.df === false ? 0 : 0x4000) | (o.frag ?? 0), 6);
  h[8] = o.ttl;
  h[9] = o.proto ?? 6;
  Buffer.from([192, 0, 2, 10, 198, 51, 100, 25]).copy(h, 12);
  Buffer.from(opts).copy(h, 20);
  return Buffer.concat([h, seg]);
}
function ipv6(seg: Buffer, hlim: number, ext: number[] = [], firstNext = 6): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(ext.length + seg.length, 4);
  h[6] = ext.length ? firstNext : 6;
  h[7] = hlim;
  Buffer.from('20010db8000000000000000000000001', 'hex').copy(h, 8);
  Buffer.from('20010db8000000010000000000000025', 'hex').copy(h, 24);
  return Buffer.concat([h, Buffer.from(ext), seg]);
}

const linuxOpts = [...MSS(1460), ...SACKOK, ...TS(123456), ...NOP, ...WS(7)];

test('IPv4 Linux SYN: M1460,S,T,N,W7', () => {
  const info = parseSynPacket(ipv4(tcp({ window: 5840, options: linuxOpts }), { ttl: 57 }));
  assert.ok(info);
  assert.deepEqual(
    {
      family: info.family,
      src: `${info.srcIp}:${info.srcPort}`,
      dst: `${info.dstIp}:${info.dstPort}`,
      ttl: info.ttl,
      df: info.df,
      len: info.totalLength,
      mss: info.mss,
      quirks: info.quirks,
    },
    { family: 4, src: '192.0.2.10:40000', dst: '198.51.100.25:25', ttl: 57, df: 1, len: 60, mss: 1460, quirks: [] },
  );
  assert.equal(formatFingerprint(info), '5840:57:1:60:M1460,S,T,N,W7');
});

test('a Linux loopback SYN (p0f v3 4:64+0:0:65495:mss*1,10:mss,sok,ts,nop,ws:df,id+:0)', () => {
  const info = parseSynPacket(
    ipv4(tcp({ window: 65495, options: [...MSS(65495), ...SACKOK, ...TS(0x7f00aa01), ...NOP, ...WS(10)] }), {
      ttl: 64,
    }),
  );
  assert.ok(info);
  assert.equal(formatFingerprint(info), '65495:64:1:60:M65495,S,T,N,W10');
});

test('Windows-like SYN: 64240:128:1:52:M1460,N,W8,N,N,S', () => {
  const seg = tcp({ window: 64240, options: [...MSS(1460), ...NOP, ...WS(8), ...NOP, ...NOP, ...SACKOK] });
  assert.equal(formatFingerprint(parseSynPacket(ipv4(seg, { ttl: 128 }))!), '64240:128:1:52:M1460,N,W8,N,N,S');
  assert.equal(formatFingerprint(parseSynPacket(ipv4(seg, { ttl: 113 }))!), '64240:113:1:52:M1460,N,W8,N,N,S');
});

test('no options, no DF, zero timestamp, zero IP ID', () => {
  assert.equal(
    formatFingerprint(parseSynPacket(ipv4(tcp({ window: 1024, options: [] }), { ttl: 50, df: false }))!),
    '1024:50:0:40:.',
  );
  const t0 = parseSynPacket(
    ipv4(tcp({ window: 16384, options: [...MSS(1460), ...NOP, ...WS(0), ...NOP, ...NOP, ...TS(0)] }), {
      ttl: 64,
      df: false,
      id: 0,
    }),
  )!;
  assert.equal(formatFingerprint(t0), '16384:64:0:60:M1460,N,W0,N,N,T0');
  assert.deepEqual(t0.quirks, ['Z']);
});

test('EOL ends the options (E), unknown kinds are ?N, quirks', () => {
  const eol = parseSynPacket(
    ipv4(tcp({ window: 16616, options: [...MSS(1460), ...WS(0), 0, 0, 0, 0, 7, 0, 0, 0] }), { ttl: 255 }),
  )!;
  assert.equal(formatFingerprint(eol), '16616:255:1:56:M1460,W0,E');
  assert.deepEqual(eol.quirks, ['P']);
  const unknown = parseSynPacket(
    ipv4(tcp({ window: 65535, options: [...MSS(1460), 30, 4, 0, 0, ...TS(5, 9), ...NOP, ...NOP] }), { ttl: 64 }),
  )!;
  assert.equal(formatFingerprint(unknown), '65535:64:1:60:M1460,?30,T,N,N');
  const odd = parseSynPacket(
    ipv4(tcp({ window: 8192, options: [], flags: 0x02 | 0x08, ack: 5, urg: 1, payload: [1, 2] }), {
      ttl: 64,
      ipOptions: [1, 1, 1, 0],
    }),
  )!;
  assert.deepEqual([...odd.quirks, ...unknown.quirks], ['A', 'D', 'F', 'I', 'U', 'T']);
  assert.equal(odd.totalLength, 46);
});

test('IPv6: full packet (extension headers skipped) and TCP header only agree', () => {
  const seg = tcp({ window: 5840, options: linuxOpts });
  const full = parseSynPacket(ipv6(seg, 57))!;
  assert.deepEqual(
    [full.family, full.srcIp, full.dstIp, full.dstPort, full.df, full.totalLength],
    [6, '2001:db8::1', '2001:db8:0:1::25', 25, 1, 80],
  );
  assert.equal(formatFingerprint(full), '5840:57:1:80:M1460,S,T,N,W7');
  const withHopByHop = parseSynPacket(ipv6(seg, 57, [6, 0, 1, 4, 0, 0, 0, 0], 0))!;
  assert.equal(formatFingerprint(withHopByHop), '5840:57:1:88:M1460,S,T,N,W7');
  const tcpOnly = parseTcpSyn(seg, { family: 6, srcIp: '2001:db8::1', dstIp: '2001:db8:0:1::25', ttl: 57 })!;
  assert.deepEqual(tcpOnly, full);
});

test('not a usable SYN: null, never a throw', () => {
  const seg = tcp({ window: 5840, options: linuxOpts });
  const good = ipv4(seg, { ttl: 64 });
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['IP version 5', Buffer.from([0x50, ...good.subarray(1)])],
    ['SYN+ACK', ipv4(tcp({ window: 5840, options: [], flags: 0x12 }), { ttl: 64 })],
    ['ACK', ipv4(tcp({ window: 5840, options: [], flags: 0x10 }), { ttl: 64 })],
    ['RST', ipv4(tcp({ window: 5840, options: [], flags: 0x04 }), { ttl: 64 })],
    ['UDP', ipv4(seg, { ttl: 64, proto: 17 })],
    ['later fragment', ipv4(seg, { ttl: 64, frag: 3 })],
    ['IPv4 header cut', good.subarray(0, 19)],
    ['TCP header cut', good.subarray(0, 35)],
    ['options cut', good.subarray(0, 50)],
    [
      'option runs past the header',
      ipv4(tcp({ window: 1, options: [...MSS(1460), 8, 12, 0, 0, 0, 0, 0, 0, 0, 0] }), { ttl: 64 }),
    ],
    ['option length 1', ipv4(tcp({ window: 1, options: [5, 1, 0, 0] }), { ttl: 64 })],
    ['MSS of the wrong length', ipv4(tcp({ window: 1, options: [2, 3, 5, 1] }), { ttl: 64 })],
    ['IPv6 fragment header', ipv6(seg, 64, [6, 0, 0, 0, 0, 0, 0, 1], 44)],
    ['IPv6 header cut', ipv6(seg, 64).subarray(0, 39)],
  ];
  for (const [what, buf] of cases) assert.equal(parseSynPacket(buf), null, what);
  assert.equal(parseTcpSyn(seg.subarray(0, 19), { family: 6, srcIp: '::1', dstIp: '::1', ttl: 64 }), null);
});
