/**
 * negative-cache.ts — RFC 2308 negative caching for the tangerine (DoH) resolver.
 *
 *   new NegativeCache(maxEntries, now?, maxTtlSeconds? = 10800)
 *       get(name, type) -> 'ENOTFOUND' | 'ENODATA' | undefined;  set(name, type, code, ttlSeconds);  size
 *   negativeAnswer(response, query?) -> {name, type, code, ttl} | null
 *       what a DNS wire response says about its question when it is NXDOMAIN or NODATA with an SOA
 *   recordNegativeAnswers(request, cache) -> request
 *       wraps the DoH request function given to tangerine: every 2xx response whose question is the
 *       one asked and that is a negative answer is stored in the cache (the response goes on as is)
 *   withNegativeCache(backend, cache, makeError) -> backend
 *       answers a cached negative with makeError(name, type, code) without asking (one error
 *       object per name, type and code, shared by every caller: treat it as read-only)
 *
 * Why here: tangerine throws ENOTFOUND for NXDOMAIN before its cache sees the answer, and its cache
 *   (ttl-cache.ts) cannot keep an answer without records; the authority section with the SOA is
 *   only in the wire response, which the request function sees.
 * Rules (RFC 2308 §3, §5): NXDOMAIN, or NOERROR with an empty answer section (NODATA), not
 *   truncated, with an SOA in the authority section whose owner is the question name or one of its
 *   ancestors: kept for min(SOA TTL, SOA MINIMUM), capped at maxTtlSeconds (like BIND's
 *   max-ncache-ttl, 3 h); below 1 s, or without such an SOA, nothing is kept (no invented TTL).
 *   A negative answer reached through a CNAME (answer section not empty) is not kept. SERVFAIL,
 *   REFUSED and every other rcode are never kept. Keys: (question name lower case without the
 *   trailing dot, type); the least recently used entry goes when the map is full.
 * Only dns/ loads dns-packet (tangerine's own dependency, same version).
 */
import { createRequire } from 'node:module';
import type { SpfResolver } from '@asmtpd/spf';
import { metrics } from '../metrics/metrics.js';

export type NegativeCode = 'ENOTFOUND' | 'ENODATA';

export interface NegativeAnswer {
  /** question name, lower case, no trailing dot */
  name: string;
  /** question type, e.g. 'A', 'TXT' */
  type: string;
  code: NegativeCode;
  /** min(SOA TTL, SOA MINIMUM) in seconds (not capped) */
  ttl: number;
}

interface Entry {
  code: NegativeCode;
  expires: number;
}

const norm = (name: string): string => {
  const lower = name.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
};
const keyOf = (name: string, type: string): string => `${type.toUpperCase()}:${norm(name)}`;

export class NegativeCache {
  private readonly map = new Map<string, Entry>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
    private readonly maxTtlSeconds = 10_800,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(name: string, type: string): NegativeCode | undefined {
    if (this.map.size === 0) return undefined;
    const key = keyOf(name, type);
    const entry = this.map.get(key);
    if (entry === undefined) return undefined;
    this.map.delete(key);
    if (entry.expires <= this.now()) return undefined;
    this.map.set(key, entry);
    return entry.code;
  }

  set(name: string, type: string, code: NegativeCode, ttlSeconds: number): void {
    const ttl = Math.min(ttlSeconds, this.maxTtlSeconds);
    if (!Number.isFinite(ttl) || ttl < 1) return;
    const key = keyOf(name, type);
    this.map.delete(key);
    this.map.set(key, { code, expires: this.now() + ttl * 1000 });
    while (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value;
      if (oldest === undefined) break;
      this.map.delete(oldest);
    }
  }
}

/* ---- wire format (dns-packet) ---- */

interface Question {
  name: string;
  type: string;
  class?: string;
}
interface Soa {
  name: string;
  type: string;
  ttl?: number;
  data?: { minimum?: number };
}
interface Decoded {
  rcode?: string;
  flag_tc?: boolean;
  questions?: Question[];
  answers?: unknown[];
  authorities?: Soa[];
}

let decoder: ((buf: Buffer) => Decoded) | undefined;
function decode(buf: Buffer): Decoded | null {
  decoder ??= (createRequire(import.meta.url)('dns-packet') as { decode: (b: Buffer) => Decoded }).decode;
  try {
    return decoder(buf);
  } catch {
    return null;
  }
}

const RCODE_NOERROR = 0;
const RCODE_NXDOMAIN = 3;

/** Is `ancestor` the name itself or one of its parent domains (both normalised)? */
function underOrAt(name: string, ancestor: string): boolean {
  return ancestor === '.' || name === ancestor || name.endsWith(`.${ancestor}`);
}

/**
 * From the header alone: could this be a cacheable negative answer? (a response, not truncated,
 * NXDOMAIN or NOERROR, one question, no answer, an authority section). Most responses are
 * positive and stop here.
 */
