/**
 * relay/recipient-split — settling a message whose recipients got different answers downstream,
 * so that the client can be told one thing without a duplicate or a false bounce.
 *
 *   withRecipientSplit(inner, options) → Relay      (wraps deliver() and begin()'s data())
 *
 * A `per-recipient` result (LMTP after the data; SMTP RCPT refusals at delivery time) with at
 * least one recipient accepted — or, with HoldOnFailure, at least one deferred — becomes
 * `accepted` (the client gets 250 and will not send it again):
 *   - deferred recipients: one copy for them in the hold queue (hold-queue.ts, fsynced before the
 *     250), with the downstream's reply as the held reason. Its retries come with the hold-queue
 *     flush work.
 *   - refused recipients: a DSN (message/dsn.ts) from <> to the sender, delivered through the
 *     inner relay; a DSN the downstream does not take is put in the hold queue. None for a null
 *     sender. If the copy for the deferred ones cannot be written (disk full), they are reported
 *     in the DSN too: better a bounce than a silent loss or a duplicate for the others.
 * Nothing accepted and nothing to hold: the result passes through (the front end answers the first
 * 4xx, else the first 5xx: nothing was delivered, so a retry duplicates nothing).
 *
 * Logs: queue.held (as hold-relay.ts), dsn.sent (id, to, recipients, result: delivered / held / failed).
 */
import { randomBytes } from 'node:crypto';
import { unlink, writeFile } from 'node:fs/promises';
import type { Logger } from '../log/logger.js';
import { formatReply } from '../reply/reply.js';
import { buildDsn, originalHeaderLines, type FailedRecipient } from '../message/dsn.js';
import { writeHeld } from './hold-queue.js';
import { messageChunks } from './message-body.js';
import { replyForLog } from './relay-replies.js';
import { passOn } from './relay-wrap.js';
import type { DeliveryResult, OutgoingMessage, RecipientResult, Relay } from './types.js';

export interface RecipientSplitOptions {
  /** hold queue Maildir (config.holdQueue) */
  dir: string;
  /** our host name (Maildir names, DSN Reporting-MTA) */
  hostname: string;
  /** HoldOnFailure: hold the deferred recipients even when no recipient was accepted */
  holdOnFailure: boolean;
}

type Settled = DeliveryResult;

/** a queue id for the DSN (same form as the front end's) */
function newDsnId(): string {
  return Date.now().toString(36).toUpperCase() + randomBytes(4).toString('hex').toUpperCase();
}

export function withRecipientSplit(inner: Relay, opts: RecipientSplitOptions): Relay {
  const remote = inner.describe();

  async function settle(msg: OutgoingMessage, result: DeliveryResult, log: Logger): Promise<Settled> {
    if (result.kind !== 'per-recipient') return result;
    const accepted = result.results.filter((r) => r.kind === 'accepted');
    type Refused = Extract<RecipientResult, { reply: unknown }>;
    const deferred = result.results.filter((r): r is Refused => r.kind === 'deferred');
    const rejected = result.results.filter((r): r is Refused => r.kind === 'rejected');
    if (accepted.length === 0 && !(opts.holdOnFailure && deferred.length > 0)) return result;
    const started = Date.now();
    const failed: FailedRecipient[] = rejected.map((r) => ({ to: r.to, ...r.reply }));
    let held: string | undefined;
    if (deferred.length > 0) {
      const written = await writeHeld(
        opts.dir,
        { ...msg, to: deferred.map((r) => r.to) },
        { hostname: opts.hostname, reason: deferred[0]!.reply },
      );
      if (written.kind === 'held') {
        held = written.path;
        log.info('queue.held', {
          id: msg.id,
          ok: true,
          path: written.path,
          recipients: deferred.length,
          reason: replyForLog(deferred[0]!.reply),
        });
      } else {
        log.error('queue.held', { id: msg.id, ok: false, dir: opts.dir, error: replyForLog(written.reply) });
        failed.push(...deferred.map((r) => ({ to: r.to, ...r.reply })));
      }
    }
    const dsn = failed.length > 0 ? await sendDsn(msg, failed, log) : undefined;
    const parts = [
      `${accepted.length} delivered`,
      ...(held ? [`${deferred.length} held after ${formatReply(deferred[0]!.reply)}`] : []),
      ...(failed.length > 0 ? [`${failed.length} refused (DSN ${dsn ?? 'not sent'})`] : []),
    ];
    return {
      ...result,
      kind: 'accepted',
      response: parts.join(', '),
      ms: result.ms + Date.now() - started,
      ...(held ? { held } : {}),
    } as DeliveryResult;
  }

  async function sendDsn(msg: OutgoingMessage, failed: FailedRecipient[], log: Logger): Promise<string> {
    if (msg.from === '') {
      log.info('dsn.sent', {
        id: msg.id,
        to: '<>',
        recipients: failed.map((f) => f.to),
        result: 'none for a null sender',
      });
      return 'none: null sender';
    }
    const dsnId = newDsnId();
    try {
      const body = buildDsn({
        hostname: opts.hostname,
        sender: msg.from,
        queueId: msg.id,
        arrival: new Date(),
        remoteMta: remote,
        failed,
        originalHeaders: await originalHeaderLines(messageChunks(msg)),
        smtputf8: msg.smtputf8,
      });
      const spoolPath = `${msg.spoolPath}.dsn`;
      await writeFile(spoolPath, body, { mode: 0o600 });
      try {
        const dsnMsg: OutgoingMessage = {
          id: dsnId,
          from: '',
          to: [msg.from],
          smtputf8: msg.smtputf8,
          eightBit: body.some((b) => b > 0x7f),
          headerPrefix: Buffer.alloc(0),
          spoolPath,
          size: body.length,
        };
        const sent = await inner.deliver(dsnMsg, log);
        if (sent.kind === 'accepted') {
          log.info('dsn.sent', {
            id: msg.id,
            dsn_id: dsnId,
            to: msg.from,
            recipients: failed.map((f) => f.to),
            result: 'delivered',
            response: sent.response,
          });
          return `${dsnId} sent`;
        }
        const written = await writeHeld(opts.dir, dsnMsg, {
          hostname: opts.hostname,
          ...(sent.kind !== 'per-recipient' ? { reason: sent.reply } : {}),
        });
        const ok = written.kind === 'held';
        log[ok ? 'info' : 'error']('dsn.sent', {
          id: msg.id,
          dsn_id: dsnId,
          to: msg.from,
          recipients: failed.map((f) => f.to),
          result: ok ? 'held' : 'failed',
          ...(ok ? { path: written.path } : { error: replyForLog(written.reply) }),
        });
        return ok ? `${dsnId} held` : `${dsnId} lost`;
      } finally {
        await unlink(spoolPath).catch(() => {});
      }
    } catch (err) {
      log.error('dsn.sent', {
        id: msg.id,
        dsn_id: dsnId,
        to: msg.from,
        result: 'failed',
        error: (err as Error).message,
      });
      return `${dsnId} failed`;
    }
  }

  return {
    async deliver(msg, log) {
      return settle(msg, await inner.deliver(msg, log), log);
    },
    ...passOn(inner, (msg, r, log) => settle(msg, r, log)),
    close: () => inner.close(),
    describe: () => remote,
  };
}
