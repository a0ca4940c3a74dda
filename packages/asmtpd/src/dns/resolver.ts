/**
 * resolver.ts — the daemon's one DNS resolver (spec asmtpd.md §3 "DNS"). With system-backend.ts,
 * the only module that imports DNS libraries.
 *
 *   createDnsResolver(options) -> DnsResolver   resolveTxt, resolveMx, resolve4, resolve6, reverse
 *                                               (node dns.promises shapes and error codes), stats()
 *   sharedResolvers() -> (options) => DnsResolver   tangerine: the same instance (and cache)
 *                                               while the settings stay the same, e.g. across
 *                                               SIGHUP; system: a new one each time (it re-reads
 *                                               /etc/resolv.conf)
 *   isTemporaryDnsError(err) / dnsErrorCode(err) / arpaName(ip)
 *
 * tangerine: DNS over HTTP(S) to DNSServer (or tangerine's public defaults), one try per server,
 *   DNSTimeout each, answers cached for their TTL in a bounded map (ttl-cache.ts), NXDOMAIN and
 *   NODATA for min(SOA TTL, SOA MINIMUM) in another (negative-cache.ts, RFC 2308; none without an
 *   SOA), answered with tangerine's own ENOTFOUND / ENODATA error without a query; the final
 *   value of a cached answer is kept in front of tangerine until the same expiry (answer-memo.ts).
 * system (the default): node's c-ares Resolver (system-backend.ts: DNSTimeout held against c-ares'
 *   own shorter timeouts), DNSServer replacing /etc/resolv.conf's servers; no
 *   cache here (node reports no TTL for TXT/MX/PTR and turns c-ares' cache off): the machine's
 *   resolver caches (a local unbound). c-ares reads /etc/resolv.conf when a Resolver is made and
 *   never again: the daemon makes a new one at each SIGHUP, so an edited resolv.conf applies to the
 *   sessions that start after the reload (those under way keep the old one).
 * Errors: ENOTFOUND (NXDOMAIN), ENODATA (no records) and EBADNAME (a name that cannot be asked)
 *   are answers; every other code (ETIMEOUT, ESERVFAIL, ECONNREFUSED…) is a temporary failure.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { createRequire } from 'node:module';
import { createDohRequest, type SpfResolver } from '@asmtpd/spf';
import type { DnsServer } from '../config/types.js';
import { TtlCache } from './ttl-cache.js';
import { metrics, type DnsType } from '../metrics/metrics.js';
import { withAnswerMemo } from './answer-memo.js';
import { systemBackend } from './system-backend.js';
import {
  NegativeCache,
  recordNegativeAnswers,
  withNegativeCache,
  type LookupBackend,
  type NegativeCode,
} from './negative-cache.js';

export interface DnsOptions {
  kind: 'tangerine' | 'system';
  servers: readonly DnsServer[];
  protocol: 'http' | 'https';
  timeoutMs: number;
  /** answers kept by the tangerine cache, and negative answers by its negative cache; default 10,000 each */
  cacheEntries?: number;
}

export interface DnsStats {
  lookups: number;
  failures: number;
}

export interface DnsResolver extends SpfResolver {
  stats(): DnsStats;
}

type ResolverClass = (new (options: Record<string, unknown>, request?: unknown) => SpfResolver) & {
  /** tangerine's error for a failed query: `${syscall} ${code} ${name}` with hostname, syscall, code */
  createError(name: string, rrtype: string, code: string): Error;
};

/** tangerine (CommonJS: module.exports = class), loaded only when chosen: it takes ~0.2 s. */
function loadTangerine(): ResolverClass {
  const mod = createRequire(import.meta.url)('tangerine') as { default?: unknown };
  return (mod.default ?? mod) as ResolverClass;
}

const ANSWER_CODES = new Set(['ENOTFOUND', 'ENODATA', 'EBADNAME']);

export function dnsErrorCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err
    ? String((err as { code: unknown }).code)
    : 'EUNKNOWN';
}

/** A failure worth retrying later (not "no such name" or "no such record"). */
export function isTemporaryDnsError(err: unknown): boolean {
  return !ANSWER_CODES.has(dnsErrorCode(err));
}

function serverText(s: DnsServer, defaultPort: number | null): string {
  const port = s.port ?? defaultPort;
  if (port === null) return s.host;
  return s.host.includes(':') ? `[${s.host}]:${port}` : `${s.host}:${port}`;
}

