/**
 * syn-packet.ts — decode a captured TCP SYN into the fields a pf.os fingerprint needs
 * (spec asmtpd.md §4 CLIENT_SYNFP; pf.os header; OpenBSD pf_osfp_fingerprint_hdr).
 *
 *   parseSynPacket(buf) -> SynInfo | null     buf starts at the IP header (IPv4, or IPv6 with
 *     hop-by-hop/routing/destination-options extension headers skipped)
 *   parseTcpSyn(tcp, ip) -> SynInfo | null    buf is the TCP header only (Linux IPv6 raw sockets
 *     strip the IPv6 header): the addresses and hop limit come from the caller
 *
 * Both return null, never throw, for anything that is not a usable SYN: not SYN or SYN+ACK,
 * a fragment, not TCP, headers cut short, or malformed TCP options (pf gives up on those too).
 *
 * Field semantics (what fingerprint.ts formats):
 *   ttl          the OBSERVED TTL / hop limit (the matcher works out the initial TTL and distance)
 *   df           IPv4: the Don't Fragment bit; IPv6: always 1 (IPv6 routers never fragment; pf
 *                and p0f v2 treat IPv6 as DF)
 *   totalLength  IPv4: the IP total length field; IPv6: 40 + payload length, i.e. with the IPv6
 *                header counted as pf does (an IPv6 SYN is 20 bytes larger than its IPv4 twin;
 *                the matcher allows for that)
 *   options      TCP options in packet order; E (end of list) stops the walk; unknown kinds are
 *                kept as `?N` so the string shows them (pf.os never matches them)
 *   quirks       p0f v2 letters, informational only (pf.os does not use them): A ack number set,
 *                D data after the header, F flags other than SYN/ECE/CWR, I IPv4 options,
 *                P bytes after EOL, T non-zero timestamp echo, U urgent pointer, X reserved bits,
 *                Z IPv4 ID zero
 */

export type TcpOption =
  | { kind: 'M'; value: number }
  | { kind: 'W'; value: number }
  | { kind: 'S' }
  | { kind: 'T'; zero: boolean }
  | { kind: 'N' }
  | { kind: 'E' }
  | { kind: '?'; code: number };

export interface SynInfo {
  family: 4 | 6;
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  ttl: number;
  df: 0 | 1;
  totalLength: number;
  window: number;
  options: TcpOption[];
  /** the MSS option's value, null without one */
  mss: number | null;
  quirks: string[];
}

/** What the caller knows about the IP layer when it only has the TCP header. */
export interface SynIpMeta {
  family: 4 | 6;
  srcIp: string;
  dstIp: string;
  ttl: number;
  /** default: 1 for IPv6, 0 for IPv4 */
  df?: 0 | 1;
  /** default: IP header (40 or 20) + tcp.length */
  totalLength?: number;
}

const TH_FIN = 0x01,
  TH_SYN = 0x02,
  TH_RST = 0x04,
  TH_PUSH = 0x08,
  TH_ACK = 0x10,
  TH_URG = 0x20;

export function parseSynPacket(buf: Buffer): SynInfo | null {
  if (buf.length < 1) return null;
  const version = buf[0]! >> 4;
  return version === 4 ? parseIpv4(buf) : version === 6 ? parseIpv6(buf) : null;
}

