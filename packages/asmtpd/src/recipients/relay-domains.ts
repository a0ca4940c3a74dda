/**
 * relay-domains.ts — the domains whose mailboxes live on a backend (RelayDomain lines and the
 * Mailertable file): mail for them is taken from anyone, each recipient verified against the
 * backend, and delivered there.
 *
 *   hasRelayDomains(config) -> boolean                 a RelayDomain line or a Mailertable
 *   createRelayDomainTable(routes, options) -> RelayDomainTable
 *   table.lookup(domain) -> RelayDomainRoute | null    the route of DOMAIN, or of a parent of it
 *
 * Lookup, in order: DOMAIN itself (a RelayDomain line first, then a Mailertable line); then each
 * parent P of DOMAIN, closest first: a Mailertable `.P` line (sendmail's subdomain key, always),
 * and — with RcptVerifySubdomains yes — a RelayDomain or Mailertable line for P itself.
 * Domains compare in lower case without a trailing dot; a domain listed twice keeps its first line.
 *
 * The Mailertable is re-read when it changes, as DomainFile and AliasFile are
 * (config/reloading-file.ts: on a lookup, at most one stat a second, a read only when its
 * mtime, size or inode changed; an unreadable file keeps the last contents read). So an edit
 * takes effect within a second without SIGHUP; SIGHUP reads it at once. A route from the
 * Mailertable names the key's domain (without the dot) in `domain`.
 */
import type { Config, RelayDomainRoute } from '../config/types.js';
import type { ConfigIssue } from '../config/issues.js';
import { createReloadingFile, type ReloadOptions } from '../config/reloading-file.js';
import { normalizeDomain } from './address.js';
import { parseMailertable } from './mailertable.js';

export interface RelayDomainTable {
  lookup(domain: string): RelayDomainRoute | null;
}

export interface RelayDomainTableOptions extends ReloadOptions {
  /** RcptVerifySubdomains */
  subdomains: boolean;
  /** the Mailertable file, or null */
  mailertable?: string | null;
}

export function hasRelayDomains(c: Pick<Config, 'relayDomains' | 'mailertable'>): boolean {
  return c.relayDomains.length > 0 || c.mailertable !== null;
}

interface MailertableMaps {
  /** `domain` keys */
  exact: Map<string, RelayDomainRoute>;
  /** `.domain` keys, by domain */
  below: Map<string, RelayDomainRoute>;
}

const NO_MAILERTABLE: MailertableMaps = { exact: new Map(), below: new Map() };

function mailertableMaps(text: string, file: string): { value: MailertableMaps; issues: ConfigIssue[] } {
  const { entries, issues } = parseMailertable(text, file);
  const value: MailertableMaps = { exact: new Map(), below: new Map() };
  for (const e of entries)
    (e.subdomainsOnly ? value.below : value.exact).set(e.domain, { domain: e.domain, backends: e.backends });
  return { value, issues };
}

export function createRelayDomainTable(
  routes: readonly RelayDomainRoute[],
  opts: RelayDomainTableOptions,
): RelayDomainTable {
  const byDomain = new Map<string, RelayDomainRoute>();
  for (const r of routes) {
    const d = normalizeDomain(r.domain);
    if (!byDomain.has(d)) byDomain.set(d, r);
  }
  const file = opts.mailertable
    ? createReloadingFile<MailertableMaps>(opts.mailertable, mailertableMaps, NO_MAILERTABLE, opts)
    : null;
  return {
    lookup(domain) {
      let d = normalizeDomain(domain);
      const m = file ? file.current() : NO_MAILERTABLE;
      const exact = byDomain.get(d) ?? m.exact.get(d);
      if (exact) return exact;
      for (let dot = d.indexOf('.'); dot >= 0; dot = d.indexOf('.')) {
        d = d.slice(dot + 1);
        const parent = m.below.get(d) ?? (opts.subdomains ? (byDomain.get(d) ?? m.exact.get(d)) : undefined);
        if (parent) return parent;
      }
      return null;
    },
  };
}
