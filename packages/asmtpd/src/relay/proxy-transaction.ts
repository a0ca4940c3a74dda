/**
 * relay/proxy-transaction — the downstream transaction opened alongside the client's (the design of
 * Postfix's before-queue proxy, smtpd_proxy_filter): one pooled session per client transaction.
 *
 *   createProxyTransaction(ctx) → BeginResult      MAIL FROM on the session ctx.connection
 *   tx.rcpt(to)                  RCPT TO now: null (accepted) or the downstream's refusal, for the client's RCPT
 *   tx.data(msg, clientGone)     DATA, the message, the final dot → DeliveryResult (or `abandoned`)
 *   tx.abort()                   RSET and give the session back (client RSET/QUIT/gone, body test refused)
 *
 * Rules:
 * - MAIL FROM carries SMTPUTF8, BODY=8BITMIME and SIZE only where the client used them and the
 *   downstream offers them. A reused session that turns out dead at MAIL is replaced once (stale).
 * - A session that breaks before DATA (the downstream timed out while the client was slow, a
 *   restart) detaches the transaction: the client's RCPT in progress gets the generic 4xx, and at
 *   the end the message goes out on a fresh session (`redeliver`, an ordinary delivery to the
 *   recipients accepted so far, whose per-recipient results relay/recipient-split.ts settles).
 *   Nothing was sent before the DATA, so this cannot duplicate anything.
 * - `clientGone` is asked after the last body byte and before the final dot: a client that went away
 *   makes us drop the session instead, and the downstream discards the message (no dot, no mail).
 *   After the dot only the downstream's reply is left: that window is the front end's to log.
 * - Never throws; every path gives the session back to the pool exactly once.
 */
import type { Logger } from '../log/logger.js';
import type { Reply } from '../reply/reply.js';
import { DownstreamConnection, type DownstreamFailure } from './downstream-connection.js';
import { messageChunks, messageNeedsSmtpUtf8 } from './message-body.js';
import {
  downstreamFailureReply,
  downstreamIdFrom,
  localFailure,
  perRecipientResult,
  resultFromReply,
} from './relay-replies.js';
import type { BeginResult, DeliveryResult, OutgoingMessage, RelayTransaction, TransactionEnvelope } from './types.js';

export interface ProxyContext {
  connection: DownstreamConnection;
  reused: boolean;
  envelope: TransactionEnvelope;
  lmtp: boolean;
  timeoutMs: number;
  log: Logger;
  release(connection: DownstreamConnection, reusable: boolean): void;
  failureReply(failure: DownstreamFailure): Reply;
  /** a fresh session (after a stale one), or why there is none */
  reopen(): Promise<DownstreamConnection | DownstreamFailure>;
  /** an ordinary delivery on a fresh session (the transaction's own session broke before DATA) */
  redeliver(msg: OutgoingMessage): Promise<DeliveryResult>;
  /** the 550 5.6.7 result for a message that needs SMTPUTF8 the downstream lacks */
  smtputf8Unsupported(ms: number): DeliveryResult;
}

function mailCommand(env: TransactionEnvelope, c: DownstreamConnection): string {
  const params: string[] = [];
  if (env.smtputf8 && c.supports('SMTPUTF8')) params.push('SMTPUTF8');
  if (env.eightBit && c.supports('8BITMIME')) params.push('BODY=8BITMIME');
  if (env.size !== undefined && env.size > 0 && c.supports('SIZE')) params.push(`SIZE=${env.size}`);
  return `MAIL FROM:<${env.from}>${params.length ? ' ' + params.join(' ') : ''}`;
}

