/**
 * reverse-dns.ts — the client's reverse name, forward-confirmed (FCrDNS; spec asmtpd.md §4).
 *
 *   reverseName(ip, resolver) -> ReverseName {name, ptr, tempfail}   never rejects
 *
 * PTR of the address; then, for each PTR name (at most MAX_NAMES), its A (IPv4 client) or AAAA
 * (IPv6) records: the first name whose records include the client address is `name`. `ptr` is
 * the first PTR name as received; `dynamic` says the confirmed name looks like an access network's
 * generic name (facts/dynamic-name.ts: CLIENT_DYNAMIC). `tempfail` is true when the PTR lookup, or a forward lookup
 * that could have confirmed a name, failed temporarily (and no name was confirmed).
 *
 * SECURITY: a PTR answer is whatever the client's DNS owner wants it to be (CR, LF, NUL, `$(…)`).
 * Only host names — letters, digits and hyphens in dot-separated labels of 1–63 characters
 * (RFC 1123), 253 at most — are taken; any other answer is dropped and `invalid` says so
 * (CLIENT_PTR_INVALID), so CLIENT_PTR, CLIENT_NAME and the headers only ever carry host names.
 */
import { isIPv4 } from 'node:net';
import type { SpfResolver } from '@asmtpd/spf';
import { isTemporaryDnsError } from '../dns/resolver.js';
import { isDynamicName } from './dynamic-name.js';

export interface ReverseName {
  /** confirmed host name, lower case, no trailing dot */
  name: string | null;
  /** first PTR name as received, no trailing dot */
  ptr: string | null;
  tempfail: boolean;
  /** the confirmed name looks dynamic (facts/dynamic-name.ts); absent otherwise */
  dynamic?: boolean;
  /** a PTR answer was not a host name and was dropped */
  invalid?: boolean;
}

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Letters, digits and hyphens in labels, as RFC 1123 host names (no trailing dot). */
export function isHostName(name: string): boolean {
  return HOST_NAME.test(name);
}

/** like SPF's limit on PTR names (RFC 7208 §4.6.4) */
export const MAX_NAMES = 10;

type Resolver = Pick<SpfResolver, 'reverse' | 'resolve4' | 'resolve6'>;

function canonical(ip: string): { ip: string; v4: boolean } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const plain = mapped?.[1] ?? ip;
  return { ip: plain, v4: isIPv4(plain) };
}

/** Expanded lower-case form for comparing IPv6 text forms. */
function sameAddress(a: string, b: string, v4: boolean): boolean {
  if (v4) return a === b;
  const norm = (s: string): string => {
    const [h = '', t = ''] = s.toLowerCase().split('::', 2);
    const hp = h === '' ? [] : h.split(':');
    const tp = t === '' ? [] : t.split(':');
    const groups = s.includes('::') ? [...hp, ...Array<string>(8 - hp.length - tp.length).fill('0'), ...tp] : hp;
    return groups.map((g) => g.replace(/^0+(?=.)/, '')).join(':');
  };
  return norm(a) === norm(b);
}

export async function reverseName(clientIp: string, resolver: Resolver): Promise<ReverseName> {
  const { ip, v4 } = canonical(clientIp);
  let ptrs: string[];
  try {
    ptrs = await resolver.reverse(ip);
  } catch (err) {
    return { name: null, ptr: null, tempfail: isTemporaryDnsError(err) };
  }
  const answers = ptrs.map((n) => n.replace(/\.$/, '')).filter((n) => n !== '');
  const names = answers.filter(isHostName);
  const invalid = names.length < answers.length ? { invalid: true } : {};
  const ptr = names[0] ?? null;
  let tempfail = false;
  const checks = names.slice(0, MAX_NAMES).map(async (n) => {
    try {
      const addrs = await (v4 ? resolver.resolve4(n) : resolver.resolve6(n));
      return addrs.some((a) => sameAddress(a, ip, v4));
    } catch (err) {
      if (isTemporaryDnsError(err)) tempfail = true;
      return false;
    }
  });
  const confirmed = await Promise.all(checks);
  const i = confirmed.indexOf(true);
  if (i >= 0) {
    const name = (names[i] as string).toLowerCase();
    const dynamic = isDynamicName(name, ip) ? { dynamic: true } : {};
    return { name, ptr, tempfail: false, ...dynamic, ...invalid };
  }
  return { name: null, ptr, tempfail, ...invalid };
}
