/**
 * relay/domain-relay — delivery of RelayDomain recipients to their backend, beside the main relay
 * (RelayHost, Sendmail or the hold queue) for everybody else (seeds.md §A).
 *
 *   withRelayDomains(main, routeOf, relayFor) → Relay
 *     routeOf(address) → the RelayDomainRoute of a recipient, null for the main relay
 *     relayFor(route) → the relay of a list of backends, made at first use and kept (one per
 *                       list of backends: domains with the same backends share it; a Mailertable
 *                       edited to name other backends gets a new one)
 *   createFallbackRelay(relays) → Relay     the first backend, the next ones only while it cannot be reached
 *   mergeResults(parts) → DeliveryResult    several groups' results as one (also relay/hold-domains.ts)
 *
 * deliver(): the recipients are grouped by destination and each group delivered by its relay (a
 * pooled SMTP relay per backend, relay/smtp-relay.ts); one group is the group's result as it is;
 * several are merged: all accepted → accepted, else `per-recipient` (each recipient its group's
 * answer), which relay/recipient-split.ts (wrapped around this) settles with the same never-lose
 * rules as the main relay: the client gets 250 once one group took it, the deferred ones are
 * held, the refused ones get a DSN.
 * begin(): the main relay's before-queue transaction is kept for its own recipients (the front end
 * never asks it about a RelayDomain recipient, whose backend was asked at RCPT already); at the
 * end, the main part goes first — a client gone before its final dot abandons the whole message,
 * nothing is delivered in its name — then the RelayDomain groups.
 * Failover: only when a backend could not be reached at all (connect, greeting: the 451 4.4.1 of
 * `unavailable`), so that a message is never sent twice; any answer of a backend is final.
 */
import type { Logger } from '../log/logger.js';
import type { RelayDomainRoute } from '../config/types.js';
import { detailOf } from './relay-replies.js';
import {
  resultsPerRecipient,
  type DeliveryResult,
  type OutgoingMessage,
  type RecipientResult,
  type Relay,
  type RelayTransaction,
} from './types.js';

const MAIN = '';

export function withRelayDomains(
  main: Relay,
  routeOf: (address: string) => RelayDomainRoute | null,
  relayFor: (route: RelayDomainRoute) => Relay,
): Relay {
  const relays = new Map<string, Relay>();
  const keyOf = (address: string): string => {
    const route = routeOf(address);
    if (!route) return MAIN;
    const key = route.backends.map((b) => `${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}`).join(',');
    if (!relays.has(key)) relays.set(key, relayFor(route));
    return key;
  };
  const relayOf = (key: string): Relay => (key === MAIN ? main : relays.get(key)!);

  function groups(to: readonly string[]): Map<string, string[]> {
    const g = new Map<string, string[]>();
    for (const a of to) {
      const k = keyOf(a);
      const list = g.get(k);
      if (list) list.push(a);
      else g.set(k, [a]);
    }
    return g;
  }

  async function deliverGroups(msg: OutgoingMessage, g: Map<string, string[]>, log: Logger) {
    const entries = [...g];
    const results = await Promise.all(entries.map(([k, to]) => relayOf(k).deliver({ ...msg, to }, log)));
    return entries.map(([, to], i) => ({ to, result: results[i]! }));
  }

  async function deliver(msg: OutgoingMessage, log: Logger): Promise<DeliveryResult> {
    const g = groups(msg.to);
    if (g.size === 1) return relayOf(g.keys().next().value!).deliver(msg, log);
    return mergeResults(await deliverGroups(msg, g, log));
  }

  const relay: Relay = {
    deliver,
    describe: () =>
      `${main.describe()}; relay domains → ${relays.size === 0 ? 'their backends' : [...relays.values()].map((r) => r.describe()).join(', ')}`,
    async close() {
      await Promise.all([main.close(), ...[...relays.values()].map((r) => r.close())]);
    },
  };
  if (main.capabilities) relay.capabilities = () => main.capabilities!();
  if (main.ready) relay.ready = () => main.ready!();
  if (main.begin) {
    const begin = main.begin.bind(main);
    relay.begin = async (envelope, log) => {
      const b = await begin(envelope, log);
      if (b.kind !== 'open') return b;
      const inner = b.tx;
      const tx: RelayTransaction = {
        rcpt: (to) => inner.rcpt(to),
        abort: () => inner.abort(),
        async data(msg, clientGone, txLog) {
          const g = groups(msg.to);
          const mainTo = g.get(MAIN) ?? [];
          g.delete(MAIN);
          if (g.size === 0) return inner.data(msg, clientGone, txLog);
          let first: { to: string[]; result: DeliveryResult }[] = [];
          if (mainTo.length > 0) {
            const r = await inner.data({ ...msg, to: mainTo }, clientGone, txLog);
            if (r.kind === 'abandoned') return r;
            first = [{ to: mainTo, result: r }];
          } else inner.abort();
          return mergeResults([...first, ...(await deliverGroups(msg, g, txLog))]);
        },
      };
      return { kind: 'open', tx };
    };
  }
  return relay;
}

/** Several groups' results as one: accepted when all were, else each recipient with its group's answer. */
export function mergeResults(parts: { to: string[]; result: DeliveryResult }[]): DeliveryResult {
  const ms = Math.max(0, ...parts.map((p) => p.result.ms));
  if (parts.length === 1) return parts[0]!.result;
  if (parts.every((p) => p.result.kind === 'accepted'))
    return {
      kind: 'accepted',
      response: parts.map((p) => (p.result.kind === 'accepted' ? p.result.response : '')).join('; '),
      ms,
    };
  const results: RecipientResult[] = parts.flatMap(({ to, result }) => resultsPerRecipient(to, result));
  return { kind: 'per-recipient', results, ms };
}

/** The first relay; the next ones only while the one before could not be reached at all. */
export function createFallbackRelay(relays: readonly Relay[]): Relay {
  if (relays.length === 1) return relays[0]!;
  return {
    async deliver(msg, log) {
      let result: DeliveryResult | null = null;
      for (const [i, r] of relays.entries()) {
        result = await r.deliver(msg, log);
        if (!unreachable(result) || i === relays.length - 1) return result;
        log.warn('relay.failed', {
          id: msg.id,
          relay: r.describe(),
          ...detailOf(result.kind === 'deferred' ? result.reply : { code: 451, enhanced: '4.4.1', text: '' }),
          retry: relays[i + 1]!.describe(),
        });
      }
      return result!;
    },
    describe: () => relays.map((r) => r.describe()).join(' | '),
    async close() {
      await Promise.all(relays.map((r) => r.close()));
    },
  };
}

/** could not connect or set up the session: nothing was sent, another backend may take it */
function unreachable(r: DeliveryResult): boolean {
  if (r.kind !== 'deferred') return false;
  const d = detailOf(r.reply).detail;
  return r.reply.enhanced === '4.4.1' && d !== undefined && / unavailable: /.test(d);
}
