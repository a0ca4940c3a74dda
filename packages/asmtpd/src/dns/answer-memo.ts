/**
 * answer-memo.ts — the final answers of cached lookups, kept in front of tangerine.
 *
 *   withAnswerMemo(backend, expiresAt, maxEntries, now?) -> backend
 *     a lookup whose answer tangerine's cache holds (expiresAt(key) tells until when) is kept
 *     as the value tangerine returned, frozen, and given again without calling tangerine
 *     until that moment; `key` is tangerine's own cache key, `TYPE:name` in lower case.
 *
 * Why: a cache hit inside tangerine still validates the name (a long IPv6 regex), awaits the
 *   cache, filters and maps the answer, ~2–4 µs and ~4 KB of garbage a lookup; a connection
 *   makes six or more (PTR, A, DNSBLs, two SPF TXT). Here a hit is a map lookup.
 * The memo never outlives tangerine's entry (same expiry), never keeps a failure (the negative
 *   cache does that, RFC 2308 rules), and is bounded (the oldest entry goes when full). Values
 *   are frozen because every caller of a name now shares one array: a caller that tried to
 *   modify it would throw instead of corrupting the others' answers.
 */
import type { LookupBackend } from './negative-cache.js';
import { metrics } from '../metrics/metrics.js';

interface Memo {
  value: unknown;
  expires: number;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

export function withAnswerMemo(
  b: LookupBackend,
  expiresAt: (key: string) => number | undefined,
  maxEntries: number,
  now: () => number = Date.now,
): LookupBackend {
  const memo = new Map<string, Memo>();
  const remember = (key: string, value: unknown): void => {
    const expires = expiresAt(key);
    if (expires === undefined || expires <= now()) return;
    memo.delete(key);
    memo.set(key, { value: deepFreeze(value), expires });
    if (memo.size > maxEntries) {
      const oldest = memo.keys().next().value;
      if (oldest !== undefined) memo.delete(oldest);
    }
  };
  const ask = <T>(type: string, name: string, lookup: () => Promise<T>): Promise<T> => {
    const key = `${type}:${name}`.toLowerCase();
    const m = memo.get(key);
    if (m !== undefined) {
      if (m.expires > now()) {
        metrics.dnsCacheHit('answer');
        return Promise.resolve(m.value as T);
      }
      memo.delete(key);
    }
    return lookup().then((value) => {
      remember(key, value);
      return value;
    });
  };
  return {
    resolveTxt: (name) => ask('TXT', name, () => b.resolveTxt(name)),
    resolveMx: (name) => ask('MX', name, () => b.resolveMx(name)),
    resolve4: (name) => ask('A', name, () => b.resolve4(name)),
    resolve6: (name) => ask('AAAA', name, () => b.resolve6(name)),
    resolvePtr: (name) => ask('PTR', name, () => b.resolvePtr(name)),
  };
}
