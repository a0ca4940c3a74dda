/**
 * data.ts — DATA: the message is spooled to DBDir/spool/<id> with every byte checked (spool.ts);
 * then the trace fields are prepended (trace-fields.ts), a body test runs if the recipients' policy
 * asked for one, and the message goes to the downstream transaction (or, without one, the relay
 * delivers it). 250 is sent only after the downstream accepted (or the hold queue fsynced it;
 * mixed per-recipient results: relay/recipient-split.ts). Anything else: the downstream's reply as
 * is, or a 4xx; the spool file is always removed. A client that is gone before the final dot went
 * downstream abandons the message there (data.abandoned); one that is gone when the downstream's
 * verdict arrives is counted (data.unanswered).
 *
 *   onData(deps, stream, session, cb)      logs data.decision (and data.rejected, bodytest.done…)
 *   replyForDelivery(result, id) -> Reply
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { REPLIES, ReplyAsError } from '../../reply/catalogue.js';
import { formatReply, plainReply, type Reply } from '../../reply/reply.js';
import { bodyTestVerdict, type BodyGroup, type BodyVerdict } from '../../policy/body-test.js';
import type { DeliveryResult, OutgoingMessage } from '../../relay/types.js';
import { spoolMessage, discard } from '../spool.js';
import { sendReply } from '../boundary.js';
import type { Transaction } from '../session.js';
import type { Runtime } from '../runtime.js';
import { abortDownstream, deliverMessage } from '../downstream.js';
import { traceFields } from '../trace-fields.js';
import type { Callback, CommandDeps } from './context.js';
import { metrics, type MessageOutcome } from '../../metrics/metrics.js';

export function onData(d: CommandDeps, stream: SMTPServerDataStream, session: SMTPServerSession, cb: Callback): void {
  const s = d.sessionOf(session);
  const st = d.connOf(session);
  const tx = s?.tx;
  if (!s || !tx || !st) {
    stream.resume();
    return cb(new ReplyAsError(REPLIES.localError()));
  }
  const rt = d.runtime();
  const cfg = rt.config;
  const started = Date.now();
  const path = join(cfg.dbDir, 'spool', tx.id);
  const finish = (r: Reply, fields: Record<string, unknown> = {}): void => {
    s.tx = null;
    // whatever did not reach the downstream's final dot is dropped there (RSET)
    abortDownstream(tx);
    metrics.message(messageOutcome(r, fields));
    tx.log.info('data.decision', {
      reply: formatReply(r),
      rcpts: tx.rcpts.length,
      ms: Date.now() - started,
      ...fields,
    });
    if (r.code >= 400) cb(new ReplyAsError(r));
    else cb(null, `${r.enhanced} ${r.text}`);
  };
  spoolMessage(stream as unknown as Readable, {
    path,
    maxBytes: cfg.maxMsgSizeBytes,
    bareLineEndings: cfg.bareLineEndings,
    onOversize(size) {
      // Answer now, before the client has sent the rest, and close (RFC 5321 §4.5.3.1.7 allows
      // no later reply on this connection that the client would still be waiting for).
      const r = REPLIES.messageTooBig(cfg.maxMsgSizeBytes);
      metrics.message('rejected');
      tx.log.warn('data.rejected', { reason: 'oversize', size, reply: formatReply(r) });
      st.closing = true;
      d.clearDeadline(st);
      sendReply(st.conn, r);
      st.conn.close();
      (stream as unknown as Readable).destroy();
    },
  })
    .then(async (result) => {
      d.clearDeadline(st);
      switch (result.kind) {
        case 'oversize':
        case 'aborted':
          abortDownstream(tx);
          s.tx = null;
          return;
        case 'bare-line-ending':
          tx.log.warn('data.rejected', { reason: 'bare CR or LF' });
          return finish(REPLIES.bareLineEnding());
        case 'nul':
          tx.log.warn('data.rejected', { reason: 'NUL byte' });
          return finish(REPLIES.nulInData());
        case 'write-error':
          tx.log.error('data.rejected', { reason: 'spool write failed', error: result.error.message });
          return finish(REPLIES.spoolFailed());
        case 'ok':
          break;
      }
      try {
        const headerPrefix = Buffer.from(
          traceFields(d.version, rt, s, tx, tx.rcpts.length === 1 ? tx.rcpts[0]!.address : null),
        );
        if (tx.group) {
          const verdict = await runBodyTest(rt, tx.group, headerPrefix, result.path);
          tx.log.info('bodytest.done', {
            user: tx.group.account.name,
            argv: tx.group.argv,
            verdict: verdict.kind,
            ...(verdict.kind === 'refuse' ? { detail: verdict.detail, reply: formatReply(verdict.reply) } : {}),
          });
          if (verdict.kind === 'refuse') return finish(verdict.reply, { size: result.size, bodytest: 'refuse' });
          if (verdict.kind === 'discard') {
            tx.log.info('data.discarded', { size: result.size, rcpts: tx.rcpts.map((r) => r.address) });
            return finish(REPLIES.accepted(tx.id), { size: result.size, bodytest: 'discard' });
          }
        }
        const msg: OutgoingMessage = {
          id: tx.id,
          from: tx.from,
          to: tx.rcpts.map((r) => r.address),
          smtputf8: tx.smtputf8,
          eightBit: tx.eightBit,
          headerPrefix,
          spoolPath: result.path,
          size: result.size,
        };
        const delivery = await deliverMessage(rt, tx, msg, () => st.gone);
        if (delivery.kind === 'abandoned') {
          tx.log.info('data.abandoned', { size: result.size, rcpts: tx.rcpts.length });
          return finish(REPLIES.localError(), { size: result.size, relay: 'abandoned' });
        }
        const r = replyForDelivery(delivery, tx.id);
        if (r.code < 400) {
          s.counts.messages++;
          rt.abuse.seen(s.client.ip, 'message');
        }
        if (st.gone) noteUnanswered(tx, r);
        finish(r, { size: result.size, relay: delivery.kind });
      } finally {
        await discard(result.path);
      }
    })
    .catch((err: Error) => {
      tx.log.error('session.error', { error: err.message, stack: err.stack });
      finish(REPLIES.localError());
    });
}

/**
 * The body test reads the message as it will be relayed: added fields, then the spool. The runner
 * opens SPOOL/ID.full itself (by name in the directory it opened at start) and runs the command
 * its token stands for.
 */
