/**
 * packets.ts — the ICMP / ICMPv6 packets of a route trace (facts/netpath/trace.ts), pure functions.
 *
 *   buildEchoRequest(family, {id, seq, nonce}) -> Buffer   ICMP echo request (type 8, or 128 for
 *     IPv6), 16 bytes: the 8-byte header, then the payload `asmt` NONCE(2) COMPENSATION(2). The
 *     compensation word makes the ones' complement sum of seq + compensation constant, so every
 *     probe of one trace (same id and nonce, seq varying) has the SAME checksum: load balancers
 *     that hash the first ICMP words keep all the probes of a trace on one path (Paris traceroute).
 *     IPv4: the checksum is filled in; IPv6: left 0, the kernel computes it (raw ICMPv6 sockets
 *     always do, RFC 3542 §3.1).
 *   parseReply(family, packet, source) -> IcmpReply | null   what a raw socket received:
 *     IPv4 packets start with the IP header (Linux raw sockets deliver it), IPv6 ones with the
 *     ICMPv6 header. Recognised: echo reply (0 / 129), time exceeded (11 / 3) and destination
 *     unreachable (3 / 1) that quote one of our echo requests (the quoted IP header's destination
 *     and the quoted ICMP id and seq, and the nonce when the quote is long enough: Linux quotes up
 *     to 576 bytes, RFC 792 routers only 8 bytes of the original datagram). Anything else: null.
 *   normalizeTarget(ip) -> {family, address, zone?} | null   IPv4, IPv4-mapped IPv6 (::ffff:a.b.c.d →
 *     a.b.c.d), or IPv6 in RFC 5952 form (a zone, `%eth0`, apart); null when not an address.
 */
import { isIP } from 'node:net';
import { formatIpv6, parseIpAddress } from '../../config/ip.js';

export type Family = 4 | 6;

export interface ProbeIds {
  /** ICMP identifier: one per trace */
  id: number;
  /** ICMP sequence number: one per probe of the trace */
  seq: number;
  /** 16 random bits per trace, echoed in the payload */
  nonce: number;
}

export type ReplyKind = 'echo-reply' | 'time-exceeded' | 'unreachable';

export interface IcmpReply {
  kind: ReplyKind;
  /** who sent this ICMP message (a router, or the destination) */
  from: string;
  /** ICMP code (for unreachable: 0 net, 1 host, 3 port, 13 administratively prohibited…) */
  code: number;
  id: number;
  seq: number;
  /** the nonce found in the (quoted) payload; null when the quote was too short to hold it */
  nonce: number | null;
  /** the destination of the quoted probe (time exceeded, unreachable); null for echo replies */
  target: string | null;
}

export const ECHO_LENGTH = 16;
const MAGIC = Buffer.from('asmt', 'latin1');

const TYPES = {
  4: { request: 8, reply: 0, exceeded: 11, unreachable: 3 },
  6: { request: 128, reply: 129, exceeded: 3, unreachable: 1 },
} as const;

/** ICMP types a trace listens to, per family (for the socket's ICMP filter). */
export const WANTED_TYPES: Record<Family, readonly number[]> = {
  4: [TYPES[4].reply, TYPES[4].exceeded, TYPES[4].unreachable],
  6: [TYPES[6].reply, TYPES[6].exceeded, TYPES[6].unreachable],
};

/** RFC 1071 Internet checksum of a buffer. */
export function internetChecksum(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2 === 1) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function buildEchoRequest(family: Family, p: ProbeIds): Buffer {
  const b = Buffer.alloc(ECHO_LENGTH);
  b[0] = TYPES[family].request;
  b[1] = 0;
  b.writeUInt16BE(p.id & 0xffff, 4);
  b.writeUInt16BE(p.seq & 0xffff, 6);
  MAGIC.copy(b, 8);
  b.writeUInt16BE(p.nonce & 0xffff, 12);
  // seq + ~seq = 0xffff in ones' complement arithmetic, whatever seq is
  b.writeUInt16BE(~p.seq & 0xffff, 14);
  if (family === 4) b.writeUInt16BE(internetChecksum(b), 2);
  return b;
}

