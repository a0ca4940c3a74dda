/**
 * relay-domains.ts — the domains whose mailboxes live on a backend (RelayDomain): mail for them is
 * taken from anyone, each recipient verified against the backend, and delivered there.
 *
 *   createRelayDomainTable(routes, { subdomains }) -> RelayDomainTable
 *   table.lookup(domain) -> RelayDomainRoute | null   the route of DOMAIN, or (subdomains: true) of
 *                                                     the closest listed parent of sub.DOMAIN
 *
 * Domains compare in lower case without a trailing dot; a domain listed twice keeps its first line.
 */
import type { RelayDomainRoute } from '../config/types.js';
import { normalizeDomain } from './address.js';

export interface RelayDomainTable {
  lookup(domain: string): RelayDomainRoute | null;
  readonly size: number;
}

export function createRelayDomainTable(
  routes: readonly RelayDomainRoute[],
  opts: { subdomains: boolean },
): RelayDomainTable {
  const byDomain = new Map<string, RelayDomainRoute>();
  for (const r of routes) {
    const d = normalizeDomain(r.domain);
    if (!byDomain.has(d)) byDomain.set(d, r);
  }
  return {
    size: byDomain.size,
    lookup(domain) {
      let d = normalizeDomain(domain);
      const exact = byDomain.get(d);
      if (exact || !opts.subdomains) return exact ?? null;
      for (let dot = d.indexOf('.'); dot >= 0; dot = d.indexOf('.')) {
        d = d.slice(dot + 1);
        const parent = byDomain.get(d);
        if (parent) return parent;
      }
      return null;
    },
  };
}
