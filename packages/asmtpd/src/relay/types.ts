/**
 * relay/types — the one interface between the SMTP front end and whatever delivers accepted mail
 * (SMTP or LMTP downstream, a Sendmail pipe, the hold queue).
 *
 * Public types: OutgoingMessage, RecipientResult, DeliveryResult, Relay.
 *
 * Notes:
 * - The spool file holds the message as received: CRLF line endings, dot-unstuffed, without the
 *   final ".\r\n". The front end guarantees it ends with CRLF (an empty message is an empty file);
 *   the relays do not add or remove bytes. Dot-stuffing on the way out is the SMTP client's job.
 * - deliver() never throws: every failure is a DeliveryResult. `accepted` is returned only once
 *   the downstream (or the fsynced hold queue) has taken responsibility for the message.
 */
import type { Reply } from '../smtp/reply.js';
import type { Logger } from '../log/logger.js';

export interface OutgoingMessage {
  /** our queue id (also in the Received header), for logs */
  id: string;
  /** envelope sender, '' for the null sender */
  from: string;
  /** envelope recipients (already accepted by the front end) */
  to: string[];
  /** the client used SMTPUTF8 (RFC 6531) */
  smtputf8: boolean;
  /** the client declared BODY=8BITMIME (RFC 6152) */
  eightBit: boolean;
  /** header lines put before the message (Received, X-Avenger), CRLF-terminated */
  headerPrefix: Buffer;
  /** the message as received: CRLF line endings, dot-unstuffed, no final ".\r\n", ends with CRLF */
  spoolPath: string;
  /** bytes of the spool file */
  size: number;
}

export type RecipientResult =
  | { to: string; kind: 'accepted' }
  | { to: string; kind: 'rejected' | 'deferred'; reply: Reply };

export type DeliveryResult =
  | { kind: 'accepted'; downstreamId?: string; response: string; ms: number; held?: string /* path, when written to the hold queue */ }
  /** downstream permanently refused: its 5xx passed back as is (code, enhanced, text) */
  | { kind: 'rejected'; reply: Reply; ms: number }
  /** down, timeout, died mid-transfer, 4xx: 451 4.4.1 / 4.4.2 (or the downstream's own 4xx) */
  | { kind: 'deferred'; reply: Reply; ms: number }
  /** LMTP only, when the recipients did not all get the same answer (see smtp-relay.ts) */
  | { kind: 'per-recipient'; results: RecipientResult[]; ms: number };

export interface Relay {
  /** deliver one message; never throws */
  deliver(msg: OutgoingMessage, log: Logger): Promise<DeliveryResult>;
  /** close pooled connections; pending deliveries finish first */
  close(): Promise<void>;
  /** e.g. "smtp 127.0.0.1:10025 (pooled)" */
  describe(): string;
}
