/**
 * relay/relay-replies — the replies a relay hands back to the front end, built in one place.
 *
 * Public functions:
 *   downstreamFailureReply(line)  a downstream's 4xx/5xx line as a Reply, as is (code, enhanced status,
 *                                 text); an enhanced status of the right class (x.0.0) is supplied when
 *                                 the downstream gave none (RFC 3463)
 *   leastFinal(replies)           the reply for a transaction in which nothing was delivered: the first
 *                                 4xx (the client retries, nobody is bounced), else the first 5xx
 *   perRecipientResult(to, refused, ms)  `per-recipient`: accepted unless named in `refused` (their lines as Replies)
 *   resultFromReply(reply, ms)    a 4xx/5xx Reply as a deferred/rejected DeliveryResult
 *   downstreamIdFrom(response)    the downstream's queue id in its 250 reply ("queued as X", "id=X")
 *   unavailable / noAnswer / connectionLost / localFailure / insufficientStorage
 *                                 the canned temporary failures (451 4.4.1, 451 4.4.2, 451 4.3.0, 452 4.3.1)
 *   detailOf(reply)               the log detail of a canned failure ({} for a downstream's own reply)
 *
 * Notes: a temporary doubt never turns into a permanent reject. Anything that is not a clear
 * 5xx from the downstream to MAIL, RCPT, DATA or the end of data is a 4xx.
 * The canned failures tell the client a generic text; what went wrong (the downstream's address,
 * the errno, the path) is in their `detail`, which only the log shows (relay.failed, queue.held).
 */
import { REPLIES } from '../reply/catalogue.js';
import { parseReply, type DetailedReply, type Reply } from '../reply/reply.js';
import type { DeliveryResult, RecipientResult } from './types.js';

/** A downstream's failure line ("550 5.1.1 <x@y>: unknown user", "451 try later") as a Reply. */
export function downstreamFailureReply(line: string): Reply {
  const parsed = parseReply(line, 451, '4.0.0');
  if (parsed.code < 400) return REPLIES.unexpectedDownstreamReply(line.trim());
  return parsed;
}

/** Nothing was delivered: the first 4xx (a retry reaches everybody), otherwise the first 5xx. */
export function leastFinal(replies: Reply[]): Reply | undefined {
  return replies.find((r) => r.code < 500) ?? replies[0];
}

export function resultFromReply(r: Reply, ms: number): DeliveryResult {
  return r.code >= 500 ? { kind: 'rejected', reply: r, ms } : { kind: 'deferred', reply: r, ms };
}

/** "250 2.0.0 Ok: queued as 4Xh2" (Postfix), "250 OK id=1rX-000A-7b" (Exim) → the id. */
export function downstreamIdFrom(response: string): string | undefined {
  const m = /queued as ([A-Za-z0-9._@-]+)/i.exec(response) ?? /\bid=([A-Za-z0-9._@-]+)/.exec(response);
  return m?.[1];
}

export type { DetailedReply } from '../reply/reply.js';

/** could not connect, or the session could not be set up: 451 4.4.1 (RFC 3463: no answer from host) */
export function unavailable(downstream: string, reason: string): DetailedReply {
  return REPLIES.downstreamUnavailable(`downstream ${downstream} unavailable: ${reason}`);
}

export function noAnswer(downstream: string, timeoutMs: number): DetailedReply {
  return REPLIES.downstreamUnavailable(`no answer from downstream ${downstream} within ${timeoutMs} ms`);
}

/** the connection broke after it was set up: 451 4.4.2 (RFC 3463: bad connection) */
export function connectionLost(downstream: string, reason: string): DetailedReply {
  return REPLIES.downstreamLost(`connection to downstream ${downstream} lost: ${reason}`);
}

export function localFailure(detail: string): DetailedReply {
  return REPLIES.localFailure(detail);
}

export function insufficientStorage(reason: string): DetailedReply {
  return REPLIES.insufficientStorage(`insufficient system storage: ${reason}`);
}

/** "451 4.4.1 text (detail)": a reply with its detail, for the log and the hold queue */
export function replyForLog(r: Reply): string {
  const d = detailOf(r).detail;
  return `${r.code} ${r.enhanced} ${r.text}${d ? ` (${d})` : ''}`;
}

/** { detail } of a canned failure, for a log line; {} for a downstream's own reply */
export function detailOf(r: Reply): { detail?: string } {
  const d = (r as Partial<DetailedReply>).detail;
  return typeof d === 'string' ? { detail: d } : {};
}

/** The recipients' results when some were refused: accepted unless named in `refused`. */
export function perRecipientResult(
  to: string[],
  refused: { to: string; response: string }[],
  ms: number,
): DeliveryResult {
  const results: RecipientResult[] = to.map((address) => {
    const hit = refused.find((r) => r.to === address);
    if (!hit) return { to: address, kind: 'accepted' };
    const r = downstreamFailureReply(hit.response);
    return { to: address, kind: r.code >= 500 ? 'rejected' : 'deferred', reply: r };
  });
  return { kind: 'per-recipient', results, ms };
}
