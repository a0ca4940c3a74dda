/**
 * mail.ts — MAIL FROM: the parameters are checked (extensions.ts: 555 for what is not offered or
 * unknown), a new Transaction gets its queue id, and the sender's facts start (SPF, bounce probe).
 *
 *   onMailFrom(deps, address, session, cb)      logs mail.decision
 *   newQueueId() -> string
 */
import { randomBytes } from 'node:crypto';
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { REPLIES, ReplyAsError } from '../../reply/catalogue.js';
import { formatReply } from '../../reply/reply.js';
import { mailParamProblem } from '../extensions.js';
import { abortDownstream } from '../downstream.js';
import { recordHelo } from './helo.js';
import { succeed, type Callback, type CommandDeps } from './context.js';

/** Queue ids: 12 upper-case hex digits after a time prefix, unique and sortable enough. */
export function newQueueId(): string {
  return Date.now().toString(36).toUpperCase() + randomBytes(4).toString('hex').toUpperCase();
}

export function onMailFrom(d: CommandDeps, address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void {
  const s = d.sessionOf(session);
  if (!s) return cb(new ReplyAsError(REPLIES.localError()));
  recordHelo(session, s);
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
