/**
 * relay/smtp-relay — deliver to the downstream MTA over SMTP (RelayHost host:port) or LMTP
 * (RelayHost lmtp:host:port or unix:/path), over pooled sessions.
 *
 * Public:
 *   createSmtpRelay(options) → Relay      options: target (RelayTarget), clientName (EHLO/LHLO name),
 *                                          timeoutMs, pool limits (DEFAULT_POOL_LIMITS)
 *
 * RFCs: 5321, 2033 (LMTP), 2920, 6152, 6531, 1870, 3463 (enhanced status codes).
 *
 * What the client gets (DeliveryResult):
 * - accepted      only after the downstream's 2xx to the end of data (LMTP: every recipient 2xx).
 * - rejected      the downstream's 5xx to MAIL, RCPT, DATA or the end of data, as is (an enhanced
 *                 status of the right class is supplied when it gave none). A message that needs
 *                 SMTPUTF8 for a downstream without it: 550 5.6.7 (RFC 6531 §3.4). Bigger than the
 *                 downstream's SIZE: 552 5.3.4.
 * - deferred      its 4xx as is; cannot connect / no greeting / timeout: 451 4.4.1; connection
 *                 broken after it was set up: 451 4.4.2; spool unreadable: 451 4.3.0.
 * - per-recipient LMTP, when the recipients did not all succeed (RCPT refusals and the per-recipient
 *                 replies after the data, RFC 2033 §4.2). All accepted → `accepted`.
 *
 * Policy when an SMTP downstream refuses SOME recipients and accepts others: the front end answers
 * the whole transaction with one reply (spec §6), so delivering to the accepted ones would either
 * lose the refused ones (if we answered 250) or duplicate the accepted ones (if we answered 4xx and
 * the client retried everybody) or bounce mail already delivered (5xx). So nothing is delivered:
 * the transaction is aborted before the first body byte (the connection is dropped in the DATA
 * phase, which makes the downstream discard it) and the client gets the most severe refusal — a 5xx
 * if any recipient was refused permanently, else the 4xx. No loss, no duplicate; the client
 * bounces or retries the whole message. All recipients refused: the same rule.
 *
 * Stale sessions: a pooled session that fails before any body byte was sent with a broken
 * connection (or a 421) is retried once on a fresh session; after the first body byte there is no
 * retry, since the downstream may have taken the message (a 4xx then risks a duplicate, never a loss).
 *
 * 8-bit: BODY=8BITMIME is passed when the client declared it and the downstream supports it; a
 * downstream without 8BITMIME gets the bytes as they are (no MIME downgrade: byte-identical relay).
 */
import type { RelayTarget } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { reply, type Reply } from '../smtp/reply.js';
import { ConnectionPool, DEFAULT_POOL_LIMITS, type PoolLimits } from './connection-pool.js';
import {
  openDownstream,
  type DownstreamConnection,
  type DownstreamEndpoint,
  type DownstreamFailure,
  type RefusedRecipient,
  type SendOutcome,
} from './downstream-connection.js';
import { messageChunks, messageNeedsSmtpUtf8, outgoingSizeBytes } from './message-body.js';
import {
  connectionLost,
  downstreamFailureReply,
  downstreamIdFrom,
  localFailure,
  mostSevere,
  noAnswer,
  resultFromReply,
  unavailable,
} from './relay-replies.js';
import type { DeliveryResult, OutgoingMessage, RecipientResult, Relay } from './types.js';

export interface SmtpRelayOptions {
  target: RelayTarget;
  clientName: string;
  timeoutMs: number;
  pool?: Partial<PoolLimits>;
}

/** Outcome of one try on one session, before it becomes a DeliveryResult. */
type Attempt = SendOutcome | { kind: 'smtputf8-unsupported' };

