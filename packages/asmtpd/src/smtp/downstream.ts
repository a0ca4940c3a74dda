/**
 * downstream.ts — the downstream side of one client transaction, as the front end sees it.
 *
 *   askDownstream(rt, tx, address)   after the policy accepted a recipient: open the downstream
 *                                    transaction at the first one (relay begin()), then RCPT there.
 *                                    → { reply: null | the refusal for the client, source, detail }
 *   deliverMessage(rt, tx, msg, gone) the message after DATA: the downstream transaction's data(),
 *                                    or (no RCPT-time verdicts) an ordinary relay delivery
 *   abortDownstream(tx)              RSET the downstream transaction (client RSET/HELO/EHLO/QUIT/MAIL,
 *                                    gone, or a message refused here); idempotent
 *
 * Without a downstream verdict (relay without begin(): Sendmail, hold queue; every RelayConnections
 * session in use: `busy`; the downstream unreachable with HoldOnFailure yes) the transaction is
 * `unverified`: RCPT is the policy's answer alone and the message is delivered after DATA, where
 * recipient-split.ts settles mixed results. The downstream unreachable without HoldOnFailure: the
 * RCPT gets the generic 4xx (its detail goes to rcpt.decision).
 */
import type { Runtime } from './runtime.js';
import { plainReply, type Reply } from '../reply/reply.js';
import type { Transaction } from './session.js';
import { detailOf } from '../relay/relay-replies.js';
import type { DeliveryResult, OutgoingMessage } from '../relay/types.js';

export interface DownstreamVerdict {
  /** null: the downstream accepted (or was not asked); else the client's RCPT reply */
  reply: Reply | null;
  /** for rcpt.decision: accepted, refused, unreachable, busy, mail-refused, unverified */
  source: string;
  detail: { detail?: string };
}

export async function askDownstream(rt: Runtime, tx: Transaction, address: string): Promise<DownstreamVerdict | null> {
  if (!rt.relay.begin) return null;
  if (tx.downstream === 'unverified') return { reply: null, source: 'unverified', detail: {} };
  const holdOnFailure = rt.config.holdOnFailure;
  if (!tx.downstream) {
    const env = {
      id: tx.id,
      from: tx.from,
      smtputf8: tx.smtputf8,
      eightBit: tx.eightBit,
      ...(tx.declaredSize !== undefined ? { size: tx.declaredSize } : {}),
    };
    const b = await rt.relay.begin(env, tx.log);
    if (b.kind === 'busy') {
      tx.downstream = 'unverified';
      return { reply: null, source: 'busy', detail: {} };
    }
    if (b.kind === 'failed') {
      const ours = detailOf(b.reply);
      if (b.reply.code < 500 && holdOnFailure && ours.detail !== undefined) {
        tx.downstream = 'unverified';
        return { reply: null, source: 'unreachable', detail: ours };
      }
      return {
        reply: plainReply(b.reply),
        source: ours.detail !== undefined ? 'unreachable' : 'mail-refused',
        detail: ours,
      };
    }
    tx.downstream = b.tx;
  }
  const refusal = await tx.downstream.rcpt(address);
  if (!refusal) return { reply: null, source: 'accepted', detail: {} };
  const ours = detailOf(refusal);
  // our own failure (the session broke): with HoldOnFailure the recipient is taken and held if need be
  if (ours.detail !== undefined && refusal.code < 500 && holdOnFailure)
    return { reply: null, source: 'unreachable', detail: ours };
  return { reply: plainReply(refusal), source: ours.detail !== undefined ? 'unreachable' : 'refused', detail: ours };
}

export async function deliverMessage(
  rt: Runtime,
  tx: Transaction,
  msg: OutgoingMessage,
  gone: () => boolean,
): Promise<DeliveryResult | { kind: 'abandoned' }> {
  const down = tx.downstream;
  if (down && down !== 'unverified') {
    tx.downstream = undefined;
    return down.data(msg, gone, tx.log);
  }
  // nothing went out yet: a client that is already gone gets nothing delivered in its name
  if (gone()) return { kind: 'abandoned' };
  return rt.relay.deliver(msg, tx.log);
}

export function abortDownstream(tx: Transaction): void {
  const down = tx.downstream;
  tx.downstream = undefined;
  if (down && down !== 'unverified') down.abort();
}
