/**
 * transaction.ts — MAIL, RCPT and DATA: facts → policy → reply → relay for one message.
 *
 *   onMailFrom / onRcptTo / onData — smtp-server hooks; each answers through its callback with a
 *   Reply value (ReplyAsError) and logs one decision line (mail.decision, rcpt.decision,
 *   data.decision).
 *
 * DATA: the message is spooled to DBDir/spool/<id> with every byte checked (spool.ts); then the
 * Received and X-Avenger fields are prepended and the relay delivers it. 250 is sent only after
 * the relay reports the downstream accepted (or the hold queue fsynced it). Anything else: the
 * downstream's 5xx as is, or a 4xx; the spool file is always removed.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { SMTPServerAddress, SMTPServerSession, SMTPServerDataStream } from 'smtp-server';
import { REPLIES, ReplyAsError } from './replies.js';
import { formatReply, type Reply } from './reply.js';
import { spoolMessage, discard } from './spool.js';
import { sendReply } from './boundary.js';
import type { ConnState } from './connections.js';
import type { Session } from './session.js';
import { routeRecipient, type Route } from '../recipients/route.js';
import { receivedHeader } from '../message/received.js';
import { xAvengerHeader } from '../message/x-avenger.js';
import type { Runtime } from '../daemon/runtime.js';
import type { DeliveryResult } from '../relay/types.js';

export interface TransactionDeps {
  runtime(): Runtime;
  version: string;
  sessionOf(s: SMTPServerSession): Session | null;
  connOf(s: SMTPServerSession): ConnState | null;
  clearDeadline(st: ConnState): void;
}

type Callback = (err?: Error | null, message?: string) => void;

/** Queue ids: 12 upper-case hex digits after a time prefix, unique and sortable enough. */
export function newQueueId(): string {
  return Date.now().toString(36).toUpperCase() + randomBytes(4).toString('hex').toUpperCase();
}

function heloOf(session: SMTPServerSession, s: Session): void {
  const helo = (session as { hostNameAppearsAs?: string | false }).hostNameAppearsAs;
  s.helo = helo ? helo : null;
  s.proto = session.openingCommand === 'HELO' ? 'SMTP' : 'ESMTP';
}

export function onMailFrom(d: TransactionDeps, address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void {
  const s = d.sessionOf(session);
  if (!s) return cb(new ReplyAsError(REPLIES.localError()));
  heloOf(session, s);
  const args = (address.args || {}) as Record<string, string | true>;
  const id = newQueueId();
  s.tx = {
    id,
    from: address.address,
    smtputf8: args.SMTPUTF8 === true,
    eightBit: typeof args.BODY === 'string' && args.BODY.toUpperCase() === '8BITMIME',
    rcpts: [],
    log: s.log.child({ tid: id }),
  };
  const r = REPLIES.senderOk();
  s.tx.log.info('mail.decision', { from: address.address, helo: s.helo, reply: formatReply(r) });
  succeed(d, session, r, cb);
}

export function onRcptTo(d: TransactionDeps, address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void {
  const s = d.sessionOf(session);
  const tx = s?.tx;
  if (!s || !tx) return cb(new ReplyAsError(REPLIES.localError()));
  const rt = d.runtime();
  const sourceRoute = (address as { sourceRoute?: boolean }).sourceRoute === true;
  routeRecipient(address.address, { localDomains: rt.localDomains, mayRelay: s.mayRelay, sourceRoute, accounts: rt.accounts })
    .then((route) => {
      const r = replyForRoute(route);
      tx.log.info('rcpt.decision', { from: tx.from, to: address.address, route: route.kind, reply: formatReply(r), ip: s.client.ip, helo: s.helo });
      if (r.code >= 400) {
        s.counts.rejected++;
        return cb(new ReplyAsError(r));
      }
      tx.rcpts.push({ address: address.address, route });
      s.counts.rcpts++;
      succeed(d, session, r, cb);
    })
    .catch((err: Error) => {
      const r = REPLIES.localError();
      tx.log.error('rcpt.decision', { from: tx.from, to: address.address, reply: formatReply(r), error: err.message });
      cb(new ReplyAsError(r));
    });
}

/** Answer a command with a 2xx Reply value (smtp-server's callback only carries errors). */
function succeed(d: TransactionDeps, session: SMTPServerSession, r: Reply, cb: Callback): void {
  const st = d.connOf(session);
  if (st) st.pendingOk = r;
  cb();
}

/** Until per-user policy lands: users, postmaster and relayable domains are accepted. */
function replyForRoute(route: Route): Reply {
  switch (route.kind) {
    case 'user':
    case 'postmaster':
    case 'relay':
      return REPLIES.recipientOk();
    case 'unknown':
      return REPLIES.noSuchUser();
    case 'denied':
      return route.reason === 'relay' ? REPLIES.relayDenied() : REPLIES.routingChars();
  }
}

export function onData(d: TransactionDeps, stream: SMTPServerDataStream, session: SMTPServerSession, cb: Callback): void {
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
    tx.log.info('data.decision', { reply: formatReply(r), rcpts: tx.rcpts.length, ms: Date.now() - started, ...fields });
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
        const headerPrefix = Buffer.from(traceHeaders(d, rt, s, tx.id, tx.rcpts.length === 1 ? tx.rcpts[0]!.address : null, tx.smtputf8));
        const delivery = await rt.relay.deliver(
          { id: tx.id, from: tx.from, to: tx.rcpts.map((r) => r.address), smtputf8: tx.smtputf8, eightBit: tx.eightBit, headerPrefix, spoolPath: result.path, size: result.size },
          tx.log,
        );
        const r = replyForDelivery(delivery, tx.id);
        if (r.code < 400) s.counts.messages++;
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

function traceHeaders(d: TransactionDeps, rt: Runtime, s: Session, id: string, recipient: string | null, smtputf8: boolean): string {
  const received = receivedHeader({
    helo: s.helo,
    clientName: null,
    clientIp: s.client.ip,
    hostname: rt.config.hostname,
    version: d.version,
    proto: s.proto ?? 'ESMTP',
    tls: s.tls,
    authenticated: false,
    smtputf8,
    id,
    recipient,
    date: new Date(),
  });
  const xav = xAvengerHeader({ version: d.version, receiver: rt.config.hostname, clientIp: s.client.ip, clientPort: s.client.port });
  return received + xav;
}

/**
 * One reply for the whole transaction (spec §6): accepted → 250; refused → the downstream's own
 * reply; per-recipient (LMTP) → 250 only when every recipient was accepted, else the most severe
 * result (a 5xx before a 4xx).
 */
export function replyForDelivery(dr: DeliveryResult, id: string): Reply {
  switch (dr.kind) {
    case 'accepted':
      return REPLIES.accepted(id);
    case 'rejected':
    case 'deferred':
      return dr.reply;
    case 'per-recipient': {
      const failed = dr.results.filter((r): r is Extract<typeof r, { reply: Reply }> => r.kind !== 'accepted');
      if (failed.length === 0) return REPLIES.accepted(id);
      return failed.find((f) => f.kind === 'rejected')?.reply ?? failed[0]!.reply;
    }
  }
}
