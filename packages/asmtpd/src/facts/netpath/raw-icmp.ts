/**
 * raw-icmp.ts — the probe network of facts/netpath/trace.ts over raw ICMP / ICMPv6 sockets (the
 * `raw-socket` native module; needs CAP_NET_RAW).
 *
 *   rawProbeNetwork() -> ProbeNetwork   the process-wide one
 *     .open(family, onReply) -> ProbeSession {id, send(target, ttl, packet), close()}
 *
 * One raw socket per address family is shared by every trace of the process: a raw ICMP socket
 * receives a copy of every ICMP message the host gets, so one socket per trace would parse every
 * reply once per trace. Each session gets an ICMP identifier no other open session of the process
 * has (a counter from a random start); a reply goes to the session whose id it carries (the id of
 * an echo reply, or of the echo request quoted in a time exceeded / unreachable message). The
 * socket is opened by the first session and closed when the last one closes, so an idle process
 * holds no raw socket (and the event loop can end). The hop limit is set per packet right before
 * it is sent (IP_TTL, IPV6_UNICAST_HOPS) in raw-socket's beforeCallback: probes with different
 * TTLs can be queued at once. The socket keeps only the ICMP types a trace reads (ICMP_FILTER,
 * ICMP6_FILTER) and gets a 256 KiB receive buffer (a burst of replies must not be dropped).
 *
 * The module is loaded on first use (createRequire: it is CommonJS, without types): importing
 * this file loads nothing native.
 */
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { parseReply, WANTED_TYPES, type Family, type IcmpReply } from './packets.js';

export interface ProbeSession {
  /** the ICMP identifier of this session's probes */
  readonly id: number;
  /** send one packet with this TTL / hop limit; rejects when the system refuses it (no route…) */
  send(target: string, ttl: number, packet: Buffer): Promise<void>;
  close(): void;
}

export interface ProbeNetwork {
  /** throws when no raw socket can be opened (errno text, e.g. `Operation not permitted`) */
  open(family: Family, onReply: (reply: IcmpReply) => void, onError: (err: Error) => void): ProbeSession;
}

interface RawSocket {
  on(event: 'message', cb: (buf: Buffer, source: string) => void): unknown;
  on(event: 'error', cb: (err: Error) => void): unknown;
  send(
    buf: Buffer,
    offset: number,
    length: number,
    address: string,
    before: (() => void) | null,
    after: (err: Error | null, bytes: number) => void,
  ): unknown;
  setOption(level: number, option: number, value: number): void;
  setOption(level: number, option: number, value: Buffer, length: number): void;
  close(): unknown;
}