export async function createProxyTransaction(ctx: ProxyContext): Promise<BeginResult> {
  let connection = ctx.connection;
  let mail = await connection.command(mailCommand(ctx.envelope, connection));
  const stale = mail.kind === 'failed' || /^421/.test(mail.line);
  if (ctx.reused && stale) {
    ctx.log.debug('relay.failed', { id: ctx.envelope.id, stale: true, stage: 'MAIL', retry: 'fresh connection' });
    connection.destroy();
    ctx.release(connection, false);
    const fresh = await ctx.reopen();
    if (!(fresh instanceof DownstreamConnection)) return { kind: 'failed', reply: ctx.failureReply(fresh) };
    connection = fresh;
    mail = await connection.command(mailCommand(ctx.envelope, connection));
  }
  if (mail.kind === 'failed') {
    connection.destroy();
    ctx.release(connection, false);
    return { kind: 'failed', reply: ctx.failureReply(mail.failure) };
  }
  if (!/^2/.test(mail.line)) {
    const refusal = downstreamFailureReply(mail.line);
    ctx.release(connection, await connection.reset());
    return { kind: 'failed', reply: refusal };
  }
  return { kind: 'open', tx: new ProxyTransaction(ctx, connection) };
}

class ProxyTransaction implements RelayTransaction {
  /** the session, until it is given back (or lost: detached) */
  private held: DownstreamConnection | null;
  private readonly accepted: string[] = [];
  private detachedBy: Reply | null = null;

  constructor(
    private readonly ctx: ProxyContext,
    connection: DownstreamConnection,
  ) {
    this.held = connection;
  }

  async rcpt(to: string): Promise<Reply | null> {
    if (!this.held) return this.detachedBy ?? localFailure('downstream transaction already ended');
    const r = await this.held.command(`RCPT TO:<${to}>`);
    if (r.kind === 'failed') {
      this.detach(this.ctx.failureReply(r.failure));
      return this.detachedBy;
    }
    if (/^2/.test(r.line)) {
      if (!this.accepted.includes(to)) this.accepted.push(to);
      return null;
    }
    return downstreamFailureReply(r.line);
  }

  async data(msg: OutgoingMessage, clientGone: () => boolean): Promise<DeliveryResult | { kind: 'abandoned' }> {
    const started = Date.now();
    const ms = (): number => Date.now() - started;
    const connection = this.held;
    if (!connection || !connection.alive) {
      // the session broke while the client was busy: nothing was sent, so a fresh delivery is safe
      if (connection) this.giveBack(false);
      if (clientGone()) return { kind: 'abandoned' };
      return this.ctx.redeliver(msg);
    }
    if (msg.smtputf8 && !connection.supports('SMTPUTF8') && (await messageNeedsSmtpUtf8(msg))) {
      await this.reset();
      return this.ctx.smtputf8Unsupported(ms());
    }
    const outcome = await connection.data(
      () => messageChunks(msg),
      [...this.accepted],
      () => !clientGone(),
      this.ctx.timeoutMs,
    );
    switch (outcome.kind) {
      case 'aborted':
        this.giveBack(false);
        return { kind: 'abandoned' };
      case 'refused':
        await this.reset();
        return resultFromReply(downstreamFailureReply(outcome.line), ms());
      case 'failed': {
        this.giveBack(false);
        if (!outcome.bodyStarted && outcome.failure.kind !== 'timeout') {
          if (clientGone()) return { kind: 'abandoned' };
          return this.ctx.redeliver(msg);
        }
        // after the first body byte: never again by ourselves (the downstream may have it)
        return resultFromReply(this.ctx.failureReply(outcome.failure), ms());
      }
      case 'replied': {
        this.giveBack(true);
        if (outcome.refused.length > 0) return perRecipientResult(msg.to, outcome.refused, ms());
        if (/^2/.test(outcome.line))
          return { kind: 'accepted', downstreamId: downstreamIdFrom(outcome.line), response: outcome.line, ms: ms() };
        return resultFromReply(downstreamFailureReply(outcome.line), ms());
      }
    }
  }

  abort(): void {
    void this.reset();
  }

  private async reset(): Promise<void> {
    const connection = this.held;
    if (!connection) return;
    this.held = null;
    this.ctx.release(connection, connection.alive ? await connection.reset() : false);
  }

  private giveBack(reusable: boolean): void {
    const connection = this.held;
    if (!connection) return;
    this.held = null;
    if (!reusable) connection.destroy();
    this.ctx.release(connection, reusable && connection.alive);
  }

  private detach(reply: Reply): void {
    this.detachedBy = reply;
    this.giveBack(false);
  }
}
