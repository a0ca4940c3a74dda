/**
 * proxy-header.ts — the PROXY protocol header (HAProxy's proxy-protocol.txt, v1 text and v2
 * binary) that a listed load balancer (ProxyProtocol) sends before the SMTP session: who the
 * client really is. The only importer of proxy-protocol-js, which decodes both versions; this
 * module frames the header on the socket (v1: one line of at most 107 octets ending in CRLF; v2:
 * 16 octets, then the length they announce), checks what the library leaves open (addresses that
 * are addresses, ports in range, a stream transport) and hands back what follows it.
 *
 *   readProxyHeader(socket, timeoutMs, done)   reads the header, then done(ProxyHeaderResult) once;
 *                                              the bytes after it are left on the socket
 *   startsWithProxyHeader(chunk) -> boolean    the first bytes of a connection look like a header
 *
 * Results: `proxied` with the client's address and port; `local` for a header that carries no
 * client (v2 LOCAL, a proxy's own health check; v1 UNKNOWN; v2 UNSPEC): the spec says to use the
 * connection's own addresses then; `refused` with a reason (ProxyRefusal) for anything else: the
 * caller closes the connection.
 *
 * SECURITY: the header is not authenticated; it is read only from the peers ProxyProtocol lists
 * (the caller checks), and what it says is taken only when it is a plain IPv4 or IPv6 address
 * (it ends up in logs, headers and scripts' variables). Nothing before the header is answered.
 */
import { isIP, type Socket } from 'node:net';
import ppjs from 'proxy-protocol-js';

const { V1BinaryProxyProtocol, V2ProxyProtocol, Command, AddressFamilyType, TransportProtocol } = ppjs;

/** Why a connection from a listed peer (or a header from an unlisted one) was closed. */
export type ProxyRefusal =
  /** the peer's first bytes are not a PROXY header (a proxy without send-proxy, or a client) */
  | 'no-header'
  /** a header that does not parse, or whose addresses or ports are not usable */
  | 'invalid'
  /** no complete header within the timeout */
  | 'timeout'
  /** the peer closed (or reset) the connection before the header was complete */
  | 'closed'
  /** a header from a peer that ProxyProtocol does not list (checked by boundary.ts) */
  | 'not-listed';

export type ProxyHeaderResult =
  | { kind: 'proxied'; version: 1 | 2; client: { ip: string; port: number } }
  | { kind: 'local'; version: 1 | 2 }
  | { kind: 'refused'; reason: ProxyRefusal; detail: string };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** v1: "PROXY TCP6 <39> <39> <5> <5>\r\n" is 107 octets at most (proxy-protocol.txt §2.1) */
const V1_MAX_OCTETS = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_OCTETS = 16;

/** The first bytes a connection sends are a PROXY header (v1 "PROXY " or the v2 signature). */
export function startsWithProxyHeader(chunk: Buffer): boolean {
  return (
    (chunk.length >= V1_PREFIX.length && chunk.subarray(0, V1_PREFIX.length).equals(V1_PREFIX)) ||
    (chunk.length >= V2_SIGNATURE.length && chunk.subarray(0, V2_SIGNATURE.length).equals(V2_SIGNATURE))
  );
}

