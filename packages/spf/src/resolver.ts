/*
 * resolver.ts — what SPF needs from DNS, and the per-check lookup cache.
 *
 * Public: SpfResolver (the subset of node's dns.promises.Resolver SPF uses: resolveTxt,
 *   resolveMx, resolve4, resolve6, reverse — a tangerine instance or a node Resolver plugs in
 *   as is), Answer, LookupCache.
 * Errors follow node's dns codes: ENOTFOUND (NXDOMAIN), EBADNAME (a name the resolver cannot
 *   query) and ENODATA (no records; an empty answer counts the same) are "void" answers (RFC 7208 §4.6.4); every other failure
 *   (ETIMEOUT, ESERVFAIL, ECONNREFUSED, ...) is a temporary error (§2.6.6, §4.4).
 * LookupCache: one per check_host() evaluation; every (type, name) is asked at most once, even
 *   when asked concurrently (the promise is shared). An optional deadline turns every lookup
 *   still pending when it passes into ETIMEOUT (§4.6.4: a limit on elapsed time → temperror).
 * Security: names are passed to the resolver as they are; nothing here sends packets itself.
 */

export interface MxRecord {
  exchange: string;
  priority: number;
}

/** The subset of node's dns.promises.Resolver that SPF uses. */
export interface SpfResolver {
  resolveTxt(name: string): Promise<string[][]>;
  resolveMx(name: string): Promise<MxRecord[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  reverse(ip: string): Promise<string[]>;
}

export type Answer<T> =
  | { readonly kind: 'ok'; readonly values: readonly T[] }
  | { readonly kind: 'void'; readonly rcode: 'nxdomain' | 'nodata' }
  | { readonly kind: 'error'; readonly code: string };

const NXDOMAIN: Answer<never> = Object.freeze({ kind: 'void', rcode: 'nxdomain' });
const NODATA: Answer<never> = Object.freeze({ kind: 'void', rcode: 'nodata' });

function classify(err: unknown): Answer<never> {
  const code =
    typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'EUNKNOWN';
  // EBADNAME: the resolver cannot put the name in a query (node's c-ares refuses characters
  // outside hostname syntax); the name cannot exist, and asking again will not help
  if (code === 'ENOTFOUND' || code === 'EBADNAME') return NXDOMAIN;
  if (code === 'ENODATA') return NODATA;
  return { kind: 'error', code };
}

function wrap<T>(p: Promise<T[]>): Promise<Answer<T>> {
  return p.then((values) => (Array.isArray(values) && values.length > 0 ? { kind: 'ok', values } : NODATA), classify);
}

export type AddressType = 'A' | 'AAAA';

/** Per-evaluation cache over an SpfResolver. */
export class LookupCache {
  private readonly answers = new Map<string, Promise<Answer<unknown>>>();
  private deadline: Promise<Answer<never>> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** how many queries went to the resolver (for tests and metrics) */
  queries = 0;

  constructor(
    private readonly resolver: SpfResolver,
    timeoutMs?: number,
  ) {
    if (timeoutMs !== undefined && timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      this.deadline = new Promise((resolve) => {
        this.timer = setTimeout(() => resolve({ kind: 'error', code: 'ETIMEOUT' }), timeoutMs);
      });
    }
  }

  /** true once the evaluation is over (the prefetcher starts nothing more) */
  closed = false;

  /** Stops the deadline timer; call when the evaluation is over. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Has (type, name) been asked already in this check? (PTR takes the client IP.) */
  has(type: AddressType | 'MX' | 'TXT' | 'PTR', name: string): boolean {
    return this.answers.has(`${type} ${type === 'PTR' ? name : name.toLowerCase()}`);
  }

  private get<T>(key: string, ask: () => Promise<T[]>): Promise<Answer<T>> {
    let p = this.answers.get(key) as Promise<Answer<T>> | undefined;
    if (p === undefined) {
      this.queries++;
      let q: Promise<Answer<T>>;
      try {
        q = wrap(ask());
      } catch (err) {
        q = Promise.resolve(classify(err));
      }
      p = this.deadline === null ? q : Promise.race([q, this.deadline]);
      this.answers.set(key, p);
    }
    return p;
  }

  txt(name: string): Promise<Answer<string[]>> {
    const n = name.toLowerCase();
    return this.get(`TXT ${n}`, () => this.resolver.resolveTxt(n));
  }

  mx(name: string): Promise<Answer<MxRecord>> {
    const n = name.toLowerCase();
    return this.get(`MX ${n}`, () => this.resolver.resolveMx(n));
  }

  address(type: AddressType, name: string): Promise<Answer<string>> {
    const n = name.toLowerCase();
    return type === 'A'
      ? this.get(`A ${n}`, () => this.resolver.resolve4(n))
      : this.get(`AAAA ${n}`, () => this.resolver.resolve6(n));
  }

  /** PTR names of an address (reverse lookup). */
  ptr(ip: string): Promise<Answer<string>> {
    return this.get(`PTR ${ip}`, () => this.resolver.reverse(ip));
  }
}
