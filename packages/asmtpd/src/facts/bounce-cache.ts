/**
 * facts/bounce-cache — the bounce probe's view of the state database's bounce cache: failures
 * (SQLITE_BUSY past the timeout, a full disk, a closed database) are logged as `store.error` and
 * answered as a miss, so a probe works without its cache.
 *
 *   guardedCache(cache, log) -> GuardedCache
 *     .get(key, now, scope) -> BounceResult (cached: true) | undefined
 *     .put(key, { kind, reply }, expiresAt)
 *     .purge(now)
 */
import type { Logger } from '../log/logger.js';
import type { BounceCache, CachedBounce } from '../store/state-db.js';
import type { BounceResult, BounceScope } from './bounce-types.js';

export interface GuardedCache {
  get(key: string, now: number, scope: BounceScope): BounceResult | undefined;
  put(key: string, value: CachedBounce, expiresAt: number): void;
  purge(now: number): void;
}

/** The bounce cache with its failures logged and swallowed (a probe works without it). */
export function guardedCache(cache: BounceCache, log: Logger): GuardedCache {
  const guard = <T>(op: string, f: () => T, fallback: T): T => {
    try {
      return f();
    } catch (err) {
      log.warn('store.error', { op, error: err instanceof Error ? err.message : String(err) });
      return fallback;
    }
  };
  return {
    get(key, now, scope) {
      const hit = guard('bounce_cache.get', () => cache.get(key, now), undefined);
      return hit ? { kind: hit.kind, reply: hit.reply, cached: true, scope } : undefined;
    },
    put(key, value, expiresAt) {
      guard('bounce_cache.put', () => cache.put(key, { kind: value.kind, reply: value.reply }, expiresAt), undefined);
    },
    purge(now) {
      guard('bounce_cache.purge', () => cache.purgeExpired(now), 0);
    },
  };
}
