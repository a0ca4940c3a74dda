/**
 * route-cache.ts — NetPath results kept per network: clients of one /24 (IPv4) or /48 (IPv6)
 * are reached over the same routers, so one trace serves them all for a while.
 *
 *   createRouteCache(trace, ttlMs, now?, maxEntries?) -> (ip) => Promise<RouteFact>
 *   routeCacheKey(ip) -> 'a.b.c.0/24' | 'x:y:z::/48' | null (not an address: traced, never cached)
 *
 * - A trace of a network in progress is shared: concurrent clients of one /24 wait for one trace.
 * - A result is kept ttlMs from the moment it arrived; a failed trace (rejection) for at most
 *   FAILURE_TTL_MS (and at most ttlMs), so that a silent network is not traced for every
 *   connection, nor written off for long.
 * - When the cached route reached the address that was traced (its last element), another client
 *   of the network gets the path with its own address as the last element: the routers are the
 *   network's, the destination is the client.
 * - At most maxEntries networks (default 10,000); the least recently used goes first. Entries in
 *   progress count too, and are never shared after eviction (their callers still get the result).
 */
import type { RouteFact } from '../client-facts.js';
import { parseCidr } from '../../config/ip.js';
import { normalizeTarget } from './packets.js';

export const DEFAULT_ROUTE_CACHE_ENTRIES = 10_000;
export const FAILURE_TTL_MS = 60_000;

interface Entry {
  /** the address that was traced */
  readonly traced: string;
  readonly result: Promise<RouteFact>;
  /** when the result arrived; null while the trace runs */
  readonly settledAt: number | null;
  readonly failed: boolean;
}

export function routeCacheKey(ip: string): string | null {
  const t = normalizeTarget(ip);
  if (!t) return null;
  const prefix = t.family === 4 ? 24 : 48;
  const net = parseCidr(`${t.address}/${prefix}`);
  return net.kind === 'ok' ? `${net.value.address}/${prefix}` : null;
}

export function createRouteCache(
  trace: (ip: string) => Promise<RouteFact>,
  ttlMs: number,
  now: () => number = Date.now,
  maxEntries: number = DEFAULT_ROUTE_CACHE_ENTRIES,
): (ip: string) => Promise<RouteFact> {
  const entries = new Map<string, Entry>();

  const fresh = (e: Entry): boolean => {
    if (e.settledAt === null) return true;
    const keep = e.failed ? Math.min(ttlMs, FAILURE_TTL_MS) : ttlMs;
    return now() - e.settledAt < keep;
  };

  const forClient = (fact: RouteFact, traced: string, ip: string): RouteFact => {
    const last = fact.path[fact.path.length - 1];
    if (last !== traced || ip === traced) return { hops: fact.hops, path: [...fact.path] };
    return { hops: fact.hops, path: [...fact.path.slice(0, -1), ip] };
  };

  return (ip: string): Promise<RouteFact> => {
    const key = routeCacheKey(ip);
    if (key === null) return trace(ip);
    const client = normalizeTarget(ip)!.address;
    let e = entries.get(key);
    if (e && !fresh(e)) {
      entries.delete(key);
      e = undefined;
    }
    if (e) {
      // most recently used goes last
      entries.delete(key);
      entries.set(key, e);
    } else {
      const state = { settledAt: null as number | null, failed: false };
      const result = trace(ip).then(
        (fact) => {
          state.settledAt = now();
          return fact;
        },
        (err: unknown) => {
          state.settledAt = now();
          state.failed = true;
          throw err;
        },
      );
      const entry: Entry = {
        traced: client,
        result,
        get settledAt() {
          return state.settledAt;
        },
        get failed() {
          return state.failed;
        },
      };
      // a rejection nobody awaits must not become an unhandled rejection
      entry.result.catch(() => undefined);
      entries.set(key, entry);
      while (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
      e = entry;
    }
    const traced = e.traced;
    return e.result.then((fact) => forClient(fact, traced, client));
  };
}
