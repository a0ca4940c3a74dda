/**
 * relay/downstream-failures — what can go wrong with a downstream session (DownstreamFailure,
 * RefusedRecipient), and what nodemailer's errors mean for the relay: each becomes a
 * DownstreamFailure, a refused recipient becomes a RefusedRecipient.
 *
 *   classifySetupError(err)  greeting/EHLO failures: timeout, session-refused, unreachable
 *   classifySendError(err)   transaction failures: timeout, spool, recipients-refused, too-big, reply, lost
 *   connectionReason(err)    a short reason for a broken connection (the errno, or a phrase)
 *   refusedFrom(err)         { to, response } of a refused recipient
 *
 * The types live here, not in downstream-connection.ts (which re-exports them), so that the
 * two modules do not import each other.
 */
import type { NodemailerFailure } from '../smtp-client/nodemailer-internals.js';

export interface RefusedRecipient {
  to: string;
  /** the downstream's reply line, e.g. "550 5.1.1 unknown user" */
  response: string;
}

export type DownstreamFailure =
  /** could not connect, or the session broke before it was set up */
  | { kind: 'unreachable'; reason: string }
  /** the downstream did not answer within timeoutMs */
  | { kind: 'timeout'; stage: string }
  /** the established connection broke (reset, closed, protocol garbage) */
  | { kind: 'lost'; reason: string }
  /** the greeting or EHLO/LHLO was answered with an error */
  | { kind: 'session-refused'; response: string }
  /** MAIL, RCPT (LMTP/pipelining corner cases), DATA or end of data answered with an error */
  | { kind: 'reply'; command: string; response: string }
  /** every RCPT was refused */
  | { kind: 'recipients-refused'; refused: RefusedRecipient[] }
  /** bigger than the SIZE the downstream announced */
  | { kind: 'too-big' }
  /** reading the spooled message failed */
  | { kind: 'spool'; reason: string };

export function classifySetupError(err: NodemailerFailure): DownstreamFailure {
  if (err.code === 'ETIMEDOUT')
    return { kind: 'timeout', stage: err.timeoutType === 'SOCKET_TIMEOUT' ? 'session' : 'greeting' };
  if (err.response && /^[45]\d\d/.test(err.response)) return { kind: 'session-refused', response: err.response };
  return { kind: 'unreachable', reason: connectionReason(err) };
}

export function classifySendError(err: NodemailerFailure): DownstreamFailure {
  if (err.code === 'ETIMEDOUT') return { kind: 'timeout', stage: err.command ?? 'transaction' };
  if (err.code === 'ESTREAM') return { kind: 'spool', reason: err.originalCode ?? err.message };
  if (err.code === 'EENVELOPE' && err.rejectedErrors && err.command === 'RCPT TO') {
    return { kind: 'recipients-refused', refused: err.rejectedErrors.map(refusedFrom) };
  }
  if (err.code === 'EMESSAGE' && !err.response) return { kind: 'too-big' };
  if (err.response && /^[45]\d\d/.test(err.response))
    return { kind: 'reply', command: err.command ?? 'DATA', response: err.response };
  return { kind: 'lost', reason: connectionReason(err) };
}

export function connectionReason(err: NodemailerFailure): string {
  if (err.originalCode) return err.originalCode;
  if (/closed/i.test(err.message)) return 'connection closed by the downstream';
  if (/destroyed|half-closed/i.test(err.message)) return 'connection already closed';
  return err.message.slice(0, 200);
}

export function refusedFrom(err: NodemailerFailure): RefusedRecipient {
  return { to: err.recipient ?? '', response: err.response ?? err.message };
}
