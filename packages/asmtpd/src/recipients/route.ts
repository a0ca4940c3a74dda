/**
 * route.ts — decide what a recipient address is (the routing fact the policy starts from).
 *
 *   routeRecipient(address, ctx) -> Route
 *
 * Order: postmaster (RFC 5321 §4.5.1) → relay tricks → HoldDomain (`hold-domain`, for every
 * client: held for the site) → RelayDomain (`relay-domain`, for every
 * client: verified against the backend and delivered there) → DomainFile (virtual domains:
 * `anything@domain` is `user+[prefix+]anything`) → LocalDomain: the user part (before Separator)
 * through AliasFile (an alias resolving to one local account is that account; to several targets:
 * `alias-multiple`), then the accounts (PasswdFile or system) → unknown. Other domains: `relay` for
 * clients that may relay, else `denied`. Relay tricks refused for everyone: source routes, and `%`,
 * `!` or `@` in the local part (`u%other@local`, `other!u@local`, `"u@other"@local`, `u@other@local`).
 */
import { splitAddress, hasRoutingCharacters, unquoteLocal } from './address.js';
import type { Account, Accounts } from './accounts.js';
import { resolveAlias, type AliasTable } from './aliases.js';
import type { DomainTable } from './domains.js';
import type { RelayDomainTable } from './relay-domains.js';
import type { RelayDomainRoute } from '../config/types.js';
import { applyDomainFile, splitExtension } from './extension.js';

export type Route =
  | {
      kind: 'user';
      account: Account;
      extension: string | null;
      domain: string;
      via: 'account' | 'alias' | 'domain-file';
    }
  | { kind: 'postmaster'; domain: string }
  | { kind: 'alias-multiple'; name: string; domain: string }
  | { kind: 'unknown'; local: string; domain: string }
  | { kind: 'relay'; domain: string }
  | { kind: 'relay-domain'; domain: string; backend: RelayDomainRoute }
  /** HoldDomain: taken from anyone, always held in the hold queue until flushed or taken by ATRN */
  | { kind: 'hold-domain'; domain: string }
  | { kind: 'denied'; reason: 'relay' | 'routing-characters' };

export interface RouteContext {
  localDomains: ReadonlySet<string>;
  mayRelay: boolean;
  sourceRoute: boolean;
  accounts: Accounts;
  separator: string | null;
  aliases: AliasTable | null;
  domains: DomainTable | null;
  relayDomains?: RelayDomainTable | null;
  /** HoldDomain domains, lower case */
  holdDomains?: ReadonlySet<string> | null;
}

export async function routeRecipient(address: string, ctx: RouteContext): Promise<Route> {
  if (address.toLowerCase() === 'postmaster') return { kind: 'postmaster', domain: '' };
  const { local, domain } = splitAddress(address);
  if (ctx.sourceRoute || hasRoutingCharacters(local)) return { kind: 'denied', reason: 'routing-characters' };
  const name = unquoteLocal(local);

  if (ctx.holdDomains?.has(domain.toLowerCase())) return { kind: 'hold-domain', domain };

  const backend = ctx.relayDomains?.lookup(domain) ?? null;
  if (backend) return { kind: 'relay-domain', domain, backend };

  const virtual = ctx.domains?.lookup(domain) ?? null;
  if (virtual) {
    const { user, extension } = applyDomainFile(name, virtual, ctx.separator);
    const account = await ctx.accounts.lookup(user);
    return account
      ? { kind: 'user', account, extension, domain, via: 'domain-file' }
      : { kind: 'unknown', local, domain };
  }
  if (!ctx.localDomains.has(domain)) {
    return ctx.mayRelay ? { kind: 'relay', domain } : { kind: 'denied', reason: 'relay' };
  }
  const { user, extension } = splitExtension(name, ctx.separator);
  if (user === 'postmaster') return { kind: 'postmaster', domain };
  if (ctx.aliases) {
    const isLocalUser = async (u: string): Promise<boolean> => (await ctx.accounts.lookup(u)) !== null;
    const resolved = await resolveAlias(user, ctx.aliases, isLocalUser, (d) => ctx.localDomains.has(d));
    if (resolved.kind === 'user') {
      const account = await ctx.accounts.lookup(resolved.user);
      if (account) return { kind: 'user', account, extension, domain, via: 'alias' };
    }
    if (resolved.kind === 'multiple') return { kind: 'alias-multiple', name: user, domain };
  }
  const account = await ctx.accounts.lookup(user);
  return account ? { kind: 'user', account, extension, domain, via: 'account' } : { kind: 'unknown', local, domain };
}
