/**
 * atrn.ts — ATRN (RFC 2645, On-Demand Mail Relay): an authenticated customer asks for its domains'
 * held mail, and the roles reverse on the same connection.
 *
 *   decideAtrn(deps, st, argument) -> { reply, domains }   the answer (250: reverse now)
 *   busyAtrn                                              domains being dequeued by an ATRN now
 *
 * Offered on the ODMRPort listener, and after EHLO on SMTPPort with ATRNOnSMTPPort (front-end.ts).
 * Only after AUTH (530 5.7.0); outside a transaction (503 5.5.1). `ATRN d1,d2` asks for those
 * domains, bare `ATRN` for every HoldDomain mapped to the user. A domain not mapped to the user
 * (HoldDomain DOMAIN USER) refuses the whole request: `450 4.7.1` (RFC 2645 §5.2: the customer may
 * only take its own mail — the seed's 1.7 fix). Nothing held: `453 4.2.0 You have no mail`. A
 * domain another ATRN of this process is dequeuing now, or a hold queue that cannot be read:
 * `451 4.3.0` (the hold queue's own lock keeps a flush and an ATRN from sending one message twice).
 * Otherwise `250 2.0.0 OK now reversing the connection`; the front end then hands the socket to
 * the hold queue, which waits for the customer's greeting and delivers as the SMTP client.
 * One atrn.decision line.
 */
import type { Reply } from '../../reply/reply.js';
import { REPLIES } from '../../reply/catalogue.js';
import { formatReply } from '../../reply/reply.js';
import { parseDomainName } from '../../config/values.js';
import type { ConnState } from '../connections.js';
import { domainsOfUser } from '../held-mail.js';
import type { TurnDeps } from './etrn.js';

/** Domains an ATRN of this process is delivering now (lower case). */
export const busyAtrn = new Set<string>();

/** RFC 2645 §5.2: `ATRN [SP domain *("," domain)]` → the domains, or null for bad syntax. */
export function atrnArgument(argument: string): string[] | null {
  const arg = argument.trim();
  if (arg === '') return [];
  if (/\s/.test(arg)) return null;
  const out: string[] = [];
  for (const part of arg.split(',')) {
    const d = parseDomainName(part);
    if (d.kind !== 'ok') return null;
    out.push(d.value);
  }
  return [...new Set(out)];
}

export async function decideAtrn(
  d: TurnDeps,
  st: ConnState,
  argument: string,
): Promise<{ reply: Reply; domains: string[] }> {
  const s = st.session!;
  const rt = d.runtime();
  let domains: string[] = [];
  let held = 0;
  const decide = async (): Promise<Reply> => {
    if (s.authUser === null) return REPLIES.atrnAuthRequired();
    if (s.tx) return REPLIES.turnInTransaction('ATRN');
    const asked = atrnArgument(argument);
    if (asked === null) return REPLIES.atrnSyntax();
    const mine = domainsOfUser(rt.config, s.authUser);
    const foreign = asked.find((x) => !mine.includes(x));
    if (foreign !== undefined) return REPLIES.atrnRefused(foreign);
    domains = asked.length > 0 ? asked : mine;
    if (domains.length === 0 || !d.heldMail) return domains.length === 0 ? REPLIES.atrnNoMail() : REPLIES.atrnBusy();
    if (domains.some((x) => busyAtrn.has(x))) return REPLIES.atrnBusy();
    const heldMail = d.heldMail;
    try {
      held = (await Promise.all(domains.map((x) => heldMail.count(x)))).reduce((a, b) => a + b, 0);
    } catch (err) {
      s.log.error('atrn.decision', { ip: s.client.ip, user: s.authUser, error: (err as Error).message });
      return REPLIES.atrnBusy();
    }
    if (held === 0) return REPLIES.atrnNoMail();
    // checked again after the count: another ATRN may have started meanwhile
    if (domains.some((x) => busyAtrn.has(x))) return REPLIES.atrnBusy();
    return REPLIES.atrnReversing();
  };
  const reply = await decide();
  s.log.info('atrn.decision', {
    ip: s.client.ip,
    user: s.authUser,
    domains,
    held,
    reply: formatReply(reply),
  });
  return { reply, domains };
}
