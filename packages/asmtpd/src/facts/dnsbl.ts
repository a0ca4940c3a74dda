/**
 * dnsbl.ts — DNSBL lookups of one client address (spec asmtpd.md §3 `RBL`, §4; docs/facts.md).
 *
 *   rblQueryName(ip, zone) -> "d.c.b.a.zone" (IPv6: 32 reversed nibbles)
 *   queryRbls(ip, lists, resolver, timeoutMs?) -> RblResult   every zone at once; never rejects;
 *     a zone still unanswered after timeoutMs is a lookup problem (ETIMEOUT)
 *
 * A zone lists the client when it answers an A record in 127.0.0.0/8, except 127.255.255.0/24:
 * lists answer that to refuse a query (Spamhaus: .252 a typing error in the zone name, .254 a
 * query through a public or open resolver, .255 too many queries), which is an error, never a
 * listing, reported with its reason and what to do (refusalOf). Answers outside 127.0.0.0/8 are
 * ignored (and reported). The
 * reason is the TXT record at the same name, else the RBL line's reason, else `listed by ZONE`.
 * NXDOMAIN/NODATA = not listed; a failed lookup is an error entry (counts as not listed).
 */
import type { RblList } from '../config/types.js';
import type { SpfResolver } from '@asmtpd/spf';
import { arpaName, dnsErrorCode, isTemporaryDnsError } from '../dns/resolver.js';
import { deadline } from './deadline.js';

export interface RblListing {
  zone: string;
  score: number;
  reason: string;
  /** the A records that listed the client */
  codes: string[];
}

export type RblProblem =
  | {
      zone: string;
      /** the lookup failed (detail: ETIMEOUT, ESERVFAIL…), or the answer was outside 127/8 (detail: it) */
      kind: 'lookup' | 'ignored';
      detail: string;
    }
  | {
      zone: string;
      /** the list refused the query: detail is its 127.255.255.x answer(s) */
      kind: 'refused';
      detail: string;
      /** what the code means (refusalOf) */
      reason: string;
      /** what the administrator can do about it */
      hint: string;
    };

/** What the list means by a 127.255.255.x answer, and what to do about it. */
export interface Refusal {
  reason: string;
  hint: string;
}

const RESOLVER_HINT =
  'the DNSBL refuses this resolver: a public resolver or over quota; use a local caching resolver such as unbound';

/**
 * The error codes of 127.255.255.0/24 (Spamhaus' DNSBL return codes, also used by other lists):
 * .252 typing error in the DNSBL name, .254 query via a public or open resolver, .255 excessive
 * number of queries; any other is an error code of the list all the same.
 */
export function refusalOf(code: string): Refusal {
  switch (code) {
    case '127.255.255.252':
      return { reason: 'typing error in the DNSBL name', hint: 'check the zone of the RBL line' };
    case '127.255.255.254':
      return { reason: 'query through a public or open resolver', hint: RESOLVER_HINT };
    case '127.255.255.255':
      return { reason: 'excessive number of queries', hint: RESOLVER_HINT };
    default:
      return { reason: 'an error code of the list (127.255.255.0/24), not a listing', hint: RESOLVER_HINT };
  }
}

export interface RblResult {
  score: number;
  listed: RblListing[];
  problems: RblProblem[];
}

type Resolver = Pick<SpfResolver, 'resolve4' | 'resolveTxt'>;

/** The address's labels as DNSBLs use them ("d.c.b.a"; IPv6: 32 nibbles); null for a non-address. */
function reversedLabels(ip: string): string | null {
  const arpa = arpaName(ip);
  return arpa === null ? null : arpa.replace(/\.(in-addr|ip6)\.arpa$/, '');
}

const inZone = (labels: string, zone: string): string => `${labels}.${zone}`;

/** The name to look up for `ip` in `zone`; null for something that is not an address. */
export function rblQueryName(ip: string, zone: string): string | null {
  const labels = reversedLabels(ip);
  return labels === null ? null : inZone(labels, zone);
}

const isLoopback8 = (a: string): boolean => a.startsWith('127.');
const isRefusal = (a: string): boolean => a.startsWith('127.255.255.');

/** A failed A lookup: NXDOMAIN/NODATA is "not listed" (null), anything else a lookup problem. */
const lookupFailed =
  (zone: string) =>
  (err: unknown): RblProblem | null =>
    isTemporaryDnsError(err) ? { zone, kind: 'lookup', detail: dnsErrorCode(err) } : null;

function queryOne(labels: string, list: RblList, resolver: Resolver): Promise<RblListing | RblProblem | null> {
  const name = inZone(labels, list.zone);
  // most zones answer NXDOMAIN: handled as a rejection, not thrown through an async frame
  return resolver.resolve4(name).then((answers) => listingOf(name, list, answers, resolver), lookupFailed(list.zone));
}

async function listingOf(
  name: string,
  list: RblList,
  answers: string[],
  resolver: Resolver,
): Promise<RblListing | RblProblem | null> {
  const refused = answers.filter(isRefusal);
  const codes = answers.filter((a) => isLoopback8(a) && !isRefusal(a));
  if (codes.length === 0) {
    if (refused.length > 0)
      return { zone: list.zone, kind: 'refused', detail: refused.join(' '), ...refusalOf(refused[0]!) };
    if (answers.length > 0) return { zone: list.zone, kind: 'ignored', detail: answers.join(' ') };
    return null;
  }
  let reason = list.reason ?? `listed by ${list.zone}`;
  try {
    const txt = await resolver.resolveTxt(name);
    const text = txt.map((strings) => strings.join('')).find((t) => t.trim() !== '');
    if (text !== undefined) reason = text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  } catch {
    // no TXT (or it failed): the configured reason stands
  }
  return { zone: list.zone, score: list.score, reason, codes };
}

export async function queryRbls(
  ip: string,
  lists: readonly RblList[],
  resolver: Resolver,
  timeoutMs?: number,
): Promise<RblResult> {
  const labels = reversedLabels(ip);
  if (labels === null) return { score: 0, listed: [], problems: [] };
  // one timer for every zone: each still unanswered when it fires is a timed-out lookup
  const late = timeoutMs === undefined ? null : deadline(timeoutMs);
  const results = await Promise.all(
    lists.map((l) => {
      const answer = queryOne(labels, l, resolver);
      return late === null
        ? answer
        : Promise.race([
            answer,
            late.passed.then((): RblProblem => ({ zone: l.zone, kind: 'lookup', detail: 'ETIMEOUT' })),
          ]);
    }),
  ).finally(() => late?.cancel());
  const result: RblResult = { score: 0, listed: [], problems: [] };
  for (const r of results) {
    if (r === null) continue;
    if ('score' in r) {
      result.listed.push(r);
      result.score += r.score;
    } else {
      result.problems.push(r);
    }
  }
  return result;
}
