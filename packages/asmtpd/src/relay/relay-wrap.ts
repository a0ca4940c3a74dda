/**
 * relay/relay-wrap — what a Relay wrapper (recipient split, HoldOnFailure, the delivery log) needs
 * to pass on besides deliver(): begin() with each transaction's data() result mapped the same way
 * as deliver()'s, capabilities() and ready().
 *
 *   passOn(inner, map) → { begin?, capabilities?, ready? }    spread into the wrapper's Relay
 */
import type { Logger } from '../log/logger.js';
import type { DeliveryResult, OutgoingMessage, Relay, RelayTransaction } from './types.js';

export type ResultMap = (
  msg: OutgoingMessage,
  result: DeliveryResult,
  log: Logger,
  startedMs: number,
) => Promise<DeliveryResult>;

export function passOn(inner: Relay, map: ResultMap): Pick<Relay, 'begin' | 'capabilities' | 'ready'> {
  const out: Pick<Relay, 'begin' | 'capabilities' | 'ready'> = {};
  const { begin, capabilities, ready } = inner;
  if (begin) {
    out.begin = async (envelope, log) => {
      const b = await begin.call(inner, envelope, log);
      if (b.kind !== 'open') return b;
      const tx = b.tx;
      const wrapped: RelayTransaction = {
        rcpt: (to) => tx.rcpt(to),
        abort: () => tx.abort(),
        async data(msg, clientGone, txLog) {
          const startedMs = Date.now();
          const r = await tx.data(msg, clientGone, txLog);
          return r.kind === 'abandoned' ? r : map(msg, r, txLog, startedMs);
        },
      };
      return { kind: 'open', tx: wrapped };
    };
  }
  if (capabilities) out.capabilities = () => capabilities.call(inner);
  if (ready) out.ready = () => ready.call(inner);
  return out;
}