function mayBeNegative(response: Buffer): boolean {
  if (response.length < 12) return false;
  const flags = response.readUInt16BE(2);
  const rcode = flags & 0xf;
  if ((flags & 0x8000) === 0 || (flags & 0x0200) !== 0) return false;
  if (rcode !== RCODE_NXDOMAIN && rcode !== RCODE_NOERROR) return false;
  return response.readUInt16BE(4) === 1 && response.readUInt16BE(6) === 0 && response.readUInt16BE(8) !== 0;
}

/**
 * The negative answer a response carries, or null. `query`, when given, must have the same
 * question (name case-insensitively, type, class) or nothing is reported.
 */
export function negativeAnswer(response: Buffer, query?: Buffer): NegativeAnswer | null {
  if (!mayBeNegative(response)) return null;
  const rcode = response.readUInt16BE(2) & 0xf;
  const r = decode(response);
  const q = r?.questions?.[0];
  if (r === null || q === undefined || (q.class !== undefined && q.class !== 'IN')) return null;
  if ((r.answers?.length ?? 0) !== 0) return null;
  const name = norm(q.name);
  if (query !== undefined) {
    const asked = decode(query)?.questions?.[0];
    if (
      asked === undefined ||
      norm(asked.name) !== name ||
      asked.type !== q.type ||
      (asked.class ?? 'IN') !== (q.class ?? 'IN')
    )
      return null;
  }
  let ttl: number | undefined;
  for (const rr of r.authorities ?? []) {
    if (rr.type !== 'SOA' || !underOrAt(name, norm(rr.name))) continue;
    const soaTtl = rr.ttl;
    const minimum = rr.data?.minimum;
    if (typeof soaTtl !== 'number' || typeof minimum !== 'number') continue;
    const t = Math.min(soaTtl, minimum);
    ttl = ttl === undefined ? t : Math.min(ttl, t);
  }
  if (ttl === undefined) return null;
  return { name, type: q.type, code: rcode === RCODE_NXDOMAIN ? 'ENOTFOUND' : 'ENODATA', ttl };
}

/* ---- the DoH request wrapper ---- */

interface RequestOptions {
  method?: string;
  body?: Buffer | Uint8Array;
}
interface Response {
  statusCode?: number;
  status?: number;
  body: unknown;
}

/** The DNS query of a DoH request: the POST body or the GET `dns` parameter (RFC 8484). */
function queryOf(url: string, o: RequestOptions): Buffer | undefined {
  if (o.body !== undefined) return Buffer.from(o.body);
  const param = new URL(url).searchParams.get('dns');
  return param === null ? undefined : Buffer.from(param, 'base64url');
}

export function recordNegativeAnswers<O extends RequestOptions, R extends Response>(
  request: (url: string, o: O) => Promise<R>,
  cache: NegativeCache,
): (url: string, o: O) => Promise<R> {
  return async (url, o) => {
    const res = await request(url, o);
    const status = res.statusCode ?? res.status ?? 0;
    if (status >= 200 && status < 300 && Buffer.isBuffer(res.body) && mayBeNegative(res.body)) {
      const query = queryOf(url, o);
      const neg = query === undefined ? null : negativeAnswer(res.body, query);
      if (neg !== null) cache.set(neg.name, neg.type, neg.code, neg.ttl);
    }
    return res;
  };
}

/* ---- the resolver wrapper ---- */

/** The lookups the daemon makes (reverse() is a PTR query of the arpa name). */
export type LookupBackend = Omit<SpfResolver, 'reverse'> & { resolvePtr(name: string): Promise<string[]> };

export function withNegativeCache(
  b: LookupBackend,
  cache: NegativeCache,
  makeError: (name: string, type: string, code: NegativeCode) => Error,
): LookupBackend {
  // one error per cached negative answer, made when first needed (most DNSBL lookups end here)
  const errors = new Map<string, Error>();
  const errorFor = (name: string, type: string, code: NegativeCode): Error => {
    const key = `${code} ${type} ${name}`;
    let err = errors.get(key);
    if (err === undefined) {
      err = makeError(name, type, code);
      if (errors.size >= 1000) errors.clear();
      errors.set(key, err);
    }
    return err;
  };
  const ask = <T>(name: string, type: string, lookup: () => Promise<T>): Promise<T> => {
    const code = cache.get(name, type);
    if (code === undefined) return lookup();
    metrics.dnsCacheHit('negative');
    return Promise.reject(errorFor(name, type, code));
  };
  return {
    resolveTxt: (name) => ask(name, 'TXT', () => b.resolveTxt(name)),
    resolveMx: (name) => ask(name, 'MX', () => b.resolveMx(name)),
    resolve4: (name) => ask(name, 'A', () => b.resolve4(name)),
    resolve6: (name) => ask(name, 'AAAA', () => b.resolve6(name)),
    resolvePtr: (name) => ask(name, 'PTR', () => b.resolvePtr(name)),
  };
}