interface RawSocketModule {
  createSocket(o: { addressFamily?: number; protocol?: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
  Protocol: { ICMP: number; ICMPv6: number };
  SocketLevel: { SOL_SOCKET: number; IPPROTO_IP: number; IPPROTO_IPV6: number };
  SocketOption: { SO_RCVBUF: number; IP_TTL: number; IPV6_UNICAST_HOPS: number };
}

let rawModule: RawSocketModule | null = null;
function raw(): RawSocketModule {
  rawModule ??= createRequire(import.meta.url)('raw-socket') as RawSocketModule;
  return rawModule;
}

// Linux socket options the module has no constants for
const SOL_RAW = 255,
  ICMP_FILTER = 1;
const IPPROTO_ICMPV6 = 58,
  ICMP6_FILTER = 1;

interface Shared {
  socket: RawSocket;
  sessions: Map<number, { onReply: (r: IcmpReply) => void; onError: (e: Error) => void }>;
}

function applyFilters(r: RawSocketModule, socket: RawSocket, family: Family): void {
  // best effort: a kernel without these options just hands us more to parse
  try {
    socket.setOption(r.SocketLevel.SOL_SOCKET, r.SocketOption.SO_RCVBUF, 256 * 1024);
  } catch {
    /* keep the default */
  }
  try {
    if (family === 4) {
      // struct icmp_filter: a bit set = that type is dropped
      let pass = 0;
      for (const t of WANTED_TYPES[4]) pass |= 1 << t;
      socket.setOption(SOL_RAW, ICMP_FILTER, ~pass >>> 0);
    } else {
      // struct icmp6_filter: 256 bits in 8 host-order words, a bit set = that type is blocked
      const words = new Array<number>(8).fill(0xffffffff);
      for (const t of WANTED_TYPES[6]) words[t >> 5] = (words[t >> 5]! & ~(1 << (t & 31))) >>> 0;
      const buf = Buffer.alloc(32);
      words.forEach((w, i) => (endianness() === 'LE' ? buf.writeUInt32LE(w, i * 4) : buf.writeUInt32BE(w, i * 4)));
      socket.setOption(IPPROTO_ICMPV6, ICMP6_FILTER, buf, buf.length);
    }
  } catch {
    /* no filter */
  }
}

export function createRawProbeNetwork(): ProbeNetwork {
  const shared = new Map<Family, Shared>();
  let nextId = Math.floor(Math.random() * 0x10000);

  const drop = (family: Family, s: Shared, err: Error | null): void => {
    if (shared.get(family) !== s) return;
    shared.delete(family);
    try {
      s.socket.close();
    } catch {
      /* already closed */
    }
    if (err) for (const sess of s.sessions.values()) sess.onError(err);
    s.sessions.clear();
  };

  const openShared = (family: Family): Shared => {
    const existing = shared.get(family);
    if (existing) return existing;
    const r = raw();
    const socket = r.createSocket({
      addressFamily: family === 4 ? r.AddressFamily.IPv4 : r.AddressFamily.IPv6,
      protocol: family === 4 ? r.Protocol.ICMP : r.Protocol.ICMPv6,
      bufferSize: 2048,
    });
    applyFilters(r, socket, family);
    const s: Shared = { socket, sessions: new Map() };
    socket.on('message', (buf, source) => {
      const reply = parseReply(family, buf, source);
      if (reply) s.sessions.get(reply.id)?.onReply(reply);
    });
    // raw-socket closes the socket after an 'error' event: every session of it has failed
    socket.on('error', (err) => drop(family, s, err));
    shared.set(family, s);
    return s;
  };

  return {
    open(family, onReply, onError) {
      const s = openShared(family);
      if (s.sessions.size >= 0xffff) throw new Error('too many traces at once');
      let id = nextId;
      while (s.sessions.has(id)) id = (id + 1) & 0xffff;
      nextId = (id + 1) & 0xffff;
      s.sessions.set(id, { onReply, onError });
      let closed = false;
      const r = raw();
      const [level, option] =
        family === 4
          ? [r.SocketLevel.IPPROTO_IP, r.SocketOption.IP_TTL]
          : [r.SocketLevel.IPPROTO_IPV6, r.SocketOption.IPV6_UNICAST_HOPS];
      return {
        id,
        send(target, ttl, packet) {
          return new Promise<void>((resolve, reject) => {
            if (closed || shared.get(family) !== s) {
              reject(new Error('trace closed'));
              return;
            }
            s.socket.send(
              packet,
              0,
              packet.length,
              target,
              () => s.socket.setOption(level, option, ttl),
              (err) => (err ? reject(err) : resolve()),
            );
          });
        },
        close() {
          if (closed) return;
          closed = true;
          if (s.sessions.get(id)?.onReply === onReply) s.sessions.delete(id);
          if (s.sessions.size === 0) drop(family, s, null);
        },
      };
    },
  };
}

let processNetwork: ProbeNetwork | null = null;

/** The process-wide raw probe network (shared sockets, unique ids across every trace of the process). */
export function rawProbeNetwork(): ProbeNetwork {
  processNetwork ??= createRawProbeNetwork();
  return processNetwork;
}
