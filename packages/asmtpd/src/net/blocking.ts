/**
 * blocking.ts — the arithmetic of dictionary-attack blocking (issue 19, seeds.md §B), no I/O.
 *
 *   blockNetOf(ip, {v4, v6}) -> "192.0.2.0/24" | "2001:db8:1:2::/64" | null
 *                              the network a client's counts and block belong to (BlockNetmask);
 *                              an IPv4-mapped IPv6 address is its IPv4 address; null: not an address
 *   parseBlockNet(text) -> {net, family, prefix} | null   an admin's `IP` or `IP/N` as a block key
 *   blockDurationMs(offence, {blockTimeMs, blockTimeMaxMs}) -> ms
 *                              BlockTime for the first offence, doubled for each repeat, capped
 *   BlockSet                   the daemon's in-memory copy of the live blocks: has(ip, now) is one
 *                              Map lookup per prefix length in use (one or two in practice)
 *
 * A block key is the network in its canonical text (`address/prefix`, host bits zero, IPv6 in
 * node:net's compressed form), so that the daemon, the command line and the exports agree.
 */
import { isIPv4, isIPv6, SocketAddress } from 'node:net';

export interface Netmasks {
  v4: number;
  v6: number;
}

export interface BlockNet {
  net: string;
  family: 4 | 6;
  prefix: number;
}

const MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

function v4Bytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

function v6Bytes(ip: string): number[] | null {
  // SocketAddress normalizes the text; expand '::' into zero groups
  const sides = ip.split('::');
  if (sides.length > 2) return null;
  const head = sides[0] ? sides[0].split(':') : [];
  const tail = sides.length === 2 && sides[1] ? sides[1].split(':') : [];
  // an embedded IPv4 tail (::1.2.3.4)
  const last = tail.length ? tail : head;
  const v4 = last.length && last[last.length - 1]!.includes('.') ? last.pop()! : null;
  const groups = [
    ...head,
    ...(sides.length === 2 ? Array(8 - head.length - tail.length - (v4 ? 2 : 0)).fill('0') : []),
    ...tail,
  ];
  const bytes: number[] = [];
  for (const g of groups) {
    const n = parseInt(g, 16);
    bytes.push(n >> 8, n & 255);
  }
  if (v4) bytes.push(...v4Bytes(v4));
  return bytes.length === 16 ? bytes : null;
}

function masked(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    return bits === 8 ? b : b & ((0xff << (8 - bits)) & 0xff);
  });
}

function v6Text(bytes: number[]): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // let node:net pick the canonical compressed form
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

function netOf(ip: string, family: 4 | 6, prefix: number): string | null {
  if (family === 4) return `${masked(v4Bytes(ip), prefix).join('.')}/${prefix}`;
  const bytes = v6Bytes(ip.toLowerCase());
  return bytes ? `${v6Text(masked(bytes, prefix))}/${prefix}` : null;
}

export function blockNetOf(ip: string, masks: Netmasks): string | null {
  const addr = MAPPED.exec(ip)?.[1] ?? ip;
  if (isIPv4(addr)) return netOf(addr, 4, masks.v4);
  if (isIPv6(addr)) return netOf(addr, 6, masks.v6);
  return null;
}

/** `IP` (a /32 or /128) or `IP/N`; host bits are masked off. */
export function parseBlockNet(text: string): BlockNet | null {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!m) return null;
  const addr = MAPPED.exec(m[1]!)?.[1] ?? m[1]!;
  const family = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : null;
  if (family === null) return null;
  const max = family === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix < 1 || prefix > max) return null;
  const net = netOf(addr, family, prefix);
  return net ? { net, family, prefix } : null;
}

/** offence 1 is the first block: BlockTime; each further one doubles, up to BlockTimeMax. */
export function blockDurationMs(offence: number, t: { blockTimeMs: number; blockTimeMaxMs: number }): number {
  const doublings = Math.min(Math.max(0, offence - 1), 40);
  return Math.min(t.blockTimeMs * 2 ** doublings, Math.max(t.blockTimeMs, t.blockTimeMaxMs));
}

export interface LiveBlock {
  net: string;
  until: number;
}

/** The live blocks in memory, looked up by client address. */
export class BlockSet {
  private byNet = new Map<string, number>();
  /** the prefix lengths in use per family, longest first */
  private prefixes: { 4: number[]; 6: number[] } = { 4: [], 6: [] };

  /** replace the whole set (a reload from the database) */
  replace(blocks: Iterable<LiveBlock>): void {
    this.byNet = new Map();
    this.prefixes = { 4: [], 6: [] };
    for (const b of blocks) this.add(b);
  }
  add(b: LiveBlock): void {
    const parsed = parseBlockNet(b.net);
    if (!parsed) return;
    this.byNet.set(parsed.net, Math.max(b.until, this.byNet.get(parsed.net) ?? 0));
    const list = this.prefixes[parsed.family];
    if (!list.includes(parsed.prefix)) {
      list.push(parsed.prefix);
      list.sort((a, b2) => b2 - a);
    }
  }
  delete(net: string): void {
    this.byNet.delete(net);
  }
  get size(): number {
    return this.byNet.size;
  }
  /** the block covering ip that is still running at now, if any */
  find(ip: string, now: number): LiveBlock | null {
    if (this.byNet.size === 0) return null;
    const addr = MAPPED.exec(ip)?.[1] ?? ip;
    const family = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : null;
    if (family === null) return null;
    for (const prefix of this.prefixes[family]) {
      const net = netOf(addr, family, prefix);
      const until = net === null ? undefined : this.byNet.get(net);
      if (net !== null && until !== undefined && until > now) return { net, until };
    }
    return null;
  }
}
