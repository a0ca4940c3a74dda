/**
 * relay/types — the one interface between the SMTP front end and whatever delivers accepted mail
 * (SMTP or LMTP downstream, a Sendmail pipe, the hold queue).
 *
 * Public types: OutgoingMessage, RecipientResult, DeliveryResult, Relay; resultsPerRecipient(to, result).
 *
 * Notes:
 * - The spool file holds the message as received: CRLF line endings, dot-unstuffed, without the
 *   final ".\r\n". The front end guarantees it ends with CRLF (an empty message is an empty file);
 *   the relays do not add or remove bytes. Dot-stuffing on the way out is the SMTP client's job.
 * - deliver() never throws: every failure is a DeliveryResult. `accepted` is returned only once
 *   the downstream (or the fsynced hold queue) has taken responsibility for the message.
 */
import type { Reply } from '../reply/reply.js';
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
  /** bytes of the spool file (from spoolOffset on) */
  size: number;
  /** where the message starts in spoolPath (a held file: after its envelope block); 0 if absent */
  spoolOffset?: number;
}

export type RecipientResult =
  | { to: string; kind: 'accepted' }
  | { to: string; kind: 'rejected' | 'deferred'; reply: Reply };

export type DeliveryResult =
  | {
      kind: 'accepted';
      downstreamId?: string;
      response: string;
      ms: number;
      held?: string /* path, when written to the hold queue */;
    }
  /** downstream permanently refused: its 5xx passed back as is (code, enhanced, text) */
  | { kind: 'rejected'; reply: Reply; ms: number }
  /** down, timeout, died mid-transfer, 4xx: 451 4.4.1 / 4.4.2 (or the downstream's own 4xx) */
  | { kind: 'deferred'; reply: Reply; ms: number }
  /** the recipients did not all get the same answer (LMTP after the data; SMTP RCPT refusals at delivery) */
  | { kind: 'per-recipient'; results: RecipientResult[]; ms: number; held?: string; dsn?: string };

/** A delivery's answer for each of its recipients `to` (one answer for all, or each its own). */
export function resultsPerRecipient(to: readonly string[], r: DeliveryResult): RecipientResult[] {
  switch (r.kind) {
    case 'accepted':
      return to.map((a) => ({ to: a, kind: 'accepted' }));
    case 'rejected':
    case 'deferred':
      return to.map((a) => ({ to: a, kind: r.kind, reply: r.reply }));
    case 'per-recipient':
      return r.results;
  }
}

/** What the downstream's EHLO/LHLO offered (RFC 6531, 6152, 1870), kept per pool. */
export interface DownstreamCapabilities {
  smtputf8: boolean;
  eightBitMime: boolean;
  /** the SIZE it announced; 0: no limit announced */
  sizeLimit: number;
}

/** The sender side of a transaction that the downstream sees while the client's goes on. */
export interface TransactionEnvelope {
  id: string;
  from: string;
  smtputf8: boolean;
  eightBit: boolean;
  /** SIZE= the client declared, if any */
  size?: number;
}

export type BeginResult =
  /** MAIL FROM accepted by the downstream: RCPTs go there as the client sends them */
  | { kind: 'open'; tx: RelayTransaction }
  /** every allowed downstream connection is held by another transaction: no RCPT-time verdict */
  | { kind: 'busy' }
  /** the downstream refused MAIL FROM (its reply), or cannot be reached (a 4xx with detail) */
  | { kind: 'failed'; reply: Reply };

/** A downstream transaction opened alongside the client's (relay/proxy-transaction.ts). */
export interface RelayTransaction {
  /** RCPT TO at the downstream: null when it accepted, else its refusal (4xx/5xx) */
  rcpt(to: string): Promise<Reply | null>;
  /**
   * DATA, the message, the final dot → the downstream's verdict. `clientGone` is asked before the
   * final dot: true drops the downstream transaction instead. Never throws; releases the connection.
   */
  data(msg: OutgoingMessage, clientGone: () => boolean, log: Logger): Promise<DeliveryResult | { kind: 'abandoned' }>;
  /** RSET the downstream transaction and release its connection; idempotent */
  abort(): void;
}

export interface Relay {
  /** deliver one message; never throws */
  deliver(msg: OutgoingMessage, log: Logger): Promise<DeliveryResult>;
  /**
   * Relays that can give a verdict per recipient at RCPT time (SMTP/LMTP downstream): open the
   * downstream transaction at the client's first accepted RCPT. Absent: no RCPT-time verdict.
   */
  begin?(envelope: TransactionEnvelope, log: Logger): Promise<BeginResult>;
  /** what the downstream offers; null when the relay takes anything (Sendmail, hold queue) or it is not known yet */
  capabilities?(): DownstreamCapabilities | null;
  /** resolves once the first connection attempt is over (capabilities known or not) */
  ready?(): Promise<void>;
  /** close pooled connections; pending deliveries finish first */
  close(): Promise<void>;
  /** e.g. "smtp 127.0.0.1:10025 (pooled)" */
  describe(): string;
}
