/*
 * ip.ts — client addresses and networks for SPF (RFC 7208 §5.6, §7.3).
 *
 * Public: parseClientIp(text) -> ClientIp | undefined; parseIp4Network(text),
 *   parseIp6Network(text) (strict ABNF forms used by ip4:/ip6:), matchIp4(),
 *   matchIp6(), addressMatches(ip, addressText, cidr4, cidr6), reverseName(ip).
 * RFCs: RFC 7208 §5 (an IPv4-mapped IPv6 client is an IPv4 client), §5.6,
 *   §7.3 (the i, c and v macros), RFC 5952 (the readable IPv6 form of %{c}).
 * Addresses are held as numbers (IPv4: one uint32; IPv6: four uint32 words) so
 * that a CIDR test is a few integer operations.
 * Security: pure functions; they never touch the network.
 */

export interface ClientIp4 {
  readonly family: 4;
  readonly v4: number;
  /** %{i}: dotted quad. */
  readonly macroI: string;
  /** %{c}: dotted quad. */
  readonly macroC: string;
  /** the address handed to Resolver.reverse() */
  readonly text: string;
}
export interface ClientIp6 {
  readonly family: 6;
  readonly v6: Uint32Array;
  /** %{i}: 32 hex nibbles separated by dots (upper case, as pyspf and the RFC 7208 suite write them). */
  readonly macroI: string;
  /** %{c}: RFC 5952 text. */
  readonly macroC: string;
  readonly text: string;
}
export type ClientIp = ClientIp4 | ClientIp6;

const IP4_OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IP4_RE = new RegExp(`^${IP4_OCTET}\\.${IP4_OCTET}\\.${IP4_OCTET}\\.${IP4_OCTET}$`);

/** Strict dotted quad (no leading zeros, RFC 7208 §5.6 ip4-network) → uint32, or undefined. */
export function parseIp4Network(text: string): number | undefined {
  if (!IP4_RE.test(text)) return undefined;
  const p = text.split('.');
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

/** IPv6 text (RFC 4291 §2.2, with an optional trailing dotted quad) → four words, or undefined. */
export function parseIp6Network(text: string): Uint32Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  let head = text;
  let tail = '';
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    if (text.indexOf('::', dbl + 1) >= 0) return undefined;
    head = text.slice(0, dbl);
    tail = text.slice(dbl + 2);
  }
  const groups: number[] = [];
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === '' ? [] : tail.split(':');
  const all = dbl >= 0 ? tailParts : headParts;
  // an embedded IPv4 address may only end the text
  let v4: number | undefined;
  const last = all[all.length - 1];
  if (last !== undefined && last.includes('.')) {
    v4 = parseIp4Network(last);
    if (v4 === undefined) return undefined;
    all.pop();
  }
  const hex = (parts: string[]): number[] | undefined => {
    const out: number[] = [];
    for (const p of parts) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(p)) return undefined;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  const h = hex(headParts);
  const t = dbl >= 0 ? hex(tailParts) : [];
  if (h === undefined || t === undefined) return undefined;
  const v4Groups = v4 === undefined ? [] : [v4 >>> 16, v4 & 0xffff];
  const used = h.length + t.length + v4Groups.length;
  if (dbl >= 0) {
    if (used > 7) return undefined;
    groups.push(...h, ...new Array<number>(8 - used).fill(0), ...t, ...v4Groups);
  } else {
    if (used !== 8) return undefined;
    groups.push(...h, ...v4Groups);
  }
  const words = new Uint32Array(4);
  for (let i = 0; i < 4; i++) words[i] = (((groups[2 * i] ?? 0) << 16) | (groups[2 * i + 1] ?? 0)) >>> 0;
  return words;
}

function hex4(w: number): string {
  return (w >>> 0).toString(16).padStart(8, '0');
}

/** RFC 5952 text of four words. */
export function formatIp6(w: Uint32Array): string {
  const g: number[] = [];
  for (let i = 0; i < 4; i++) g.push((w[i] ?? 0) >>> 16, (w[i] ?? 0) & 0xffff);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const part = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return part(g);
  return `${part(g.slice(0, bestStart))}::${part(g.slice(bestStart + bestLen))}`;
}

function format4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function client4(v4: number): ClientIp4 {
  const t = format4(v4);
  return { family: 4, v4, macroI: t, macroC: t, text: t };
}

/**
 * Parses the SMTP client address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is an IPv4
 * client (RFC 7208 §5). Returns undefined when the text is not an address.
 */
export function parseClientIp(text: string): ClientIp | undefined {
  const v4 = parseIp4Network(text);
  if (v4 !== undefined) return client4(v4);
  const w = parseIp6Network(text);
  if (w === undefined) return undefined;
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return client4(w[3] ?? 0);
  const nibbles = (hex4(w[0] ?? 0) + hex4(w[1] ?? 0) + hex4(w[2] ?? 0) + hex4(w[3] ?? 0)).toUpperCase();
  const c = formatIp6(w);
  return { family: 6, v6: w, macroI: nibbles.split('').join('.'), macroC: c, text: c };
}

export function matchIp4(a: number, net: number, bits: number): boolean {
  if (bits <= 0) return true;
  const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
  return ((a ^ net) & mask) >>> 0 === 0;
}

export function matchIp6(a: Uint32Array, net: Uint32Array, bits: number): boolean {
  for (let i = 0; i < 4 && bits > 0; i++, bits -= 32) {
    const x = ((a[i] ?? 0) ^ (net[i] ?? 0)) >>> 0;
    if (bits >= 32) {
      if (x !== 0) return false;
    } else {
      const mask = (0xffffffff << (32 - bits)) >>> 0;
      if ((x & mask) >>> 0 !== 0) return false;
    }
  }
  return true;
}

/** Does an address returned by DNS (A or AAAA text) cover the client with the given prefix? */
export function addressMatches(ip: ClientIp, address: string, cidr4: number, cidr6: number): boolean {
  if (ip.family === 4) {
    const a = parseIp4Network(address);
    return a !== undefined && matchIp4(ip.v4, a, cidr4);
  }
  const w = parseIp6Network(address);
  return w !== undefined && matchIp6(ip.v6, w, cidr6);
}

/** Is the address text (as returned by resolve4/resolve6) exactly the client? */
export function addressEquals(ip: ClientIp, address: string): boolean {
  return addressMatches(ip, address, 32, 128);
}

/** The in-addr.arpa / ip6.arpa name of the client (lower case). */
export function reverseName(ip: ClientIp): string {
  if (ip.family === 4) return `${ip.macroI.split('.').reverse().join('.')}.in-addr.arpa`;
  return `${ip.macroI.toLowerCase().split('.').reverse().join('.')}.ip6.arpa`;
}
