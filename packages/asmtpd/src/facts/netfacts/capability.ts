/**
 * capability.ts — does a process hold a Linux capability? Read from /proc/PID/status (CapEff).
 *
 *   hasCapability(bit, pid?) -> boolean      false when it cannot be told (no /proc, not Linux)
 *   CAP_NET_RAW                              13: raw and packet sockets (SYN capture, NetPath)
 */
import { readFileSync } from 'node:fs';

export const CAP_NET_RAW = 13;

export function effectiveCapabilities(pid: number | 'self' = 'self'): bigint | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hex = /^CapEff:\s*([0-9a-f]+)$/im.exec(status)?.[1];
    return hex === undefined ? null : BigInt(`0x${hex}`);
  } catch {
    return null;
  }
}

export function hasCapability(bit: number, pid: number | 'self' = 'self'): boolean {
  const caps = effectiveCapabilities(pid);
  return caps !== null && ((caps >> BigInt(bit)) & 1n) === 1n;
}