function ipv4Text(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6Text(b: Buffer, at: number): string {
  const h: number[] = [];
  for (let i = 0; i < 8; i++) h.push(b.readUInt16BE(at + i * 2));
  return formatIpv6(h);
}

/** id, seq and nonce of one of our echo packets (request or reply) starting at `at`; null if it is not one. */
function echoFields(b: Buffer, at: number, type: number): { id: number; seq: number; nonce: number | null } | null {
  if (b.length < at + 8 || b[at] !== type) return null;
  const id = b.readUInt16BE(at + 4),
    seq = b.readUInt16BE(at + 6);
  if (b.length < at + ECHO_LENGTH) return { id, seq, nonce: null };
  if (!b.subarray(at + 8, at + 12).equals(MAGIC)) return null;
  return { id, seq, nonce: b.readUInt16BE(at + 12) };
}

export function parseReply(family: Family, packet: Buffer, source: string): IcmpReply | null {
  return family === 4 ? parseReply4(packet) : parseReply6(packet, source);
}

function parseReply4(b: Buffer): IcmpReply | null {
  if (b.length < 20 || b[0]! >> 4 !== 4 || b[9] !== 1) return null;
  const ihl = (b[0]! & 0x0f) * 4;
  if (ihl < 20 || b.length < ihl + 8) return null;
  const from = ipv4Text(b, 12);
  const type = b[ihl]!,
    code = b[ihl + 1]!;
  const t = TYPES[4];
  if (type === t.reply) {
    const e = echoFields(b, ihl, t.reply);
    return e && { kind: 'echo-reply', from, code, ...e, target: null };
  }
  if (type !== t.exceeded && type !== t.unreachable) return null;
  const inner = ihl + 8;
  if (b.length < inner + 20 || b[inner]! >> 4 !== 4 || b[inner + 9] !== 1) return null;
  const innerIhl = (b[inner]! & 0x0f) * 4;
  if (innerIhl < 20) return null;
  const e = echoFields(b, inner + innerIhl, t.request);
  if (!e) return null;
  return {
    kind: type === t.exceeded ? 'time-exceeded' : 'unreachable',
    from,
    code,
    ...e,
    target: ipv4Text(b, inner + 16),
  };
}

function parseReply6(b: Buffer, source: string): IcmpReply | null {
  if (b.length < 8) return null;
  const type = b[0]!,
    code = b[1]!;
  const t = TYPES[6];
  const from = normalizeTarget(source)?.address ?? source;
  if (type === t.reply) {
    const e = echoFields(b, 0, t.reply);
    return e && { kind: 'echo-reply', from, code, ...e, target: null };
  }
  if (type !== t.exceeded && type !== t.unreachable) return null;
  const inner = 8;
  // the quoted IPv6 header must be followed directly by ICMPv6 (our probes carry no extension header)
  if (b.length < inner + 40 || b[inner]! >> 4 !== 6 || b[inner + 6] !== 58) return null;
  const e = echoFields(b, inner + 40, t.request);
  if (!e) return null;
  return {
    kind: type === t.exceeded ? 'time-exceeded' : 'unreachable',
    from,
    code,
    ...e,
    target: ipv6Text(b, inner + 24),
  };
}

export function normalizeTarget(ip: string): { family: Family; address: string; zone?: string } | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const text = mapped?.[1] ?? ip;
  const family = isIP(text);
  if (family === 4) return { family: 4, address: text };
  if (family !== 6) return null;
  const [address = '', zone] = text.split('%', 2);
  const parsed = parseIpAddress(address);
  if (parsed.kind !== 'ok') return null;
  return zone ? { family: 6, address: parsed.value, zone } : { family: 6, address: parsed.value };
}