async function runBodyTest(
  rt: Runtime,
  group: BodyGroup,
  headerPrefix: Buffer,
  spoolPath: string,
): Promise<BodyVerdict> {
  const full = `${spoolPath}.full`;
  try {
    await writeFile(full, headerPrefix, { mode: 0o600 });
    await pipeline(createReadStream(spoolPath), createWriteStream(full, { flags: 'a' }));
    const result = await rt.run({
      kind: 'bodytest',
      token: group.token,
      spool: basename(full),
      timeoutMs: rt.config.avengerTimeoutMs,
    });
    return bodyTestVerdict(result);
  } finally {
    await discard(full);
  }
}

function messageOutcome(r: Reply, fields: Record<string, unknown>): MessageOutcome {
  if (fields.bodytest === 'discard') return 'discarded';
  if (fields.relay === 'abandoned') return 'abandoned';
  return r.code < 400 ? 'accepted' : r.code < 500 ? 'deferred' : 'rejected';
}

/** Downstream verdicts the client never heard (gone before our reply), since the daemon started. */
let unanswered = 0;
function noteUnanswered(tx: Transaction, r: Reply): void {
  unanswered++;
  tx.log.warn('data.unanswered', { reply: formatReply(r), count: unanswered });
}

/**
 * One reply for the whole transaction (spec §6): accepted → 250; refused → the downstream's own
 * reply (a canned failure of ours: its generic text, the detail is in the log). A per-recipient
 * result still here had no recipient delivered and none held (recipient-split.ts settles the
 * others): the first 4xx, so a retry can reach the deferred ones and duplicates nothing, else the
 * first 5xx.
 */
export function replyForDelivery(dr: DeliveryResult, id: string): Reply {
  switch (dr.kind) {
    case 'accepted':
      return REPLIES.accepted(id);
    case 'rejected':
    case 'deferred':
      return plainReply(dr.reply);
    case 'per-recipient': {
      const failed = dr.results.filter((r): r is Extract<typeof r, { reply: Reply }> => r.kind !== 'accepted');
      if (failed.length === 0) return REPLIES.accepted(id);
      return plainReply(failed.find((f) => f.kind === 'deferred')?.reply ?? failed[0]!.reply);
    }
  }
}
