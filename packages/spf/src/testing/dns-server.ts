/*
 * testing/dns-server.ts — a loopback DNS server (dns2) answering from a suite Zone, over DoH
 *   (http) and/or UDP. For the tests (spf-check through tangerine) and bench/spf.
 *
 * Public: startZoneServer(zone, options) -> ZoneServer {doh?: "127.0.0.1:PORT", udp?: {...},
 *   setZone(zone), queries() (questions received so far, over either transport), close()}.
 * TIMEOUT names: with timeouts "hang" the query is never answered (the client's own timeout
 *   fires, as in the suite), with "servfail" they get SERVFAIL at once (the benchmark, which
 *   measures SPF work, not waiting).
 * Security: binds 127.0.0.1 only (the host is an option for ::1); serves test data only.
 */
import dns2 from 'dns2';
import type { Zone, ZoneEntry, RecordType } from './zone.js';

const { Packet } = dns2;

export interface ZoneServerOptions {
  doh?: boolean;
  udp?: boolean;
  host?: string;
  dohPort?: number;
  udpPort?: number;
  timeouts?: 'hang' | 'servfail';
}

export interface ZoneServer {
  /** "host:port" of the DoH server */
  readonly doh?: string;
  readonly udp?: { host: string; port: number };
  setZone(zone: Zone): void;
  /** questions received so far (over DoH and UDP) */
  queries(): number;
  close(): Promise<void>;
}

const TYPE_NAMES: Record<number, RecordType> = {
  [Packet.TYPE.A]: 'A',
  [Packet.TYPE.AAAA]: 'AAAA',
  [Packet.TYPE.MX]: 'MX',
  [Packet.TYPE.TXT]: 'TXT',
  [Packet.TYPE.PTR]: 'PTR',
  [Packet.TYPE.CNAME]: 'CNAME',
};

/** A suite string's characters are octets (the YAML writes them as \xNN). */
function octets(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

function resource(name: string, e: ZoneEntry): Record<string, unknown> | undefined {
  const base = { name, class: Packet.CLASS.IN, ttl: 0 };
  switch (e.type) {
    case 'A':
      return { ...base, type: Packet.TYPE.A, address: e.value };
    case 'AAAA':
      return { ...base, type: Packet.TYPE.AAAA, address: e.value };
    case 'PTR':
      return { ...base, type: Packet.TYPE.PTR, domain: e.value.replace(/\.$/, '') };
    case 'CNAME':
      return { ...base, type: Packet.TYPE.CNAME, domain: e.value.replace(/\.$/, '') };
    case 'MX':
      return { ...base, type: Packet.TYPE.MX, priority: e.priority, exchange: e.exchange === '' ? '' : e.exchange };
    case 'TXT':
    case 'SPF':
      return { ...base, type: Packet.TYPE.TXT, data: e.strings.map(octets) };
    default:
      return undefined;
  }
}

export async function startZoneServer(initial: Zone, options: ZoneServerOptions = {}): Promise<ZoneServer> {
  let zone = initial;
  const host = options.host ?? '127.0.0.1';
  const hang = (options.timeouts ?? 'hang') === 'hang';
  let received = 0;
  const server = dns2.createServer({
    ...(options.doh ? { doh: {} } : {}),
    ...(options.udp ? { udp: { type: host.includes(':') ? 'udp6' : 'udp4' } } : {}),
    handle(request: InstanceType<typeof Packet>, send: (p: InstanceType<typeof Packet>) => void) {
      received++;
      const response = Packet.createResponseFromRequest(request);
      response.header.aa = 1;
      response.header.ra = 1;
      const q = request.questions[0];
      const type = q === undefined ? undefined : TYPE_NAMES[q.type];
      if (q === undefined || type === undefined) {
        response.header.rcode = Packet.RCODE.NOTIMP;
        send(response);
        return;
      }
      const a = zone.lookup(q.name, type);
      switch (a.kind) {
        case 'nxdomain':
          response.header.rcode = Packet.RCODE.NXDOMAIN;
          break;
        case 'servfail':
          response.header.rcode = Packet.RCODE.SERVFAIL;
          break;
        case 'timeout':
          if (hang) return;
          response.header.rcode = Packet.RCODE.SERVFAIL;
          break;
        case 'nodata':
          break;
        case 'records': {
          let owner = q.name;
          if (a.cname) {
            response.answers.push({
              name: q.name,
              class: Packet.CLASS.IN,
              ttl: 0,
              type: Packet.TYPE.CNAME,
              domain: a.cname.target,
            } as never);
            owner = a.cname.target;
          }
          for (const e of a.records) {
            const rr = resource(owner, e);
            if (rr !== undefined) response.answers.push(rr as never);
          }
        }
      }
      send(response);
    },
  } as never);
  const listenOpts: Record<string, unknown> = {};
  if (options.doh) listenOpts.doh = { port: options.dohPort ?? 0, address: host };
  if (options.udp) listenOpts.udp = { port: options.udpPort ?? 0, address: host };
  const addrs = (await server.listen(listenOpts as never)) as { doh?: { port: number }; udp?: { port: number } };
  const hostPort = (p: number): string => (host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`);
  return {
    ...(addrs.doh ? { doh: hostPort(addrs.doh.port) } : {}),
    ...(addrs.udp ? { udp: { host, port: addrs.udp.port } } : {}),
    setZone(z: Zone) {
      zone = z;
    },
    queries: () => received,
    async close() {
      const doh = (server as unknown as { servers: { doh?: { server: import('node:http').Server } } }).servers.doh;
      doh?.server.closeAllConnections();
      await server.close();
    },
  };
}
