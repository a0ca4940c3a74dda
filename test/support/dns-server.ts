/*
 * A loopback DNS server (dns2) for the e2e tests and benchmarks: answers from a plain records
 * object over UDP (node's resolver, c-ares) and DNS over HTTP (tangerine, DNSProtocol http).
 *
 * Public:
 *   startDnsServer({records?, udp? = true, doh? = true, host? = '127.0.0.1', port? = 0, soa?}) -> DnsServer
 *     port is the UDP port (0 = any; 53 works when root); the DoH port is always chosen freely.
 *     soa: {zone, ttl, minimum} or a list of them: an NXDOMAIN or NODATA answer for a name at or
 *     under a zone ('.' = every name; the longest matching zone wins) carries that zone's SOA in
 *     the authority section (RR TTL `ttl`, MINIMUM `minimum`), so a resolver can cache it (RFC
 *     2308); without soa (the default) negative answers have no authority section.
 *   DnsServer { udp: {host, port}; doh: "HOST:PORT"; set(records) (replace); add(name, rr);
 *     queries: {name, type, at, answeredAt?}[] (every query received, names lower case, no trailing dot;
 *     answeredAt: when its answer was sent, absent while none was: HANG, or a DELAY not over yet);
 *     clearQueries(); close() }
 *     (reading udp/doh of a transport that was not started throws)
 *   Records = { [owner]: RR[] }: owner case-insensitive, trailing dot optional. RR is
 *     {type:'A'|'AAAA', address} | {type:'PTR'|'CNAME', domain} | {type:'MX', priority, exchange}
 *     (exchange '' or '.' = null MX) | {type:'TXT', data: string | string[]}, each with ttl?
 *     (default 0, so no cache keeps an answer unless a test asks), or a behaviour for the name:
 *     {type:'SERVFAIL'|'REFUSED'|'HANG', only?} | {type:'DELAY', ms, only?} (only: one query type).
 *   Answers: no data records at the name -> NXDOMAIN; data but none of the type -> NOERROR/NODATA;
 *     a CNAME at the name is followed inside the records. HANG never answers (the client times out).
 *   reverseName(ip) -> 'd.c.b.a.in-addr.arpa' | '<32 nibbles>.ip6.arpa';
 *   rblName(ip, zone) -> 'd.c.b.a.ZONE' (IPv6: 32 reversed nibbles).
 * Security: binds loopback by default; serves test data only.
 */
import dns2 from 'dns2';
import { isIPv4, isIPv6 } from 'node:net';

const { Packet } = dns2;

export type RecordType = 'A' | 'AAAA' | 'PTR' | 'MX' | 'TXT' | 'CNAME';
export type DataRR =
  | { type: 'A' | 'AAAA'; address: string; ttl?: number }
  | { type: 'PTR' | 'CNAME'; domain: string; ttl?: number }
  | { type: 'MX'; priority: number; exchange: string; ttl?: number }
  | { type: 'TXT'; data: string | string[]; ttl?: number };
export type BehaviourRR =
  | { type: 'SERVFAIL' | 'REFUSED' | 'HANG'; only?: RecordType }
  | { type: 'DELAY'; ms: number; only?: RecordType };
export type RR = DataRR | BehaviourRR;
export type Records = Record<string, RR[]>;

/** The SOA put in the authority section of negative answers for names at or under `zone`. */
export interface SoaOption {
  zone: string;
  ttl: number;
  minimum: number;
}

export interface DnsServerOptions {
  records?: Records;
  soa?: SoaOption | readonly SoaOption[];
  udp?: boolean;
  doh?: boolean;
  host?: string;
  port?: number;
}

export interface DnsQuery {
  name: string;
  type: string;
  at: number;
  /** when the answer was sent (Date.now()); absent while none was */
  answeredAt?: number;
}

