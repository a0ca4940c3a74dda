/**
 * transaction.ts — MAIL, RCPT and DATA: facts → policy → reply → relay for one message.
 *
 *   onMailFrom / onRcptTo / onData — smtp-server hooks; each answers through its callback with a
 *   Reply value (ReplyAsError) and logs one decision line (mail.decision, rcpt.decision,
 *   data.decision).
 *
 * MAIL: parameters are checked (extensions.ts: 555 for what is not offered or unknown).
 * RCPT: after the policy accepted, the downstream is asked too (relay begin(): the before-queue
 * proxy opens the downstream transaction at the first accepted RCPT, downstream.ts): its refusal
 * refuses this recipient only, with its own reply.
 * DATA: the message is spooled to DBDir/spool/<id> with every byte checked (spool.ts); then the
 * Received and X-Avenger fields are prepended and the message goes to the downstream transaction
 * (or, without one, the relay delivers it). 250 is sent only after the downstream accepted (or the
 * hold queue fsynced it; mixed per-recipient results: relay/recipient-split.ts). Anything else: the
 * downstream's reply as is, or a 4xx; the spool file is always removed. A client that is gone
 * before the final dot went downstream abandons the message there (data.abandoned); one that is
 * gone when the downstream's verdict arrives is counted (data.unanswered).
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { SMTPServerAddress, SMTPServerSession, SMTPServerDataStream } from 'smtp-server';
import { REPLIES, ReplyAsError } from '../reply/catalogue.js';
import { formatReply, type Reply } from '../reply/reply.js';
import { spoolMessage, discard } from './spool.js';
import { sendReply } from './boundary.js';
import type { ConnState } from './connections.js';
import type { Session, Transaction } from './session.js';
import type { Route } from '../recipients/route.js';
import { decideRecipient, type RecipientDecision, type ScriptRun } from '../policy/decide.js';
import { bodyGroupOf, bodyTestVerdict, sameGroup, SEND_SEPARATELY, type BodyGroup, type BodyVerdict } from '../policy/body-test.js';
import { receivedHeader } from '../message/received.js';
import { systemDefault } from '../facts/system-default.js';
import { routersOf } from '../facts/client-facts.js';
import { receivedSpf } from '@asmtpd/spf';
import { xAvengerHeader } from '../message/x-avenger.js';
import type { Runtime } from './runtime.js';
import type { DeliveryResult, OutgoingMessage } from '../relay/types.js';
import { mailParamProblem, rcptParamProblem } from './extensions.js';
import { askDownstream, abortDownstream, deliverMessage } from './downstream.js';

export { abortDownstream } from './downstream.js';

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
  if (s.tx) abortDownstream(s.tx);
  const args = (address.args || {}) as Record<string, string | true>;
  const paramError = mailParamProblem(address.args, d.runtime());
  if (paramError) {
    s.log.info('mail.decision', { from: address.address, helo: s.helo, reply: formatReply(paramError) });
    return cb(new ReplyAsError(paramError));
  }
  const id = newQueueId();
  s.tx = {
    id,
    from: address.address,
    smtputf8: args.SMTPUTF8 === true,
    eightBit: typeof args.BODY === 'string' && args.BODY.toUpperCase() === '8BITMIME',
    rcpts: [],
    group: undefined,
    facts: null,
    ...(typeof args.SIZE === 'string' ? { declaredSize: Number(args.SIZE) } : {}),
    log: s.log.child({ tid: id }),
  };
  s.facts.mailFrom(address.address, s.helo);
  const r = REPLIES.senderOk();
  s.tx.log.info('mail.decision', { from: address.address, helo: s.helo, reply: formatReply(r) });
  succeed(d, session, r, cb);
}

export function onRcptTo(d: TransactionDeps, address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void {
  const s = d.sessionOf(session);
  const tx = s?.tx;
  if (!s || !tx) return cb(new ReplyAsError(REPLIES.localError()));
  const rt = d.runtime();
  // a parameter we do not take (555) refuses a recipient the policy would accept; a refusal wins
  const paramError = rcptParamProblem(address.args);
  const sourceRoute = (address as { sourceRoute?: boolean }).sourceRoute === true;
  const started = Date.now();
  decide(rt, s, tx.from, address.address, sourceRoute)
    .then(async ({ route, decision, cached }) => {
      let r = decision?.reply ?? replyForRoute(route);
      const group = decision ? bodyGroupOf(decision) : null;
      if (r.code < 400 && tx.group !== undefined && !sameGroup(tx.group, group)) r = SEND_SEPARATELY();
      if (r.code < 400 && paramError) r = paramError;
      // the policy said yes: the downstream has its say (once per address)
      const repeated = tx.rcpts.some((x) => x.address.toLowerCase() === address.address.toLowerCase());
      const downstream = r.code < 400 && decision && !repeated ? await askDownstream(rt, tx, address.address) : null;
      if (downstream?.reply) r = downstream.reply;
      const last = decision?.runs.at(-1);
      tx.log.info('rcpt.decision', {
        from: tx.from, to: address.address, route: route.kind, reply: formatReply(r), ip: s.client.ip, helo: s.helo,
        ...(decision ? { outcome: decision.outcome.kind, scripts: decision.runs.map(runSummary) } : {}),
        ...(decision?.outcome.kind === 'failed' ? { error: decision.outcome.reason } : {}),
        ...(cached ? { cached: true } : {}), ...(downstream ? { downstream: downstream.source, ...downstream.detail } : {}), ms: Date.now() - started,
      });
      if (last && decision?.outcome.kind === 'failed') tx.log.warn('policy.failed', { to: address.address, user: last.user, script: last.script, reason: decision.outcome.reason });
      // no decision means a refused relay: always a 5xx
      if (r.code >= 400 || !decision) {
        s.counts.rejected++;
        return cb(new ReplyAsError(r));
      }
      tx.group = group;
      // a repeated RCPT for the same address (smtp-server compares case-insensitively) is one recipient
      if (!tx.rcpts.some((x) => x.address.toLowerCase() === address.address.toLowerCase())) {
        tx.rcpts.push({ address: address.address, route, decision });
        s.counts.rcpts++;
      }
      succeed(d, session, r, cb);
    })
    .catch((err: Error) => {
      const r = REPLIES.localError();
      tx.log.error('rcpt.decision', { from: tx.from, to: address.address, reply: formatReply(r), error: err.message, stack: err.stack });
      cb(new ReplyAsError(r));
    });
}

function runSummary(r: ScriptRun): Record<string, unknown> {
  return { user: r.user, uid: r.uid, script: r.script, outcome: r.outcome, ms: r.ms, ...(r.detail ? { detail: r.detail } : {}) };
}

/** Route, then (for everything but a refused relay) the recipient's policy; cached per (sender, rcpt). */
async function decide(rt: Runtime, s: Session, from: string, address: string, sourceRoute: boolean): Promise<{ route: Route; decision: RecipientDecision | null; cached: boolean }> {
  const route = await rt.route(address, s.mayRelay, sourceRoute);
  if (route.kind === 'denied') return { route, decision: null, cached: false };
  // every transaction's added fields need the facts, also when the decision is remembered
  const facts = route.kind === 'postmaster' ? null : await s.facts.settle();
  if (facts && s.tx) s.tx.facts = facts;
  const key = `${from}\0${address}`;
  const hit = s.decisions.get(key);
  if (hit) return { route, decision: hit, cached: true };
  const mailError = facts ? systemDefault(facts, rt.config, from, s.client.ip) : null;
  const decision = await decideRecipient(route, { connection: s, sender: from, address, mailError, facts }, rt.policy);
  // a temporary failure is not remembered: the client may try again in this session
  if (decision.reply.code < 400 || decision.reply.code >= 500) s.decisions.set(key, decision);
  return { route, decision, cached: false };
}