export function createSmtpRelay(options: SmtpRelayOptions): Relay {
  const lmtp = options.target.kind !== 'smtp';
  const endpoint: DownstreamEndpoint =
    options.target.kind === 'lmtp-unix' ? { kind: 'unix', path: options.target.path } : { kind: 'tcp', host: options.target.host, port: options.target.port };
  const name = endpoint.kind === 'unix' ? `unix:${endpoint.path}` : `${formatHost(endpoint.host)}:${endpoint.port}`;
  const limits = { ...DEFAULT_POOL_LIMITS, ...options.pool };
  const pool = new ConnectionPool<DownstreamConnection, DownstreamFailure>(
    () => openDownstream({ endpoint, lmtp, clientName: options.clientName, timeoutMs: options.timeoutMs }),
    limits,
    { kind: 'unreachable', reason: 'relay is shutting down' },
  );

  function failureReply(failure: DownstreamFailure): Reply {
    switch (failure.kind) {
      case 'unreachable':
        return unavailable(name, failure.reason);
      case 'timeout':
        return noAnswer(name, options.timeoutMs);
      case 'lost':
        return connectionLost(name, failure.reason);
      case 'session-refused': {
        const r = downstreamFailureReply(failure.response);
        return r.code < 500 ? r : unavailable(name, `refused the session: ${failure.response.split('\n')[0]}`);
      }
      case 'reply':
        return downstreamFailureReply(failure.response);
      case 'recipients-refused':
        return mostSevere(failure.refused.map((r) => downstreamFailureReply(r.response))) ?? localFailure('no recipient');
      case 'too-big':
        return reply(552, '5.3.4', `message size exceeds the limit of downstream ${name}`);
      case 'spool':
        return localFailure(`could not read the spooled message: ${failure.reason}`);
    }
  }

  function perRecipient(msg: OutgoingMessage, refused: RefusedRecipient[], ms: number): DeliveryResult {
    const results: RecipientResult[] = msg.to.map((to) => {
      const hit = refused.find((r) => r.to === to);
      if (!hit) return { to, kind: 'accepted' };
      const r = downstreamFailureReply(hit.response);
      return { to, kind: r.code >= 500 ? 'rejected' : 'deferred', reply: r };
    });
    return { kind: 'per-recipient', results, ms };
  }

  function toResult(msg: OutgoingMessage, attempt: Attempt, ms: number): DeliveryResult {
    switch (attempt.kind) {
      case 'smtputf8-unsupported':
        return { kind: 'rejected', reply: reply(550, '5.6.7', `downstream ${name} does not support SMTPUTF8, which this message needs (RFC 6531)`), ms };
      case 'sent':
        if (lmtp && attempt.refused.length > 0) return perRecipient(msg, attempt.refused, ms);
        return { kind: 'accepted', downstreamId: downstreamIdFrom(attempt.response), response: attempt.response, ms };
      case 'aborted':
        return resultFromReply(failureReply({ kind: 'recipients-refused', refused: attempt.refused }), ms);
      case 'failed':
        if (lmtp && attempt.failure.kind === 'recipients-refused') return perRecipient(msg, attempt.failure.refused, ms);
        return resultFromReply(failureReply(attempt.failure), ms);
    }
  }

  async function attemptOn(connection: DownstreamConnection, msg: OutgoingMessage): Promise<Attempt> {
    if (msg.smtputf8 && !connection.supports('SMTPUTF8') && (await messageNeedsSmtpUtf8(msg))) return { kind: 'smtputf8-unsupported' };
    return connection.send(
      { from: msg.from, to: msg.to, sizeBytes: outgoingSizeBytes(msg), eightBit: msg.eightBit, smtputf8: msg.smtputf8 },
      () => messageChunks(msg),
      // SMTP: one refused recipient aborts the whole transaction (see header); LMTP reports each
      (view) => (!lmtp && view.refused.length > 0 ? 'abort' : 'send'),
      options.timeoutMs,
    );
  }

  /** put the session back: clean after success, RSET after a refusal, closed otherwise */
  async function releaseAfter(connection: DownstreamConnection, attempt: Attempt): Promise<void> {
    if (attempt.kind === 'sent' || attempt.kind === 'smtputf8-unsupported') return pool.release(connection, true);
    if (attempt.kind === 'failed' && ['reply', 'recipients-refused', 'too-big'].includes(attempt.failure.kind) && connection.alive) {
      return pool.release(connection, await connection.reset());
    }
    connection.destroy();
    pool.release(connection, false);
  }

  function isStaleSymptom(attempt: Attempt): boolean {
    if (attempt.kind !== 'failed' || attempt.bodyStarted) return false;
    const f = attempt.failure;
    return f.kind === 'lost' || (f.kind === 'reply' && f.response.startsWith('421'));
  }

  async function deliver(msg: OutgoingMessage, log: Logger): Promise<DeliveryResult> {
    const startedMs = Date.now();
    const elapsed = (): number => Date.now() - startedMs;
    try {
      let acquired = await pool.acquire({ fresh: false });
      for (let tries = 1; ; tries++) {
        if (acquired.kind === 'failed') return resultFromReply(failureReply(acquired.failure), elapsed());
        const { connection, reused } = acquired;
        const attempt = await attemptOn(connection, msg);
        await releaseAfter(connection, attempt);
        if (tries === 1 && reused && isStaleSymptom(attempt)) {
          log.debug('relay.failed', { id: msg.id, stale: true, relay: describe(), retry: 'fresh connection' });
          acquired = await pool.acquire({ fresh: true });
          continue;
        }
        return toResult(msg, attempt, elapsed());
      }
    } catch (err) {
      return { kind: 'deferred', reply: localFailure(`relay error: ${(err as Error).message}`), ms: elapsed() };
    }
  }

  function describe(): string {
    return `${lmtp ? 'lmtp' : 'smtp'} ${name} (pooled)`;
  }

  return { deliver, close: () => pool.close(), describe };
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
