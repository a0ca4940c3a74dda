/**
 * ttl-cache.ts — the bounded answer cache given to tangerine (its `cache` option takes any
 * object with get/set).
 *
 *   new TtlCache(maxEntries, now?)   get(key) / set(key, result) / expiresAt(key) / size
 *
 * tangerine stores a result with `answers[].ttl`; it would keep a TTL-0 or NODATA answer for its
 * default 300 s. Here an answer is kept for its smallest TTL and not at all when that is below
 * 1 s or there are no answers; the least recently used entry goes when the map is full.
 */
import { metrics } from '../metrics/metrics.js';

interface Cached {
  answers?: { ttl?: number }[];
  ttl?: number;
  expires?: number;
}

export class TtlCache {
  private readonly map = new Map<string, Cached>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): Cached | undefined {
    const entry = this.map.get(key);
    if (entry === undefined) return undefined;
    if ((entry.expires ?? 0) <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, entry);
    metrics.dnsCacheHit('answer');
    return entry;
  }

  /** Until when `key` is kept (ms since the epoch), without touching its recency; undefined when absent or expired. */
  expiresAt(key: string): number | undefined {
    const expires = this.map.get(key)?.expires;
    return expires !== undefined && expires > this.now() ? expires : undefined;
  }

  set(key: string, result: Cached): void {
    const ttls = (result.answers ?? [])
      .map((a) => a.ttl)
      .filter((t): t is number => typeof t === 'number' && Number.isFinite(t));
    const ttl = ttls.length === 0 ? 0 : Math.min(...ttls);
    if (ttl < 1) return;
    result.ttl = ttl;
    result.expires = this.now() + ttl * 1000;
    this.map.delete(key);
    this.map.set(key, result);
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value;
      if (oldest === undefined) break;
      this.map.delete(oldest);
    }
  }
}
