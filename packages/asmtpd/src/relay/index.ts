/**
 * relay — delivering accepted mail downstream, never losing it (spec asmtpd.md §1, §3 "Delivery of
 * accepted mail", §6; seeds.md §C).
 *
 * Public:
 *   createRelay(config, log) → Relay
 *       RelayHost set      → SMTP (host:port) or LMTP (lmtp:host:port, unix:/path), pooled (smtp-relay.ts)
 *       else Sendmail set  → the command per message (sendmail-relay.ts)
 *       else               → the hold queue at HoldQueue (hold-relay.ts), the embedded default
 *       RelayDomain recipients → their backend (SMTP, pooled; the fallbacks while it is unreachable),
 *       whatever the main relay is (domain-relay.ts)
 *       With RelayHost or Sendmail, recipient-split.ts settles mixed per-recipient results (hold the
 *       deferred, DSN the refused, 250 to the client).
 *       HoldDomain recipients → always the hold queue (hold-domains.ts), whatever the main relay is.
 *       HoldOnFailure yes (with RelayHost or Sendmail) → a temporary failure is held and accepted.
 *       (The config loader refuses RelayHost together with Sendmail; RelayHost would win.)
 *   withDeliveryLog(relay) → Relay    the one log line per delivery (used by createRelay)
 *   Re-exported: types (OutgoingMessage, DeliveryResult, RecipientResult, Relay), hold-queue helpers
 *   (writeHeld, readHeld, listHeld, countHeld), createSmtpRelay, createSendmailRelay, createHoldQueueRelay,
 *   withHoldOnFailure.
 *
 * Logging: exactly one line per delivery, on the logger passed to deliver() (it carries sid/tid):
 *   relay.done   (id, relay, ms, response, downstreamId?, held?)          accepted
 *   relay.done   (id, relay, ms, response: "1 delivered, 1 held after …, 1 refused (DSN …)")  mixed results, settled
 *   relay.failed (id, relay, ms, reply)                                   rejected / deferred / none accepted
 * plus queue.held from the hold queue, and (debug level only) a relay.failed line with stale: true
 * when a pooled session turned out dead and the message was retried on a fresh one.
 * Addresses and replies only, never message content. Each delivery is also timed in the metrics
 * (asmtpd_relay_seconds by result: accepted, held, partial, rejected, deferred).
 */
import type { Config } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { formatReply } from '../reply/reply.js';
import { createHoldQueueRelay, withHoldOnFailure } from './hold-relay.js';
import { detailOf, localFailure } from './relay-replies.js';
import { withRecipientSplit } from './recipient-split.js';
import { passOn } from './relay-wrap.js';
import { createSendmailRelay } from './sendmail-relay.js';
import { createSmtpRelay } from './smtp-relay.js';
import { createFallbackRelay, withRelayDomains } from './domain-relay.js';
import { withHoldDomains } from './hold-domains.js';
import { domainOf } from './hold-routes.js';
import { createRelayDomainTable, hasRelayDomains } from '../recipients/relay-domains.js';
import type { DeliveryResult, OutgoingMessage, Relay } from './types.js';
import { metrics, type RelayResult } from '../metrics/metrics.js';

export type { DeliveryResult, OutgoingMessage, RecipientResult, Relay } from './types.js';
export {
  countHeld,
  listHeld,
  readHeld,
  writeHeld,
  type HeldEnvelope,
  type HeldMessage,
  type WriteHeldResult,
} from './hold-queue.js';
export { createSmtpRelay, type SmtpRelayOptions } from './smtp-relay.js';
export { createSendmailRelay, sendmailArgv, type SendmailRelayOptions } from './sendmail-relay.js';
export { createHoldQueueRelay, withHoldOnFailure, type HoldQueueOptions } from './hold-relay.js';
export { DEFAULT_POOL_LIMITS, type PoolLimits } from './connection-pool.js';
export { countHeldFor, deliverHeldOver, flushHeld, type FlushOptions, type FlushReport } from './hold-flush.js';

