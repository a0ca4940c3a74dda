/**
 * facts/bounce-route — where a bounce to a sender's domain would go (RFC 5321 §5.1, RFC 7505).
 *
 *   exchangersOf(domain, resolver) -> ProbeHosts
 *     { kind: 'hosts', hosts, implicit }   the MX hosts in preference order (equal preferences keep
 *                                          the order of the answer); no MX records → the domain itself
 *                                          (implicit MX); a domain literal [1.2.3.4] → that address
 *     { kind: 'final', outcome }           NXDOMAIN (550 5.1.2) or null MX (556 5.1.10): refused for
 *                                          the domain; a temporary DNS failure: 451 4.4.3
 *   addressesOf(host, resolver) -> HostAddresses    IPv4 then IPv6 addresses of one exchanger
 *
 * A null MX is a record whose exchange is the root (`0 .`, node gives ''); other records beside it
 * are used as they are.
 */
import { isIP } from 'node:net';
import { dnsErrorCode, isTemporaryDnsError } from '../dns/resolver.js';
import { refused, tempfail, type ProbeOutcome, type ProbeResolver } from './bounce-types.js';
import { ANSWER_TEXTS } from '../reply/catalogue.js';

export type ProbeHosts =
  | { kind: 'hosts'; hosts: string[]; implicit: boolean }
  | { kind: 'final'; outcome: ProbeOutcome };

export type HostAddresses =
  | { kind: 'found'; ips: string[] }
  /** the name has no address (NXDOMAIN or no A/AAAA) */
  | { kind: 'none' }
  /** a lookup failed temporarily (and the other gave nothing): the DNS error code */
  | { kind: 'failed'; code: string };

export async function exchangersOf(domain: string, resolver: ProbeResolver): Promise<ProbeHosts> {
  if (domain.startsWith('[')) return literalRoute(domain);
  let records: { exchange: string; priority: number }[];
  try {
    records = await resolver.resolveMx(domain);
  } catch (err) {
    const code = dnsErrorCode(err);
    if (code === 'ENODATA') records = [];
    else if (code === 'ENOTFOUND' || code === 'EBADNAME')
      return final(refused(ANSWER_TEXTS.probeNoSuchDomain(domain), 'domain'));
    else return final(dnsTempfail(domain, code));
  }
  if (records.length === 0) return { kind: 'hosts', hosts: [domain], implicit: true };
  const real = records.filter((r) => !isRootName(r.exchange));
  if (real.length === 0) return final(refused(ANSWER_TEXTS.probeNullMx(domain), 'domain'));
  const hosts = [...real]
    .sort((a, b) => a.priority - b.priority)
    .map((r) => r.exchange.toLowerCase().replace(/\.$/, ''));
  return { kind: 'hosts', hosts: [...new Set(hosts)], implicit: false };
}

export async function addressesOf(host: string, resolver: ProbeResolver): Promise<HostAddresses> {
  if (isIP(host)) return { kind: 'found', ips: [host] };
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const ips = [...fulfilled(v4), ...fulfilled(v6)];
  if (ips.length > 0) return { kind: 'found', ips };
  const failure = [v4, v6].find((r) => r.status === 'rejected' && isTemporaryDnsError(r.reason));
  if (failure && failure.status === 'rejected') return { kind: 'failed', code: dnsErrorCode(failure.reason) };
  return { kind: 'none' };
}

export function dnsTempfail(name: string, code: string): ProbeOutcome {
  return tempfail(ANSWER_TEXTS.probeDnsTempfail(name, code));
}

function literalRoute(domain: string): ProbeHosts {
  const inner = domain.slice(1, -1).replace(/^ipv6:/i, '');
  if (!domain.endsWith(']') || !isIP(inner)) return final(refused(ANSWER_TEXTS.probeBadLiteral(domain), 'domain'));
  return { kind: 'hosts', hosts: [inner], implicit: false };
}

function isRootName(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

function fulfilled(r: PromiseSettledResult<string[]>): string[] {
  return r.status === 'fulfilled' && Array.isArray(r.value) ? r.value : [];
}

function final(outcome: ProbeOutcome): ProbeHosts {
  return { kind: 'final', outcome };
}
