/**
 * IP address and network values for asmtpd.conf (BindAddr, RelayNet, RelayHost, MetricsListen).
 *
 * Public: parseIpAddress(text), parseCidr(text), parseListenAddress(text), formatIpv6(hextets).
 * Validation uses node:net isIP. IPv6 addresses are normalised to the RFC 5952 text form
 * (lower case, no leading zeros, the longest run of zero groups as `::`), so that the same
 * address always prints the same way in logs and --check. A CIDR's network is masked
 * (10.1.2.3/8 → 10.0.0.0/8, with a warning); a bare address is a /32 or /128.
 */
import { isIP } from 'node:net';
import type { Cidr, ListenAddress } from './types.js';
import { parsePort, type Parsed } from './values.js';

/** An IPv4 or IPv6 address (an IPv6 zone such as `%eth0` is kept). */
export function parseIpAddress(text: string): Parsed<string> {
  const family = isIP(text);
  if (family === 4) return { kind: 'ok', value: text };
  if (family === 6) {
    const [address = '', zone] = text.split('%', 2);
    const hextets = ipv6Hextets(address);
    if (hextets === null) return { kind: 'error', message: 'expected an IPv4 or IPv6 address' };
    return { kind: 'ok', value: formatIpv6(hextets) + (zone === undefined ? '' : `%${zone}`) };
  }
  return { kind: 'error', message: 'expected an IPv4 or IPv6 address' };
}

/** An address and a port to listen on: `127.0.0.1:9725`, `[::1]:9725` (MetricsListen). */
export function parseListenAddress(text: string): Parsed<ListenAddress> {
  const m = /^\[([^\]]+)\]:([^:]*)$/.exec(text) ?? /^([^:[\]]+):([^:]*)$/.exec(text);
  const bracketed = text.startsWith('[');
  const address = m ? parseIpAddress(m[1]!) : null;
  if (!m || !address || address.kind === 'error' || bracketed !== m[1]!.includes(':'))
    return { kind: 'error', message: 'expected address:port, e.g. 127.0.0.1:9725 or [::1]:9725' };
  const port = parsePort(m[2]!);
  if (port.kind === 'error') return port;
  return { kind: 'ok', value: { host: address.value, port: port.value, text } };
}

/** A network: `address/prefix` or a bare address (/32, /128). */
export function parseCidr(text: string): Parsed<Cidr> {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? null : text.slice(slash + 1);
  const detected = isIP(addressText);
  if (detected === 0 || addressText.includes('%')) {
    return { kind: 'error', message: 'expected a network: an IPv4 or IPv6 address, optionally with /prefix' };
  }
  const family: 4 | 6 = detected === 4 ? 4 : 6;
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (prefixText !== null) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) {
      return { kind: 'error', message: `prefix length must be 0 to ${bits} for IPv${family}` };
    }
    prefix = Number(prefixText);
  }
  const bytes = family === 4 ? ipv4Bytes(addressText) : ipv6Bytes(addressText);
  if (bytes === null) return { kind: 'error', message: 'expected an IPv4 or IPv6 address' };
  const masked = maskBytes(bytes, prefix);
  const address = family === 4 ? masked.join('.') : formatIpv6(bytesToHextets(masked));
  const hostBitsSet = masked.some((b, i) => b !== bytes[i]);
  const value: Cidr = { family, address, prefix, text };
  return hostBitsSet
    ? { kind: 'ok', value, warning: `${text} has host bits set; using the network ${address}/${prefix}` }
    : { kind: 'ok', value };
}

function ipv4Bytes(text: string): number[] {
  return text.split('.').map(Number);
}

function ipv6Bytes(text: string): number[] | null {
  const hextets = ipv6Hextets(text);
  return hextets === null ? null : hextets.flatMap((h) => [h >> 8, h & 0xff]);
}

function bytesToHextets(bytes: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += 2) out.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  return out;
}

function maskBytes(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

/** The 8 groups of a valid IPv6 address (as accepted by isIP, without zone), or null. */
function ipv6Hextets(text: string): number[] | null {
  let body = text;
  const tail: number[] = [];
  const lastColon = body.lastIndexOf(':');
  const lastPart = body.slice(lastColon + 1);
  if (lastPart.includes('.')) {
    if (isIP(lastPart) !== 4) return null;
    const [a = 0, b = 0, c = 0, d = 0] = ipv4Bytes(lastPart);
    tail.push((a << 8) | b, (c << 8) | d);
    const before = body.slice(0, lastColon + 1); // ends with ':' or '::'
    body = before.endsWith('::') ? before : before.slice(0, -1);
  }
  const halves = body.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const head = parse(halves[0] ?? '');
  const rest = halves.length === 2 ? parse(halves[1] ?? '') : [];
  const missing = 8 - head.length - rest.length - tail.length;
  if (halves.length === 2 ? missing < 0 : missing !== 0) return null;
  const groups = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...rest, ...tail];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : null;
}

/** RFC 5952 text of 8 IPv6 groups: lower case, no leading zeros, longest zero run (≥ 2) as `::`. */
export function formatIpv6(hextets: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < hextets.length; ) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < hextets.length && hextets[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = hextets.map((h) => h.toString(16));
  if (bestLength < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