/** `_log` is the daemon's logger: deliveries log on the per-session logger given to deliver(). */
export function createRelay(config: Config, _log: Logger): Relay {
  const hold = { dir: config.holdQueue, hostname: config.hostname };
  let relay: Relay;
  if (config.relayHost) {
    relay = createSmtpRelay({
      target: config.relayHost,
      clientName: config.hostname,
      timeoutMs: config.relayTimeoutMs,
      pool: { maxConnections: config.relayConnections },
    });
  } else if (config.sendmail && config.sendmail.length > 0) {
    relay = createSendmailRelay({ argvTemplate: config.sendmail, timeoutMs: config.relayTimeoutMs });
  } else {
    relay = createHoldQueueRelay(hold);
  }
  const relayDomains = hasRelayDomains(config);
  if (relayDomains) {
    const table = createRelayDomainTable(config.relayDomains, {
      subdomains: config.rcptVerifySubdomains,
      mailertable: config.mailertable,
    });
    relay = withRelayDomains(
      relay,
      (address) => table.lookup(address.slice(address.lastIndexOf('@') + 1)),
      (route) =>
        createFallbackRelay(
          route.backends.map((b) =>
            createSmtpRelay({
              target: { kind: 'smtp', host: b.host, port: b.port },
              clientName: config.hostname,
              timeoutMs: config.relayTimeoutMs,
              pool: { maxConnections: config.relayConnections },
            }),
          ),
        ),
    );
  }
  const holdDomains = new Set(config.holdDomains.map((d) => d.domain));
  if (holdDomains.size > 0 && (config.relayHost || config.sendmail || relayDomains))
    relay = withHoldDomains(relay, (address) => holdDomains.has(domainOf(address)), hold);
  const holdOnFailure = config.holdOnFailure && Boolean(config.relayHost || config.sendmail || relayDomains);
  if (config.relayHost || config.sendmail || relayDomains)
    relay = withRecipientSplit(relay, { ...hold, holdOnFailure });
  if (holdOnFailure) relay = withHoldOnFailure(relay, hold);
  return withDeliveryLog(relay);
}

export function withDeliveryLog(inner: Relay): Relay {
  const relayName = inner.describe();
  async function deliver(msg: OutgoingMessage, log: Logger): Promise<DeliveryResult> {
    const startedMs = Date.now();
    let result: DeliveryResult;
    try {
      result = await inner.deliver(msg, log);
    } catch (err) {
      // deliver() never throws by contract; a bug here still must not lose the 4xx
      result = {
        kind: 'deferred',
        reply: localFailure(`relay error: ${(err as Error).message}`),
        ms: Date.now() - startedMs,
      };
    }
    logDelivery(log, msg, result, relayName);
    return result;
  }
  const logged = async (msg: OutgoingMessage, result: DeliveryResult, log: Logger): Promise<DeliveryResult> => {
    logDelivery(log, msg, result, relayName);
    return result;
  };
  return { deliver, ...passOn(inner, logged), close: () => inner.close(), describe: () => relayName };
}

/** accepted (held when the hold queue took it), partial (some recipients), or why none was delivered */
function relayResult(result: DeliveryResult): RelayResult {
  switch (result.kind) {
    case 'accepted':
      return result.held ? 'held' : 'accepted';
    case 'rejected':
    case 'deferred':
      return result.kind;
    case 'per-recipient':
      if (result.results.some((r) => r.kind === 'accepted')) return 'partial';
      if (result.held) return 'held';
      return result.results.some((r) => r.kind === 'deferred') ? 'deferred' : 'rejected';
  }
}

function logDelivery(log: Logger, msg: OutgoingMessage, result: DeliveryResult, relay: string): void {
  metrics.relay(relayResult(result), result.ms);
  const base = { id: msg.id, relay, ms: result.ms, recipients: msg.to.length };
  switch (result.kind) {
    case 'accepted':
      log.info('relay.done', {
        ...base,
        response: result.response,
        ...(result.downstreamId ? { downstreamId: result.downstreamId } : {}),
        ...(result.held ? { held: result.held } : {}),
      });
      return;
    case 'rejected':
    case 'deferred':
      log.warn('relay.failed', {
        ...base,
        result: result.kind,
        reply: formatReply(result.reply),
        ...detailOf(result.reply),
      });
      return;
    case 'per-recipient': {
      const accepted = result.results.filter((r) => r.kind === 'accepted').map((r) => r.to);
      const refused = result.results.flatMap((r) =>
        r.kind === 'accepted' ? [] : [{ to: r.to, result: r.kind, reply: formatReply(r.reply) }],
      );
      if (accepted.length > 0) log.info('relay.done', { ...base, accepted, refused });
      else log.warn('relay.failed', { ...base, result: 'per-recipient', refused });
      return;
    }
  }
}
