/**
 * syn-table.ts — the SYNs seen lately, by (client address, client port), for the sessions that
 * will ask for them (client.ts).
 *
 *   new SynTable({ttlMs?, maxEntries?, now?})
 *   .add(syn)                       keep it (a retransmitted SYN replaces the earlier one)
 *   .take(ip, port, waitMs) -> Promise<SynInfo | null>
 *       the SYN of that connection, removed from the table; when it has not arrived yet, waits up
 *       to waitMs for it (the capture runs in another process: its line may come a little after
 *       the connection was accepted); null when it does not come (lost, or capture off)
 *   .size, .clear()
 *
 * Bounded: entries expire after ttlMs (a connection is accepted within a round trip of its SYN);
 * beyond maxEntries (a SYN flood: SYNs never followed by a connection) the oldest are dropped.
 * Addresses are compared in normalizeIp form (IPv4-mapped IPv6 as IPv4).
 */
import { normalizeIp } from '../synfp/capture.js';
import type { SynInfo } from '../synfp/syn-packet.js';

export const SYN_TTL_MS = 30_000;
export const SYN_MAX_ENTRIES = 20_000;

interface Waiter {
  resolve(syn: SynInfo | null): void;
  timer: NodeJS.Timeout;
}

export class SynTable {
  private readonly entries = new Map<string, { syn: SynInfo; at: number }>();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(o: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.ttlMs = o.ttlMs ?? SYN_TTL_MS;
    this.maxEntries = o.maxEntries ?? SYN_MAX_ENTRIES;
    this.now = o.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  add(syn: SynInfo): void {
    const key = keyOf(syn.srcIp, syn.srcPort);
    const waiting = this.waiters.get(key);
    if (waiting) {
      this.waiters.delete(key);
      const first = waiting.shift()!;
      clearTimeout(first.timer);
      first.resolve(syn);
      // more than one session asking for one (ip, port) cannot happen; answer them all anyway
      for (const w of waiting) {
        clearTimeout(w.timer);
        w.resolve(syn);
      }
      return;
    }
    this.entries.delete(key); // re-inserted last: the map's order is arrival order
    this.entries.set(key, { syn, at: this.now() });
    this.prune();
  }

  take(ip: string, port: number, waitMs: number): Promise<SynInfo | null> {
    const key = keyOf(ip, port);
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      if (this.now() - hit.at <= this.ttlMs) return Promise.resolve(hit.syn);
    }
    if (waitMs <= 0) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          const list = this.waiters.get(key);
          const i = list?.indexOf(waiter) ?? -1;
          if (list && i >= 0) list.splice(i, 1);
          if (list?.length === 0) this.waiters.delete(key);
          resolve(null);
        }, waitMs),
      };
      const list = this.waiters.get(key);
      if (list) list.push(waiter);
      else this.waiters.set(key, [waiter]);
    });
  }

  /** Forget everything; pending take()s resolve to null. */
  clear(): void {
    this.entries.clear();
    for (const list of this.waiters.values()) {
      for (const w of list) {
        clearTimeout(w.timer);
        w.resolve(null);
      }
    }
    this.waiters.clear();
  }

  private prune(): void {
    const oldest = this.now() - this.ttlMs;
    for (const [key, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && e.at >= oldest) break;
      this.entries.delete(key);
    }
  }
}

function keyOf(ip: string, port: number): string {
  return `${normalizeIp(ip)}|${port}`;
}