function replyForRoute(route: Route): Reply {
  return route.kind === 'denied' && route.reason === 'routing-characters' ? REPLIES.routingChars() : REPLIES.relayDenied();
}

/** Answer a command with a 2xx Reply value (smtp-server's callback only carries errors). */
function succeed(d: TransactionDeps, session: SMTPServerSession, r: Reply, cb: Callback): void {
  const st = d.connOf(session);
  if (st) st.pendingOk = r;
  cb();
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
    // whatever did not reach the downstream's final dot is dropped there (RSET)
    abortDownstream(tx);
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
        const headerPrefix = Buffer.from(traceHeaders(d, rt, s, tx, tx.rcpts.length === 1 ? tx.rcpts[0]!.address : null));
        if (tx.group) {
          const verdict = await runBodyTest(rt, tx.group, headerPrefix, result.path);
          tx.log.info('bodytest.done', { user: tx.group.account.name, argv: tx.group.argv, verdict: verdict.kind, ...(verdict.kind === 'refuse' ? { detail: verdict.detail, reply: formatReply(verdict.reply) } : {}) });
          if (verdict.kind === 'refuse') return finish(verdict.reply, { size: result.size, bodytest: 'refuse' });
          if (verdict.kind === 'discard') {
            tx.log.info('data.discarded', { size: result.size, rcpts: tx.rcpts.map((r) => r.address) });
            return finish(REPLIES.accepted(tx.id), { size: result.size, bodytest: 'discard' });
          }
        }
        const msg: OutgoingMessage = { id: tx.id, from: tx.from, to: tx.rcpts.map((r) => r.address), smtputf8: tx.smtputf8, eightBit: tx.eightBit, headerPrefix, spoolPath: result.path, size: result.size };
        const delivery = await deliverMessage(rt, tx, msg, () => st.gone);
        if (delivery.kind === 'abandoned') {
          tx.log.info('data.abandoned', { size: result.size, rcpts: tx.rcpts.length });
          return finish(REPLIES.localError(), { size: result.size, relay: 'abandoned' });
        }
        const r = replyForDelivery(delivery, tx.id);
        if (r.code < 400) s.counts.messages++;
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
async function runBodyTest(rt: Runtime, group: BodyGroup, headerPrefix: Buffer, spoolPath: string): Promise<BodyVerdict> {
  const full = `${spoolPath}.full`;
  try {
    await writeFile(full, headerPrefix, { mode: 0o600 });
    await pipeline(createReadStream(spoolPath), createWriteStream(full, { flags: 'a' }));
    const result = await rt.run({ kind: 'bodytest', token: group.token, spool: basename(full), timeoutMs: rt.config.avengerTimeoutMs });
    return bodyTestVerdict(result);
  } finally {
    await discard(full);
  }
}

function traceHeaders(d: TransactionDeps, rt: Runtime, s: Session, tx: Transaction, recipient: string | null): string {
  const f = tx.facts;
  const clientName = f?.reverse?.name ?? null;
  const spfField = f?.spf
    ? `${receivedSpf(f.spf, { ip: s.client.ip, envelopeFrom: tx.from, ...(s.helo ? { helo: s.helo } : {}), receiver: rt.config.hostname }, { foldWidth: 78 })}\r\n`
    : '';
  const received = receivedHeader({
    helo: s.helo,
    clientName,
    clientIp: s.client.ip,
    hostname: rt.config.hostname,
    version: d.version,
    proto: s.proto ?? 'ESMTP',
    tls: s.tls,
    authenticated: false,
    smtputf8: tx.smtputf8,
    id: tx.id,
    recipient,
    date: new Date(),
  });
  const xav = xAvengerHeader({
    version: d.version, receiver: rt.config.hostname, clientIp: s.client.ip, clientPort: s.client.port,
    ...(clientName ? { clientDns: clientName } : {}),
    ...(f?.bounce && f.bounce.kind !== 'accepted' ? { bounceRes: f.bounce.reply } : {}),
    ...(f?.syn ? { synFp: f.syn.fp, ...(f.syn.os ? { synOs: f.syn.os } : {}) } : {}),
    ...(s.pipelining ? { pipelining: s.pipelining } : {}),
    ...(s.post ? { post: true } : {}),
    ...(f?.route ? routeTokens(routersOf(f.route, s.client.ip)) : f?.syn ? { hops: f.syn.hops } : {}),
    ...(f?.spf ? { spf: f.spf.result } : {}),
    ...(f?.rbl?.listed.length ? { rbl: f.rbl.listed.map((l) => l.zone) } : {}),
  });
  return spfField + received + xav;
}

function routeTokens(routers: string[]): { hops: number; path: string[] } {
  return { hops: routers.length, path: routers };
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
      return plain(dr.reply);
    case 'per-recipient': {
      const failed = dr.results.filter((r): r is Extract<typeof r, { reply: Reply }> => r.kind !== 'accepted');
      if (failed.length === 0) return REPLIES.accepted(id);
      return plain(failed.find((f) => f.kind === 'deferred')?.reply ?? failed[0]!.reply);
    }
  }
}

/** code, enhanced status and text only (a canned reply's detail stays in the log) */
function plain(r: Reply): Reply {
  return { code: r.code, enhanced: r.enhanced, text: r.text };
}