/** The PTR owner name of an address (in-addr.arpa / ip6.arpa); null if not an address. */
export function arpaName(ip: string): string | null {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const v4 = mapped?.[1] ?? ip;
  if (isIPv4(v4)) return `${v4.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!isIPv6(ip)) return null;
  const [head = '', tail = ''] = ip.toLowerCase().split('::', 2);
  const parts = (x: string): string[] => (x === '' ? [] : x.split(':'));
  const h = parts(head);
  const t = parts(tail);
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups
    .map((g) => g.padStart(4, '0'))
    .join('')
    .split('')
    .reverse()
    .join('.')}.ip6.arpa`;
}

type Backend = LookupBackend;

/**
 * An error made without capturing a stack: a cached "no such name" is an answer, not a fault
 * (most DNSBL lookups end so), and the stack V8 captures costs more than the whole lookup.
 */
function withoutStack(make: () => Error): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function backend(o: DnsOptions): Backend {
  if (o.kind === 'system')
    return systemBackend({ servers: o.servers.map((s) => serverText(s, 53)), timeoutMs: o.timeoutMs });
  const Tangerine = loadTangerine();
  const entries = o.cacheEntries ?? 10_000;
  const negative = new NegativeCache(entries);
  const answers = new TtlCache(entries);
  const tangerine = new Tangerine(
    {
      ...(o.servers.length > 0 ? { servers: o.servers.map((s) => serverText(s, null)) } : {}),
      protocol: o.protocol,
      timeout: o.timeoutMs,
      tries: 1,
      cache: answers,
    },
    recordNegativeAnswers(createDohRequest(), negative),
  ) as unknown as Backend;
  const asked = withNegativeCache(tangerine, negative, (name: string, type: string, code: NegativeCode) =>
    withoutStack(() => Tangerine.createError(name, type, code)),
  );
  return withAnswerMemo(asked, (key) => answers.expiresAt(key), entries);
}

/**
 * reverse() as a PTR query: node's (c-ares gethostbyaddr) and tangerine's reverse() answer from
 * /etc/hosts first, and c-ares reports a SERVFAIL as "not found"; a mail server wants what DNS says.
 */
function reverseByPtr(b: Backend, ip: string): Promise<string[]> {
  const name = arpaName(ip);
  return name === null
    ? Promise.reject(Object.assign(new Error(`not an address: ${ip}`), { code: 'EBADNAME' }))
    : b.resolvePtr(name);
}

export function createDnsResolver(o: DnsOptions): DnsResolver {
  const inner = backend(o);
  const stats: DnsStats = { lookups: 0, failures: 0 };
  // the caller gets the lookup's own promise (no extra hop); it is counted on the side (and in
  // the metrics, when it settles)
  const counted = <T>(type: DnsType, p: Promise<T>): Promise<T> => {
    stats.lookups++;
    p.then(
      () => metrics.dnsLookup(type, false),
      (err: unknown) => {
        const failed = isTemporaryDnsError(err);
        if (failed) stats.failures++;
        metrics.dnsLookup(type, failed);
      },
    );
    return p;
  };
  return {
    resolveTxt: (name) => counted('TXT', inner.resolveTxt(name)),
    resolveMx: (name) => counted('MX', inner.resolveMx(name)),
    resolve4: (name) => counted('A', inner.resolve4(name)),
    resolve6: (name) => counted('AAAA', inner.resolve6(name)),
    reverse: (ip) => counted('PTR', reverseByPtr(inner, ip)),
    stats: () => ({ ...stats }),
  };
}

/**
 * One tangerine resolver per daemon: a reload with the same DNS settings keeps it and its cache.
 * A system resolver holds nothing worth keeping (no cache), and c-ares reads /etc/resolv.conf only
 * when a Resolver is made: each reload gets a new one, which reads the file as it is now.
 */
export function sharedResolvers(): (o: DnsOptions) => DnsResolver {
  let current: { key: string; resolver: DnsResolver } | null = null;
  return (o) => {
    if (o.kind === 'system') return createDnsResolver(o);
    const key = JSON.stringify([o.kind, o.servers.map((s) => s.text), o.protocol, o.timeoutMs, o.cacheEntries]);
    if (current?.key !== key) current = { key, resolver: createDnsResolver(o) };
    return current.resolver;
  };
}
