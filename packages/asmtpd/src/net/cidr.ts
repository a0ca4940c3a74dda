/**
 * cidr.ts — "is this client address in these networks?" (RelayNet, later WhiteList…), on
 * node:net's BlockList. IPv4-mapped IPv6 addresses (::ffff:192.0.2.1) are checked as IPv4.
 */
import { BlockList, isIPv4 } from 'node:net';
import type { Cidr } from '../config/types.js';

export interface NetworkSet {
  has(ip: string): boolean;
}

export function networkSet(cidrs: readonly Cidr[]): NetworkSet {
  const list = new BlockList();
  for (const c of cidrs) list.addSubnet(c.address, c.prefix, c.family === 4 ? 'ipv4' : 'ipv6');
  return {
    has(ip: string): boolean {
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
      const addr = mapped?.[1] ?? ip;
      return list.check(addr, isIPv4(addr) ? 'ipv4' : 'ipv6');
    },
  };
}