export interface DnsServer {
  readonly udp: { host: string; port: number };
  /** "host:port" of the DNS-over-HTTP server */
  readonly doh: string;
  readonly queries: DnsQuery[];
  set(records: Records): void;
  add(name: string, rr: RR): void;
  clearQueries(): void;
  close(): Promise<void>;
}

type Message = InstanceType<typeof Packet>;
const DATA_TYPES = new Set(['A', 'AAAA', 'PTR', 'MX', 'TXT', 'CNAME']);

const norm = (name: string): string => name.toLowerCase().replace(/\.$/, '');

function isData(rr: RR): rr is DataRR {
  return DATA_TYPES.has(rr.type);
}

function resource(owner: string, rr: DataRR): Record<string, unknown> {
  const base = { name: owner, class: Packet.CLASS.IN, ttl: rr.ttl ?? 0, type: Packet.TYPE[rr.type] };
  switch (rr.type) {
    case 'A':
    case 'AAAA':
      return { ...base, address: rr.address };
    case 'PTR':
    case 'CNAME':
      return { ...base, domain: norm(rr.domain) };
    case 'MX':
      return { ...base, priority: rr.priority, exchange: norm(rr.exchange) };
    case 'TXT':
      return { ...base, data: rr.data };
  }
}

export async function startDnsServer(options: DnsServerOptions = {}): Promise<DnsServer> {
  const host = options.host ?? '127.0.0.1';
  const useUdp = options.udp ?? true;
  const useDoh = options.doh ?? true;
  let zone = new Map<string, RR[]>();
  const queries: DnsQuery[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const set = (records: Records): void => {
    zone = new Map();
    for (const [name, rrs] of Object.entries(records)) for (const rr of rrs) add(name, rr);
  };
  const add = (name: string, rr: RR): void => {
    const key = norm(name);
    zone.set(key, [...(zone.get(key) ?? []), rr]);
  };

  const soas = (options.soa === undefined ? [] : Array.isArray(options.soa) ? options.soa : [options.soa as SoaOption])
    .map((o) => ({ ...o, zone: o.zone === '.' ? '' : norm(o.zone) }))
    .sort((a, b) => b.zone.length - a.zone.length);
  /** The authority SOA of a negative answer for `name` (the longest zone it is at or under). */
  function negative(response: Message, name: string): void {
    const n = norm(name);
    const soa = soas.find((o) => o.zone === '' || n === o.zone || n.endsWith(`.${o.zone}`));
    if (soa === undefined) return;
    response.authorities.push({
      name: soa.zone,
      type: Packet.TYPE.SOA,
      class: Packet.CLASS.IN,
      ttl: soa.ttl,
      primary: `ns.${soa.zone || 'root'}`,
      admin: `hostmaster.${soa.zone || 'root'}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expiration: 86400,
      minimum: soa.minimum,
    } as never);
  }

  /** Fills the response from the zone (follows CNAMEs, at most 8). */
  function answer(response: Message, qname: string, qtype: string): void {
    let owner = qname;
    for (let hops = 0; hops < 8; hops++) {
      const data = (zone.get(norm(owner)) ?? []).filter(isData);
      if (data.length === 0) {
        if (hops === 0) response.header.rcode = Packet.RCODE.NXDOMAIN;
        negative(response, owner);
        return;
      }
      const matching = data.filter((rr) => rr.type === qtype);
      const cname = data.find((rr) => rr.type === 'CNAME');
      if (matching.length === 0 && cname !== undefined) {
        response.answers.push(resource(owner, cname) as never);
        owner = norm((cname as { domain: string }).domain);
        continue;
      }
      for (const rr of matching) response.answers.push(resource(owner, rr) as never);
      if (matching.length === 0) negative(response, owner);
      return;
    }
  }

  const send = (reply: (m: Message) => unknown, m: Message): void => {
    if (closed) return;
    try {
      Promise.resolve(reply(m)).catch(() => undefined);
    } catch {
      // the socket went away; nothing to tell
    }
  };

  const server = dns2.createServer({
    ...(useDoh ? { doh: {} } : {}),
    ...(useUdp ? { udp: { type: host.includes(':') ? 'udp6' : 'udp4' } } : {}),
    handle(request: Message, reply: (m: Message) => unknown) {
      const response = Packet.createResponseFromRequest(request);
      response.header.aa = 1;
      response.header.ra = 1;
      const q = request.questions[0];
      if (q === undefined) {
        response.header.rcode = Packet.RCODE.FORMERR;
        send(reply, response);
        return;
      }
      const qtype = (Packet.TYPE_NAME as Record<number, string>)[q.type] ?? String(q.type);
      const query: DnsQuery = { name: norm(q.name), type: qtype, at: Date.now() };
      queries.push(query);
      const behaviours = (zone.get(norm(q.name)) ?? []).filter(
        (rr): rr is BehaviourRR => !isData(rr) && (rr.only === undefined || rr.only === qtype),
      );
      let delay = 0;
      for (const b of behaviours) {
        if (b.type === 'HANG') return;
        if (b.type === 'DELAY') delay = Math.max(delay, b.ms);
      }
      const failure = behaviours.find((b) => b.type === 'SERVFAIL' || b.type === 'REFUSED');
      const finish = (): void => {
        if (failure !== undefined) response.header.rcode = Packet.RCODE[failure.type as 'SERVFAIL' | 'REFUSED'];
        else answer(response, q.name, qtype);
        query.answeredAt = Date.now();
        send(reply, response);
      };
      if (delay === 0) return finish();
      const t = setTimeout(() => {
        timers.delete(t);
        finish();
      }, delay);
      timers.add(t);
    },
  } as never);

  const listen: Record<string, unknown> = {};
  if (useUdp) listen.udp = { port: options.port ?? 0, address: host };
  if (useDoh) listen.doh = { port: 0, address: host };
  const addrs = (await server.listen(listen as never)) as { udp?: { port: number }; doh?: { port: number } };
  set(options.records ?? {});

  const hostPort = (p: number): string => (host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`);
  const udpAddr = addrs.udp ? { host, port: addrs.udp.port } : undefined;
  const dohAddr = addrs.doh ? hostPort(addrs.doh.port) : undefined;
  return {
    get udp() {
      if (udpAddr === undefined) throw new Error('dns-server: UDP was not started');
      return udpAddr;
    },
    get doh() {
      if (dohAddr === undefined) throw new Error('dns-server: DoH was not started');
      return dohAddr;
    },
    queries,
    set,
    add,
    clearQueries() {
      queries.length = 0;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      // hanging DoH requests and keep-alive sockets would keep the HTTP server open
      const doh = (server as unknown as { servers: { doh?: { server: import('node:http').Server } } }).servers.doh;
      doh?.server.closeAllConnections();
      await server.close();
    },
  };
}

/** The 32 hex nibbles of an IPv6 address, most significant first. */
function nibbles(ip: string): string[] {
  let s = ip.toLowerCase().replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4?.[1] !== undefined) {
    const b = v4[1].split('.').map(Number);
    s = s.slice(0, -v4[1].length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head = '', tail] = s.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups
    .map((g) => g.padStart(4, '0'))
    .join('')
    .split('');
}

function reversed(ip: string): string {
  if (isIPv4(ip)) return ip.split('.').reverse().join('.');
  if (isIPv6(ip)) return nibbles(ip).reverse().join('.');
  throw new Error(`dns-server: not an IP address: ${ip}`);
}

/** The PTR owner name of an address: d.c.b.a.in-addr.arpa or 32 reversed nibbles .ip6.arpa. */
export function reverseName(ip: string): string {
  return `${reversed(ip)}.${isIPv4(ip) ? 'in-addr.arpa' : 'ip6.arpa'}`;
}

/** The DNSBL query name of an address in a zone: d.c.b.a.ZONE (IPv6: 32 reversed nibbles). */
export function rblName(ip: string, zone: string): string {
  return `${reversed(ip)}.${norm(zone)}`;
}
