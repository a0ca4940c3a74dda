/**
 * etrn.ts — ETRN (RFC 1985): a client asks that the mail held for a node be sent on now.
 *
 *   onEtrn(deps, st, argument) -> Promise<Reply>    the reply, and the flush started
 *
 * Who may: RelayNet clients and authenticated users (the flush goes to the domain's HoldDomain
 * site or its route, never to the asker, so any of them may trigger it); anyone else gets
 * `459 4.7.1 Node … not allowed`. Outside a transaction only (503 5.5.1).
 * The node (RFC 1985 §5): `domain`; `@domain`, that domain and every HoldDomain under it; `#queue`,
 * the queue of that name — the hold queue keeps one per domain, so `#domain` is the domain's.
 * Replies (RFC 1985 §5, its texts): 253 `OK, N pending messages for node X started` when mail is
 * held (the count is always known here, so the RFC's 250 and 252 are not used); 251 `OK, no
 * messages waiting for node X` for a HoldDomain with nothing held; 459 for a node that is neither
 * a HoldDomain nor has held mail; 458 when the hold queue cannot be read; 501 for a bad node.
 * One etrn.decision line.
 */
import type { Reply } from '../../reply/reply.js';
import { REPLIES } from '../../reply/catalogue.js';
import { formatReply } from '../../reply/reply.js';
import { parseDomainName } from '../../config/values.js';
import type { ConnState } from '../connections.js';
import type { Runtime } from '../runtime.js';
import { holdDomainsOf, type HeldMail } from '../held-mail.js';

export interface TurnDeps {
  runtime(): Runtime;
  /** null: no hold queue to read (ETRN answers 458, ATRN 451) */
  heldMail: HeldMail | null;
}

/** The node of an ETRN argument: its domains (for `@domain`, the HoldDomains under it too), or null. */
export function etrnDomains(argument: string, rt: Runtime): { node: string; domains: string[] } | null {
  const arg = argument.trim();
  if (arg === '' || /\s/.test(arg)) return null;
  const sub = arg.startsWith('@');
  const name = parseDomainName(arg.startsWith('@') || arg.startsWith('#') ? arg.slice(1) : arg);
  if (name.kind !== 'ok') return null;
  const d = name.value;
  const node = `${arg[0] === '@' || arg[0] === '#' ? arg[0] : ''}${d}`;
  if (!sub) return { node, domains: [d] };
  const under = holdDomainsOf(rt.config)
    .map((r) => r.domain)
    .filter((h) => h === d || h.endsWith(`.${d}`));
  return { node, domains: [...new Set([d, ...under])] };
}

export async function onEtrn(d: TurnDeps, st: ConnState, argument: string): Promise<Reply> {
  const s = st.session!;
  const rt = d.runtime();
  const parsed = etrnDomains(argument, rt);
  const nodeText = parsed?.node ?? argument.trim().slice(0, 64);
  let held = 0;
  const decide = async (): Promise<Reply> => {
    if (!s.mayRelay && s.authUser === null) return REPLIES.etrnClientNotAllowed(parsed?.node ?? 'given');
    if (s.tx) return REPLIES.turnInTransaction('ETRN');
    if (!parsed) return REPLIES.etrnSyntax();
    if (!d.heldMail) return REPLIES.etrnCannotQueue(parsed.node);
    const heldMail = d.heldMail;
    let counts: number[];
    try {
      counts = await Promise.all(parsed.domains.map((x) => heldMail.count(x)));
    } catch (err) {
      s.log.error('etrn.decision', { ip: s.client.ip, node: nodeText, error: (err as Error).message });
      return REPLIES.etrnCannotQueue(parsed.node);
    }
    held = counts.reduce((a, b) => a + b, 0);
    const holdDomains = new Set(holdDomainsOf(rt.config).map((r) => r.domain));
    if (held === 0)
      return parsed.domains.some((x) => holdDomains.has(x))
        ? REPLIES.etrnNothingWaiting(parsed.node)
        : REPLIES.etrnNodeUnknown(parsed.node);
    parsed.domains.forEach((x, i) => {
      if (counts[i]! > 0)
        void heldMail
          .flush(x)
          .catch((err: Error) => s.log.error('etrn.decision', { ip: s.client.ip, node: x, error: err.message }));
    });
    return REPLIES.etrnStarted(parsed.node, held);
  };
  const r = await decide();
  s.log.info('etrn.decision', {
    ip: s.client.ip,
    node: nodeText,
    ...(parsed ? { domains: parsed.domains } : {}),
    held,
    ...(s.authUser !== null ? { user: s.authUser } : { relay_net: s.mayRelay }),
    reply: formatReply(r),
  });
  return r;
}