function parseIpv4(buf: Buffer): SynInfo | null {
  const ihl = (buf[0]! & 0x0f) * 4;
  if (ihl < 20 || buf.length < ihl) return null;
  const fragment = buf.readUInt16BE(6);
  if ((fragment & 0x1fff) !== 0 || buf[9] !== 6) return null; // a non-first fragment, or not TCP
  const totalLength = buf.readUInt16BE(2);
  const end = totalLength >= ihl && totalLength <= buf.length ? totalLength : buf.length;
  const quirks: string[] = [];
  if (ihl > 20) quirks.push('I');
  if (buf.readUInt16BE(4) === 0) quirks.push('Z');
  return parseTcpSyn(
    buf.subarray(ihl, end),
    {
      family: 4,
      srcIp: `${buf[12]}.${buf[13]}.${buf[14]}.${buf[15]}`,
      dstIp: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`,
      ttl: buf[8]!,
      df: fragment & 0x4000 ? 1 : 0,
      totalLength,
    },
    quirks,
  );
}

function parseIpv6(buf: Buffer): SynInfo | null {
  if (buf.length < 40) return null;
  let next = buf[6]!;
  let off = 40;
  while (next === 0 || next === 43 || next === 60) {
    // hop-by-hop, routing, destination options
    if (buf.length < off + 2) return null;
    next = buf[off]!;
    off += (buf[off + 1]! + 1) * 8;
  }
  if (next !== 6 || buf.length < off) return null; // fragment header (44), or not TCP
  const payloadLength = buf.readUInt16BE(4);
  const end = payloadLength > 0 && 40 + payloadLength <= buf.length ? 40 + payloadLength : buf.length;
  return parseTcpSyn(buf.subarray(off, end), {
    family: 6,
    srcIp: ipv6Text(buf.subarray(8, 24)),
    dstIp: ipv6Text(buf.subarray(24, 40)),
    ttl: buf[7]!,
    df: 1,
    totalLength: 40 + payloadLength,
  });
}

export function parseTcpSyn(tcp: Buffer, ip: SynIpMeta, ipQuirks: string[] = []): SynInfo | null {
  if (tcp.length < 20) return null;
  const doff = (tcp[12]! >> 4) * 4;
  const flags = tcp[13]!;
  if (doff < 20 || tcp.length < doff || (flags & (TH_SYN | TH_ACK)) !== TH_SYN) return null;
  const quirks = [...ipQuirks];
  const options = parseOptions(tcp.subarray(20, doff), quirks);
  if (options === null) return null;
  if (tcp.readUInt32BE(8) !== 0) quirks.push('A');
  if (tcp.length > doff) quirks.push('D');
  if (flags & (TH_FIN | TH_RST | TH_PUSH | TH_URG)) quirks.push('F');
  if (tcp.readUInt16BE(18) !== 0) quirks.push('U');
  if ((tcp[12]! & 0x0f) !== 0) quirks.push('X');
  const mss = options.find((o) => o.kind === 'M');
  return {
    family: ip.family,
    srcIp: ip.srcIp,
    srcPort: tcp.readUInt16BE(0),
    dstIp: ip.dstIp,
    dstPort: tcp.readUInt16BE(2),
    ttl: ip.ttl,
    df: ip.df ?? (ip.family === 6 ? 1 : 0),
    totalLength: ip.totalLength ?? (ip.family === 6 ? 40 : 20) + tcp.length,
    window: tcp.readUInt16BE(14),
    options,
    mss: mss?.kind === 'M' ? mss.value : null,
    quirks: quirks.sort(),
  };
}

/** Walk the option bytes; null when an option's length is wrong or runs past the header. */
function parseOptions(b: Buffer, quirks: string[]): TcpOption[] | null {
  const out: TcpOption[] = [];
  let i = 0;
  while (i < b.length) {
    const kind = b[i]!;
    if (kind === 0) {
      out.push({ kind: 'E' });
      if (b.subarray(i + 1).some((x) => x !== 0)) quirks.push('P');
      break;
    }
    if (kind === 1) {
      out.push({ kind: 'N' });
      i += 1;
      continue;
    }
    const len = b[i + 1];
    if (len === undefined || len < 2 || i + len > b.length) return null;
    const want = ({ 2: 4, 3: 3, 4: 2, 8: 10 } as Record<number, number>)[kind];
    if (want !== undefined && len !== want) return null;
    if (kind === 2) out.push({ kind: 'M', value: b.readUInt16BE(i + 2) });
    else if (kind === 3) out.push({ kind: 'W', value: b[i + 2]! });
    else if (kind === 4) out.push({ kind: 'S' });
    else if (kind === 8) {
      out.push({ kind: 'T', zero: b.readUInt32BE(i + 2) === 0 });
      if (b.readUInt32BE(i + 6) !== 0) quirks.push('T');
    } else out.push({ kind: '?', code: kind });
    i += len;
  }
  return out;
}

/** RFC 5952 text of a 16-byte address (longest run of zero groups compressed). */
function ipv6Text(b: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  let bestStart = -1,
    bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
