/**
 * relay/relay-replies — the replies a relay hands back to the front end, built in one place.
 *
 * Public functions:
 *   downstreamFailureReply(line)  a downstream's 4xx/5xx line as a Reply, as is (code, enhanced status,
 *                                 text); an enhanced status of the right class (x.0.0) is supplied when
 *                                 the downstream gave none (RFC 3463)
 *   mostSevere(replies)           the reply that answers a whole transaction (spec §6): any 5xx wins
 *                                 over 4xx, the first of its class otherwise
 *   resultFromReply(reply, ms)    a 4xx/5xx Reply as a deferred/rejected DeliveryResult
 *   downstreamIdFrom(response)    the downstream's queue id in its 250 reply ("queued as X", "id=X")
 *   unavailable / noAnswer / connectionLost / localFailure / insufficientStorage
 *                                 the canned temporary failures (451 4.4.1, 451 4.4.2, 451 4.3.0, 452 4.3.1)
 *
 * Notes: a temporary doubt never turns into a permanent reject. Anything that is not a clear
 * 5xx from the downstream to MAIL, RCPT, DATA or the end of data is a 4xx.
 */
import { parseReply, reply, type Reply } from '../smtp/reply.js';
import type { DeliveryResult } from './types.js';

/** A downstream's failure line ("550 5.1.1 <x@y>: unknown user", "451 try later") as a Reply. */
export function downstreamFailureReply(line: string): Reply {
  const parsed = parseReply(line, 451, '4.0.0');
  if (parsed.code < 400) return reply(451, '4.3.0', `unexpected downstream reply: ${line.trim()}`);
  return parsed;
}

/** The most severe reply: the first 5xx, otherwise the first 4xx. */
export function mostSevere(replies: Reply[]): Reply | undefined {
  return replies.find((r) => r.code >= 500) ?? replies[0];
}

export function resultFromReply(r: Reply, ms: number): DeliveryResult {
  return r.code >= 500 ? { kind: 'rejected', reply: r, ms } : { kind: 'deferred', reply: r, ms };
}

/** "250 2.0.0 Ok: queued as 4Xh2" (Postfix), "250 OK id=1rX-000A-7b" (Exim) → the id. */
export function downstreamIdFrom(response: string): string | undefined {
  const m = /queued as ([A-Za-z0-9._@-]+)/i.exec(response) ?? /\bid=([A-Za-z0-9._@-]+)/.exec(response);
  return m?.[1];
}

/** could not connect, or the session could not be set up: 451 4.4.1 (RFC 3463: no answer from host) */
export function unavailable(downstream: string, reason: string): Reply {
  return reply(451, '4.4.1', `downstream ${downstream} unavailable: ${reason}`);
}

export function noAnswer(downstream: string, timeoutMs: number): Reply {
  return reply(451, '4.4.1', `no answer from downstream ${downstream} within ${timeoutMs} ms`);
}

/** the connection broke after it was set up: 451 4.4.2 (RFC 3463: bad connection) */
export function connectionLost(downstream: string, reason: string): Reply {
  return reply(451, '4.4.2', `connection to downstream ${downstream} lost: ${reason}`);
}

export function localFailure(text: string): Reply {
  return reply(451, '4.3.0', text);
}

export function insufficientStorage(reason: string): Reply {
  return reply(452, '4.3.1', `insufficient system storage: ${reason}`);
}
