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
 * Recipients the downstream refuses while others are accepted (SMTP at RCPT, LMTP after the data):
 * the message goes to the accepted ones and the result is `per-recipient`; relay/recipient-split.ts
 * then holds a copy for the deferred ones and sends a DSN for the refused ones, and the client gets
 * 250 (docs/decisions.md "Per-recipient results"). All refused: the first 4xx if any (nothing was
 * delivered, a retry duplicates nothing), else the first 5xx.
 *
 * begin(): the before-queue proxy. At the client's first accepted RCPT a pooled session gets MAIL
 * FROM, and each accepted RCPT is asked of the downstream at once (relay/proxy-transaction.ts), so
 * the downstream's refusal reaches the client's RCPT. At most maxConnections (RelayConnections)
 * sessions are open; when all are held, begin() answers `busy` at once and the transaction goes on
 * without RCPT-time verdicts (delivered after its DATA, waiting up to timeoutMs for a session).
 *
 * Capabilities: SMTPUTF8, 8BITMIME and SIZE as the last session that was opened announced them
 * (refreshed at each new session); ready() makes the first connection (once) and resolves when
 * that attempt is over; the front end calls it before it listens.
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
import { type Reply } from '../reply/reply.js';
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
  leastFinal,
  perRecipientResult,
  noAnswer,
  resultFromReply,
  unavailable,
} from './relay-replies.js';
import { createProxyTransaction } from './proxy-transaction.js';
import type {
  BeginResult,
  DeliveryResult,
  DownstreamCapabilities,
  OutgoingMessage,
  Relay,
  TransactionEnvelope,
} from './types.js';
import { REPLIES } from '../reply/catalogue.js';

export interface SmtpRelayOptions {
  target: RelayTarget;
  clientName: string;
  timeoutMs: number;
  pool?: Partial<PoolLimits>;
  /** deliver over this open connection instead of connecting to target (ATRN); one session only */
  socket?: import('node:net').Socket;
}

/** Outcome of one try on one session, before it becomes a DeliveryResult. */
type Attempt = SendOutcome | { kind: 'smtputf8-unsupported' };