/** Where the header ends in `buf`, or 0 when more bytes are needed, or a refusal. */
function frame(buf: Buffer): number | { reason: ProxyRefusal; detail: string } {
  const first = buf[0];
  if (first === V1_PREFIX[0]) {
    const n = Math.min(buf.length, V1_PREFIX.length);
    if (!buf.subarray(0, n).equals(V1_PREFIX.subarray(0, n))) return { reason: 'no-header', detail: 'not PROXY' };
    const lf = buf.indexOf(0x0a);
    if (lf < 0) return buf.length >= V1_MAX_OCTETS ? { reason: 'invalid', detail: 'v1 line too long' } : 0;
    if (lf + 1 > V1_MAX_OCTETS) return { reason: 'invalid', detail: 'v1 line too long' };
    if (buf[lf - 1] !== 0x0d) return { reason: 'invalid', detail: 'v1 line without CRLF' };
    return lf + 1;
  }
  if (first === V2_SIGNATURE[0]) {
    const n = Math.min(buf.length, V2_SIGNATURE.length);
    if (!buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return { reason: 'no-header', detail: 'not PROXY' };
    if (buf.length < V2_FIXED_OCTETS) return 0;
    const total = V2_FIXED_OCTETS + buf.readUInt16BE(14);
    return buf.length >= total ? total : 0;
  }
  return { reason: 'no-header', detail: 'not PROXY' };
}

function refused(reason: ProxyRefusal, detail: string): ProxyHeaderResult {
  return { kind: 'refused', reason, detail };
}

const validPort = (port: number): boolean => Number.isInteger(port) && port >= 0 && port <= 65535;

/** A v1 line, CRLF included: "PROXY TCP4|TCP6 src dst sport dport" or "PROXY UNKNOWN …". */
export function parseV1(line: Buffer): ProxyHeaderResult {
  // UNKNOWN may be followed by anything up to the CRLF (§2.1): the connection's own addresses
  if (line.subarray(0, 13).toString('latin1') === 'PROXY UNKNOWN') return { kind: 'local', version: 1 };
  let h: InstanceType<typeof V1BinaryProxyProtocol>;
  try {
    h = V1BinaryProxyProtocol.parse(line);
  } catch (e) {
    return refused('invalid', `v1: ${(e as { message?: string }).message ?? 'unreadable'}`);
  }
  const family = h.inetProtocol === 'TCP6' ? 6 : 4;
  if (isIP(h.source.ipAddress) !== family || isIP(h.destination.ipAddress) !== family)
    return refused('invalid', `v1: addresses are not ${h.inetProtocol} addresses`);
  if (!validPort(h.source.port) || !validPort(h.destination.port)) return refused('invalid', 'v1: port out of range');
  if (h.data && h.data.length > 0) return refused('invalid', 'v1: bytes after the line');
  return { kind: 'proxied', version: 1, client: { ip: h.source.ipAddress, port: h.source.port } };
}

function ipv6Text(bytes: readonly number[]): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // the longest run of two or more zero groups becomes "::" (RFC 5952 §4.2)
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** A whole v2 header (16 octets and the length they announce). */
export function parseV2(header: Buffer): ProxyHeaderResult {
  let h: InstanceType<typeof V2ProxyProtocol>;
  try {
    h = V2ProxyProtocol.parse(header);
  } catch (e) {
    return refused('invalid', `v2: ${(e as { message?: string }).message ?? 'unreadable'}`);
  }
  if (h.command === Command.LOCAL) return { kind: 'local', version: 2 };
  if (h.addressFamilyType === AddressFamilyType.UNSPEC) return { kind: 'local', version: 2 };
  if (h.transportProtocol !== TransportProtocol.STREAM) return refused('invalid', 'v2: not a stream connection');
  const a = h.proxyAddress as { sourceAddress?: { address: number[] }; sourcePort?: number };
  if (!a.sourceAddress || a.sourcePort === undefined) return refused('invalid', 'v2: not an IPv4 or IPv6 address');
  const ip =
    h.addressFamilyType === AddressFamilyType.INET
      ? a.sourceAddress.address.join('.')
      : h.addressFamilyType === AddressFamilyType.INET6
        ? ipv6Text(a.sourceAddress.address)
        : null;
  if (ip === null || isIP(ip) === 0) return refused('invalid', 'v2: not an IPv4 or IPv6 address');
  return { kind: 'proxied', version: 2, client: { ip, port: a.sourcePort } };
}

/**
 * Read the PROXY header at the start of `socket` (before anything else reads it) and call `done`
 * once; the bytes after the header are put back (unshift) for the SMTP session.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number, done: (r: ProxyHeaderResult) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let finished = false;
  const finish = (r: ProxyHeaderResult, rest?: Buffer): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.removeListener('readable', onReadable);
    socket.removeListener('end', onEnd);
    socket.removeListener('close', onEnd);
    socket.removeListener('error', onError);
    if (rest && rest.length > 0) socket.unshift(rest);
    done(r);
  };
  const onReadable = (): void => {
    let chunk: Buffer | null;
    while (!finished && (chunk = socket.read() as Buffer | null) !== null) {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const end = frame(buf);
      if (typeof end === 'object') return finish(refused(end.reason, end.detail));
      if (end === 0) continue;
      const header = buf.subarray(0, end);
      return finish(header[0] === V1_PREFIX[0] ? parseV1(header) : parseV2(header), buf.subarray(end));
    }
  };
  const onEnd = (): void => finish(refused('closed', `after ${buf.length} octets`));
  const onError = (e: Error): void => finish(refused('closed', e.message));
  const timer = setTimeout(() => finish(refused('timeout', `after ${buf.length} octets`)), timeoutMs);
  timer.unref();
  socket.on('readable', onReadable);
  socket.on('end', onEnd);
  socket.on('close', onEnd);
  socket.on('error', onError);
}
