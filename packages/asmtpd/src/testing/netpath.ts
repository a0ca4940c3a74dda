/**
 * testing/netpath — packets and a simulated network for the netpath unit tests (tests only: not shipped).
 *
 *   ipv4(src, dst, proto, payload, ttl?) -> Buffer     an IPv4 packet (20-byte header)
 *   echoReply(family, request, from) -> packet as the raw socket delivers it
 *   icmpError(family, 'time-exceeded' | 'unreachable', request, from, target, {quote?, code?})
 *     the ICMP error a router sends about `request` (quote: bytes of the probe's ICMP part kept,
 *     default all — Linux; 8 = RFC 792)
 *   fakeNetwork(topology) -> ProbeNetwork & {sent, opened}   answers each probe as the topology says,
 *     through real packets and parseReply
 */
import { buildEchoRequest, parseReply, type Family, type IcmpReply, type ProbeIds } from '../facts/netpath/packets.js';
import type { ProbeNetwork, ProbeSession } from '../facts/netpath/raw-icmp.js';
import { internetChecksum } from '../facts/netpath/packets.js';

function ipv4Bytes(a: string): number[] {
  return a.split('.').map(Number);
}

function ipv6Bytes(a: string): Buffer {
  const [head = '', tail] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

export function ipv4(src: string, dst: string, proto: number, payload: Buffer, ttl = 64): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h[8] = ttl;
  h[9] = proto;
  Buffer.from(ipv4Bytes(src)).copy(h, 12);
  Buffer.from(ipv4Bytes(dst)).copy(h, 16);
  h.writeUInt16BE(internetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

function ipv6Header(src: string, dst: string, payloadLength: number, hopLimit: number): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(payloadLength, 4);
  h[6] = 58;
  h[7] = hopLimit;
  ipv6Bytes(src).copy(h, 8);
  ipv6Bytes(dst).copy(h, 24);
  return h;
}

const US4 = '192.0.2.1',
  US6 = '2001:db8::1';

export function echoReply(family: Family, request: Buffer, from: string): Buffer {
  const r = Buffer.from(request);
  r[0] = family === 4 ? 0 : 129;
  r.writeUInt16BE(0, 2);
  if (family === 4) {
    r.writeUInt16BE(internetChecksum(r), 2);
    return ipv4(from, US4, 1, r);
  }
  return r;
}

export function icmpError(
  family: Family,
  kind: 'time-exceeded' | 'unreachable',
  request: Buffer,
  from: string,
  target: string,
  o: { quote?: number; code?: number } = {},
): Buffer {
  const quoted = request.subarray(0, o.quote ?? request.length);
  const head = Buffer.alloc(8);
  head[0] = family === 4 ? (kind === 'time-exceeded' ? 11 : 3) : kind === 'time-exceeded' ? 3 : 1;
  head[1] = o.code ?? 0;
  if (family === 4) {
    const inner = ipv4(US4, target, 1, quoted, 1);
    const icmp = Buffer.concat([head, inner]);
    icmp.writeUInt16BE(internetChecksum(icmp), 2);
    return ipv4(from, US4, 1, icmp);
  }
  return Buffer.concat([head, ipv6Header(US6, target, request.length, 1), quoted]);
}

export interface Topology {
  family: Family;
  /** the routers in order; null = a silent router */
  routers: (string | null)[];
  /** the destination's address; null = the destination never answers */
  destination: string | null;
  /** the last router has no route to the destination: it answers every probe that reaches it with unreachable */
  unreachable?: boolean;
  /** delay of every answer */
  delayMs?: number;
  /** drop the answers to probes of round 0 at these TTLs */
  lostInFirstRound?: number[];
  /** bytes of the probe's ICMP part that routers quote (default all) */
  quote?: number;
  /** refuse every send with this message */
  sendError?: string;
  /** open() throws this message */
  openError?: string;
}

export interface FakeNetwork extends ProbeNetwork {
  sent: { id: number; ttl: number; seq: number; nonce: number; target: string }[];
  opened: number;
  closed: number;
  /** deliver a packet to every open session (as a raw socket would) */
  inject(family: Family, packet: Buffer, source: string): void;
}

export function fakeNetwork(topologyOf: (target: string) => Topology): FakeNetwork {
  const sessions = new Map<number, { family: Family; onReply: (r: IcmpReply) => void }>();
  let nextId = 100;
  const net: FakeNetwork = {
    sent: [],
    opened: 0,
    closed: 0,
    inject(family, packet, source) {
      const r = parseReply(family, packet, source);
      if (r) sessions.get(r.id)?.onReply(r);
    },
    open(family, onReply) {
      const t0 = topologyOf('');
      if (t0.openError) throw new Error(t0.openError);
      const id = nextId++;
      sessions.set(id, { family, onReply });
      net.opened++;
      let open = true;
      const session: ProbeSession = {
        id,
        send(target, ttl, packet) {
          const topo = topologyOf(target);
          if (topo.sendError) return Promise.reject(new Error(topo.sendError));
          const seq = packet.readUInt16BE(6);
          net.sent.push({ id, ttl, seq, nonce: packet.readUInt16BE(12), target });
          const round = seq >> 8;
          if (round === 0 && topo.lostInFirstRound?.includes(ttl)) return Promise.resolve();
          let answer: [Buffer, string] | null = null;
          if (topo.unreachable && ttl >= topo.routers.length) {
            // a router without a route answers before it looks at the TTL (Linux: ip_error)
            const router = topo.routers[topo.routers.length - 1];
            if (router) answer = [icmpError(family, 'unreachable', packet, router, target, { code: 1 }), router];
          } else if (ttl <= topo.routers.length) {
            const router = topo.routers[ttl - 1];
            if (router)
              answer = [
                icmpError(
                  family,
                  'time-exceeded',
                  packet,
                  router,
                  target,
                  topo.quote !== undefined ? { quote: topo.quote } : {},
                ),
                router,
              ];
          } else if (topo.destination) {
            answer = [echoReply(family, packet, topo.destination), topo.destination];
          }
          if (answer) {
            const [buf, from] = answer;
            setTimeout(() => {
              if (open) net.inject(family, buf, from);
            }, topo.delayMs ?? 1);
          }
          return Promise.resolve();
        },
        close() {
          if (!open) return;
          open = false;
          sessions.delete(id);
          net.closed++;
        },
      };
      return session;
    },
  };
  return net;
}

/** an echo request as trace.ts sends it (for parser tests) */
export function probe(family: Family, ids: ProbeIds): Buffer {
  return buildEchoRequest(family, ids);
}
