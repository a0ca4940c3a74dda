/**
 * held-mail.ts — what ETRN and ATRN (commands/etrn.ts, commands/atrn.ts) need of the hold queue;
 * the daemon binds it to relay/hold-flush.ts, the tests to fakes.
 *
 *   HeldMail        count a domain's held messages, start a flush, deliver over a reversed connection
 *   holdDomainsOf(config) -> HoldDomain[]         the HoldDomain lines
 *   domainsOfUser(config, user) -> string[]       the HoldDomains an AUTH user may take with ATRN
 */
import type { Socket } from 'node:net';
import type { Config, HoldDomain } from '../config/types.js';

/** What one delivery of held mail did (relay/hold-flush.ts FlushReport). */
export interface HeldReport {
  delivered: number;
  deferred: number;
  failed: number;
  /** messages another delivery attempt held (locked) at the time */
  busy: number;
}

export interface HeldMail {
  /** messages held with a recipient in `domain` */
  count(domain: string): Promise<number>;
  /** ETRN: start delivering the domain's held mail (to its HoldDomain site, else its route); never rejects */
  flush(domain: string): Promise<HeldReport>;
  /** ATRN: the roles reversed, we are the SMTP client on `socket`: deliver the domains' held mail, then QUIT */
  deliverOver(socket: Socket, domains: readonly string[]): Promise<HeldReport>;
}

export function holdDomainsOf(config: Config): readonly HoldDomain[] {
  return config.holdDomains;
}

/** The HoldDomains mapped to `user` (names compare in lower case, as the AuthFile's). */
export function domainsOfUser(config: Config, user: string): string[] {
  const u = user.toLowerCase();
  return holdDomainsOf(config)
    .filter((r) => r.users.some((x) => x.toLowerCase() === u))
    .map((r) => r.domain);
}