export function createSmtpRelay(options: SmtpRelayOptions): Relay {
  const lmtp = options.target.kind !== 'smtp';
  const endpoint: DownstreamEndpoint = options.socket
    ? {
        kind: 'socket',
        socket: options.socket,
        host: options.target.kind === 'lmtp-unix' ? 'localhost' : options.target.host,
        port: options.target.kind === 'lmtp-unix' ? 0 : options.target.port,
      }
    : options.target.kind === 'lmtp-unix'
      ? { kind: 'unix', path: options.target.path }
      : { kind: 'tcp', host: options.target.host, port: options.target.port };
  const name = endpoint.kind === 'unix' ? `unix:${endpoint.path}` : `${formatHost(endpoint.host)}:${endpoint.port}`;
  const limits = {
    ...DEFAULT_POOL_LIMITS,
    ...options.pool,
    // one given connection: kept for every message, never reopened
    ...(options.socket
      ? { maxConnections: 1, maxMessagesPerConnection: Number.MAX_SAFE_INTEGER, idleMs: 2 ** 31 - 1 }
      : {}),
  };
  let socketUsed = false;
  let caps: DownstreamCapabilities | null = null;
  const open = async (): Promise<Awaited<ReturnType<typeof openDownstream>>> => {
    if (endpoint.kind === 'socket' && socketUsed)
      return { kind: 'failed', failure: { kind: 'unreachable', reason: 'the ATRN connection was closed' } };
    socketUsed = true;
    const opened = await openDownstream({
      endpoint,
      lmtp,
      clientName: options.clientName,
      timeoutMs: options.timeoutMs,
    });
    if (opened.kind === 'open') {
      const c = opened.connection;
      caps = { smtputf8: c.supports('SMTPUTF8'), eightBitMime: c.supports('8BITMIME'), sizeLimit: c.sizeLimit };
    }
    return opened;
  };
  const pool = new ConnectionPool<DownstreamConnection, DownstreamFailure>(
    open,
    limits,
    { kind: 'unreachable', reason: 'relay is shutting down' },
    { kind: 'unreachable', reason: `all ${limits.maxConnections} connections busy for ${options.timeoutMs} ms` },
  );
  // learn the capabilities before the first client asks (the session stays in the pool): ready()
  // makes the first connection, once
  let readyPromise: Promise<void> | null = null;
  const ready = (): Promise<void> =>
    (readyPromise ??= pool.acquire({ fresh: false, waitMs: options.timeoutMs }).then((a) => {
      if (a.kind === 'open') pool.release(a.connection, true);
    }));

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
        // nothing was delivered: a temporary refusal first, so the client's retry can still reach everybody
        return (
          leastFinal(failure.refused.map((r) => downstreamFailureReply(r.response))) ?? localFailure('no recipient')
        );
      case 'too-big':
        return REPLIES.downstreamTooBig(name);
      case 'spool':
        return localFailure(`could not read the spooled message: ${failure.reason}`);
    }
  }

  function perRecipient(msg: OutgoingMessage, refused: RefusedRecipient[], ms: number): DeliveryResult {
    return perRecipientResult(msg.to, refused, ms);
  }

  function toResult(msg: OutgoingMessage, attempt: Attempt, ms: number): DeliveryResult {
    switch (attempt.kind) {
      case 'smtputf8-unsupported':
        return { kind: 'rejected', reply: REPLIES.downstreamNoSmtputf8(name), ms };
      case 'sent':
        if (attempt.refused.length > 0) return perRecipient(msg, attempt.refused, ms);
        return { kind: 'accepted', downstreamId: downstreamIdFrom(attempt.response), response: attempt.response, ms };
      case 'aborted':
        return resultFromReply(failureReply({ kind: 'recipients-refused', refused: attempt.refused }), ms);
      case 'failed':
        // every recipient refused: nothing was delivered (LMTP reports each, as RFC 2033 does)
        if (lmtp && attempt.failure.kind === 'recipients-refused')
          return perRecipient(msg, attempt.failure.refused, ms);
        return resultFromReply(failureReply(attempt.failure), ms);
    }
  }

  async function attemptOn(connection: DownstreamConnection, msg: OutgoingMessage): Promise<Attempt> {
    if (msg.smtputf8 && !connection.supports('SMTPUTF8') && (await messageNeedsSmtpUtf8(msg)))
      return { kind: 'smtputf8-unsupported' };
    return connection.send(
      { from: msg.from, to: msg.to, sizeBytes: outgoingSizeBytes(msg), eightBit: msg.eightBit, smtputf8: msg.smtputf8 },
      () => messageChunks(msg),
      // the accepted recipients get it; the refused ones are reported per recipient (see header)
      () => 'send',
      options.timeoutMs,
    );
  }

  /** put the session back: clean after success, RSET after a refusal, closed otherwise */
  async function releaseAfter(connection: DownstreamConnection, attempt: Attempt): Promise<void> {
    if (attempt.kind === 'sent' || attempt.kind === 'smtputf8-unsupported') return pool.release(connection, true);
    if (
      attempt.kind === 'failed' &&
      ['reply', 'recipients-refused', 'too-big'].includes(attempt.failure.kind) &&
      connection.alive
    ) {
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
      let acquired = await pool.acquire({ fresh: false, waitMs: options.timeoutMs });
      for (let tries = 1; ; tries++) {
        if (acquired.kind === 'failed') return resultFromReply(failureReply(acquired.failure), elapsed());
        const { connection, reused } = acquired;
        const attempt = await attemptOn(connection, msg);
        await releaseAfter(connection, attempt);
        if (tries === 1 && reused && isStaleSymptom(attempt)) {
          log.debug('relay.failed', { id: msg.id, stale: true, relay: describe(), retry: 'fresh connection' });
          acquired = await pool.acquire({ fresh: true, waitMs: options.timeoutMs });
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

  async function begin(envelope: TransactionEnvelope, log: Logger): Promise<BeginResult> {
    const acquired = await pool.tryAcquire();
    if (acquired.kind === 'busy') return { kind: 'busy' };
    if (acquired.kind === 'failed') return { kind: 'failed', reply: failureReply(acquired.failure) };
    return createProxyTransaction({
      connection: acquired.connection,
      reused: acquired.reused,
      envelope,
      lmtp,
      timeoutMs: options.timeoutMs,
      log,
      release: (c, reusable) => pool.release(c, reusable),
      failureReply,
      reopen: async () => {
        const again = await pool.acquire({ fresh: true, waitMs: options.timeoutMs });
        return again.kind === 'open' ? again.connection : again.failure;
      },
      redeliver: (msg) => deliver(msg, log),
      smtputf8Unsupported: (ms) => toResult({} as OutgoingMessage, { kind: 'smtputf8-unsupported' }, ms),
    });
  }

  return {
    deliver,
    begin,
    describe,
    close: () => pool.close(),
    capabilities: () => caps,
    ready,
  };
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
