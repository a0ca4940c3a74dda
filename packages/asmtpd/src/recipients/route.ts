/**
 * route.ts — decide what a recipient address is (facts → policy: this is the routing fact).
 *
 *   routeRecipient(address, ctx) -> Route
 *
 * Route kinds: `user` (a local account), `postmaster` (RFC 5321 §4.5.1: always accepted for our
 * domains), `unknown` (a local domain, no such account), `relay` (another domain and the client may
 * relay), `denied` (another domain and it may not, or a relay trick in any domain).
 * Relay tricks refused for everyone: source routes, and `%`, `!` or `@` in the local part
 * (`u%other@local`, `other!u@local`, `"u@other"@local`, `u@other@local`).
 */
import { splitAddress, hasRoutingCharacters, unquoteLocal } from './address.js';
import type { Account, Accounts } from './accounts.js';

export type Route =
  | { kind: 'user'; account: Account; local: string; domain: string }
  | { kind: 'postmaster'; domain: string }
  | { kind: 'unknown'; local: string; domain: string }
  | { kind: 'relay'; domain: string }
  | { kind: 'denied'; reason: 'relay' | 'routing-characters' };

export interface RouteContext {
  localDomains: ReadonlySet<string>;
  mayRelay: boolean;
  sourceRoute: boolean;
  accounts: Accounts;
}

export async function routeRecipient(address: string, ctx: RouteContext): Promise<Route> {
  if (address.toLowerCase() === 'postmaster') return { kind: 'postmaster', domain: '' };
  const { local, domain } = splitAddress(address);
  if (ctx.sourceRoute || hasRoutingCharacters(local)) return { kind: 'denied', reason: 'routing-characters' };
  if (!ctx.localDomains.has(domain)) {
    return ctx.mayRelay ? { kind: 'relay', domain } : { kind: 'denied', reason: 'relay' };
  }
  const name = unquoteLocal(local);
  if (name.toLowerCase() === 'postmaster') return { kind: 'postmaster', domain };
  const account = await ctx.accounts.lookup(name);
  return account ? { kind: 'user', account, local, domain } : { kind: 'unknown', local, domain };
}
