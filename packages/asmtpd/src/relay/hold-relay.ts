/**
 * relay/hold-relay — the hold queue as a Relay, and the HoldOnFailure wrapper.
 *
 * Public:
 *   createHoldQueueRelay({ dir, hostname }) → Relay
 *       the embedded default when neither RelayHost nor Sendmail is set: every message is written
 *       to the Maildir (hold-queue.ts) and `accepted` with held: path once fsynced.
 *   withHoldOnFailure(inner, { dir, hostname }) → Relay          (HoldOnFailure yes)
 *       a `deferred` from the downstream puts the message in the hold queue and answers
 *       `accepted` (held: path); a `per-recipient` result was already settled by
 *       recipient-split.ts (which holds the deferred recipients' copy). `rejected` passes through
 *       (a permanent refusal is not ours to keep). If the hold queue cannot be written, the
 *       downstream's own deferral is returned (the client retries).
 *
 * Logs `queue.held` (id, ok: true, path, recipients, reason) for every message written, and
 * `queue.held` (id, ok: false, dir, error) at level error when the write failed; never message content.
 */
import type { Logger } from '../log/logger.js';
import type { Reply } from '../reply/reply.js';
import { formatReply } from '../reply/reply.js';
import { writeHeld } from './hold-queue.js';
import { replyForLog } from './relay-replies.js';
import { passOn } from './relay-wrap.js';
import type { DeliveryResult, OutgoingMessage, Relay } from './types.js';

export interface HoldQueueOptions {
  /** the Maildir (config.holdQueue) */
  dir: string;
  /** for Maildir file names (config.hostname) */
  hostname: string;
}

async function hold(
  opts: HoldQueueOptions,
  msg: OutgoingMessage,
  log: Logger,
  reason?: Reply,
): Promise<{ kind: 'held'; path: string } | { kind: 'failed'; reply: Reply }> {
  const written = await writeHeld(opts.dir, msg, { hostname: opts.hostname, ...(reason ? { reason } : {}) });
  if (written.kind === 'held') {
    log.info('queue.held', {
      id: msg.id,
      ok: true,
      path: written.path,
      recipients: msg.to.length,
      ...(reason ? { reason: replyForLog(reason) } : {}),
    });
  } else {
    log.error('queue.held', { id: msg.id, ok: false, dir: opts.dir, error: replyForLog(written.reply) });
  }
  return written;
}

export function createHoldQueueRelay(opts: HoldQueueOptions): Relay {
  return {
    async deliver(msg, log) {
      const startedMs = Date.now();
      const written = await hold(opts, msg, log);
      const ms = Date.now() - startedMs;
      if (written.kind === 'failed') return { kind: 'deferred', reply: written.reply, ms };
      return { kind: 'accepted', response: 'held in the hold queue', held: written.path, ms };
    },
    close: async () => {},
    describe: () => `hold queue ${opts.dir}`,
  };
}

export function withHoldOnFailure(inner: Relay, opts: HoldQueueOptions): Relay {
  async function holdIfDeferred(
    msg: OutgoingMessage,
    result: DeliveryResult,
    log: Logger,
    startedMs: number,
  ): Promise<DeliveryResult> {
    if (result.kind !== 'deferred') return result;
    const written = await hold(opts, msg, log, result.reply);
    if (written.kind === 'failed') return result;
    return {
      kind: 'accepted',
      response: `held in the hold queue after: ${formatReply(result.reply)}`,
      held: written.path,
      ms: Date.now() - startedMs,
    };
  }
  return {
    async deliver(msg, log) {
      const startedMs = Date.now();
      return holdIfDeferred(msg, await inner.deliver(msg, log), log, startedMs);
    },
    ...passOn(inner, holdIfDeferred),
    close: () => inner.close(),
    describe: () => `${inner.describe()}, hold on failure in ${opts.dir}`,
  };
}
