/**
 * relay/hold-domains — HoldDomain recipients are always held, whatever the main relay is.
 *
 *   withHoldDomains(inner, isHoldDomain, hold) → Relay
 *
 * deliver() and begin()'s data(): the recipients whose domain is a HoldDomain are written to the
 * hold queue (one file for them, fsynced: hold-relay.ts) and never reach RelayHost, a RelayDomain
 * backend or Sendmail; the others go to `inner` as before. Both parts' results are merged as
 * domain-relay.ts does (all accepted → accepted, else per-recipient, which recipient-split.ts
 * settles). In begin()'s data() the inner part goes first: a client gone before its final dot
 * abandons the whole message, nothing is held in its name. The front end never asks the
 * downstream about a HoldDomain recipient at RCPT (smtp/commands/rcpt.ts).
 */
import type { Logger } from '../log/logger.js';
import { mergeResults } from './domain-relay.js';
import { createHoldQueueRelay, type HoldQueueOptions } from './hold-relay.js';
import type { DeliveryResult, OutgoingMessage, Relay, RelayTransaction } from './types.js';

export function withHoldDomains(
  inner: Relay,
  isHoldDomain: (address: string) => boolean,
  hold: HoldQueueOptions,
): Relay {
  const holdRelay = createHoldQueueRelay(hold);
  const split = (to: readonly string[]): { held: string[]; rest: string[] } => ({
    held: to.filter(isHoldDomain),
    rest: to.filter((a) => !isHoldDomain(a)),
  });

  async function both(
    msg: OutgoingMessage,
    held: string[],
    rest: string[],
    restResult: DeliveryResult,
    log: Logger,
  ): Promise<DeliveryResult> {
    const heldResult = await holdRelay.deliver({ ...msg, to: held }, log);
    return mergeResults([
      { to: rest, result: restResult },
      { to: held, result: heldResult },
    ]);
  }

  const relay: Relay = {
    async deliver(msg, log) {
      const { held, rest } = split(msg.to);
      if (held.length === 0) return inner.deliver(msg, log);
      if (rest.length === 0) return holdRelay.deliver(msg, log);
      return both(msg, held, rest, await inner.deliver({ ...msg, to: rest }, log), log);
    },
    describe: () => `${inner.describe()}; hold domains → hold queue ${hold.dir}`,
    close: () => inner.close(),
  };
  if (inner.capabilities) relay.capabilities = () => inner.capabilities!();
  if (inner.ready) relay.ready = () => inner.ready!();
  if (inner.begin) {
    const begin = inner.begin.bind(inner);
    relay.begin = async (envelope, log) => {
      const b = await begin(envelope, log);
      if (b.kind !== 'open') return b;
      const tx: RelayTransaction = {
        rcpt: (to) => b.tx.rcpt(to),
        abort: () => b.tx.abort(),
        async data(msg, clientGone, txLog) {
          const { held, rest } = split(msg.to);
          if (held.length === 0) return b.tx.data(msg, clientGone, txLog);
          if (rest.length === 0) {
            b.tx.abort();
            if (clientGone()) return { kind: 'abandoned' };
            return holdRelay.deliver(msg, txLog);
          }
          const r = await b.tx.data({ ...msg, to: rest }, clientGone, txLog);
          if (r.kind === 'abandoned') return r;
          return both(msg, held, rest, r, txLog);
        },
      };
      return { kind: 'open', tx };
    };
  }
  return relay;
}
