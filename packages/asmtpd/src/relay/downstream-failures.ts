/**
 * relay/downstream-failures — what nodemailer's errors mean for the relay: each becomes a
 * DownstreamFailure (downstream-connection.ts), a refused recipient becomes a RefusedRecipient.
 *
 *   classifySetupError(err)  greeting/EHLO failures: timeout, session-refused, unreachable
 *   classifySendError(err)   transaction failures: timeout, spool, recipients-refused, too-big, reply, lost
 *   connectionReason(err)    a short reason for a broken connection (the errno, or a phrase)
 *   refusedFrom(err)         { to, response } of a refused recipient
 */
import type { DownstreamFailure, RefusedRecipient } from './downstream-connection.js';

/** What nodemailer's errors carry (see _formatError in nodemailer/lib/smtp-connection). */
export interface NodemailerFailure {
  message: string;
  code?: string;
  originalCode?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  timeoutType?: string;
  rejectedErrors?: NodemailerFailure[];
}

export function classifySetupError(err: NodemailerFailure): DownstreamFailure {
  if (err.code === 'ETIMEDOUT') return { kind: 'timeout', stage: err.timeoutType === 'SOCKET_TIMEOUT' ? 'session' : 'greeting' };
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
  if (err.response && /^[45]\d\d/.test(err.response)) return { kind: 'reply', command: err.command ?? 'DATA', response: err.response };
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
