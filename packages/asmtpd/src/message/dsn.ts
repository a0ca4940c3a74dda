/**
 * message/dsn — the delivery status notification (RFC 3464) asmtpd sends when the downstream
 * refused some recipients of a message after asmtpd had answered 250 for it (an LMTP 5xx after the
 * data, an SMTP RCPT refusal at delivery time). The only importer of mailparser.
 *
 *   originalHeaderLines(chunks)  the original's header lines (mailparser's headerLines), unfolded
 *                                lines kept as received, for the text/rfc822-headers part
 *   buildDsn(info)               the whole notification as a Buffer (CRLF line ends):
 *     multipart/report; report-type=delivery-status (RFC 6522):
 *       1. text/plain            for people: which recipients failed, with the downstream's reply
 *       2. message/delivery-status   Reporting-MTA, Arrival-Date; per recipient Final-Recipient,
 *                                Action: failed, Status, Diagnostic-Code (smtp; the reply), Remote-MTA
 *       3. text/rfc822-headers   the original's header section
 *
 * Sent from the null sender to the original envelope sender, never for a null sender (RFC 5321
 * §6.1, RFC 3464 §2). An SMTPUTF8 original gets message/global-delivery-status and
 * message/global-headers (RFC 6533), since its addresses and headers may be UTF-8.
 */
import { randomBytes } from 'node:crypto';
import { simpleParser } from 'mailparser';
import { rfc5322Date } from './received.js';

export interface FailedRecipient {
  to: string;
  code: number;
  enhanced: string;
  text: string;
}

export interface DsnInfo {
  /** our host name (Reporting-MTA, From:, Message-ID) */
  hostname: string;
  /** the original's envelope sender (not empty) */
  sender: string;
  queueId: string;
  arrival: Date;
  /** the downstream that refused, e.g. "127.0.0.1:24"; '' when none answered (expired in the queue) */
  remoteMta: string;
  failed: FailedRecipient[];
  /** header lines of the original, without their CRLF */
  originalHeaders: string[];
  smtputf8: boolean;
  now?: Date;
}

/** Header lines of the original message (headerPrefix + spool), as mailparser reads them. */
export async function originalHeaderLines(chunks: AsyncIterable<Buffer>): Promise<string[]> {
  // only the header section is needed: stop reading at the first empty line
  const parts: Buffer[] = [];
  let seen = Buffer.alloc(0);
  for await (const chunk of chunks) {
    seen = Buffer.concat([seen, chunk]);
    const end = seen.indexOf('\r\n\r\n');
    if (end >= 0) {
      parts.push(seen.subarray(0, end + 4));
      seen = Buffer.alloc(0);
      break;
    }
    if (seen.length > 1024 * 1024) break; // a header section this long is cut
  }
  const header = parts.length > 0 ? parts[0]! : Buffer.concat([seen, Buffer.from('\r\n\r\n')]);
  const parsed = await simpleParser(header, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  return parsed.headerLines.map((h) => h.line);
}

function xtextAddress(addr: string, utf8: boolean): string {
  // RFC 3464 §2.3.2: addr-type rfc822; RFC 6533: utf-8 for a non-ASCII address
  return /[^\x00-\x7f]/.test(addr) && utf8 ? `utf-8; ${addr}` : `rfc822; ${addr}`;
}

export function buildDsn(i: DsnInfo): Buffer {
  const now = i.now ?? new Date();
  const boundary = `asmtpd-dsn-${randomBytes(8).toString('hex')}`;
  const statusType = i.smtputf8 ? 'message/global-delivery-status' : 'message/delivery-status';
  const headersType = i.smtputf8 ? 'message/global-headers' : 'text/rfc822-headers';
  const lines: string[] = [
    `From: Mail Delivery System <MAILER-DAEMON@${i.hostname}>`,
    `To: <${i.sender}>`,
    `Subject: Undelivered Mail Returned to Sender`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${i.queueId}.dsn.${randomBytes(4).toString('hex')}@${i.hostname}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `This is the mail system at host ${i.hostname}.`,
    '',
    'Your message (queue id ' + i.queueId + ') could not be delivered to the',
    'recipients below. For the other recipients it was delivered (or is still being tried).',
    '',
    ...i.failed.map((f) => `<${f.to}>: ${f.code} ${f.enhanced} ${f.text}`),
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    `Content-Type: ${statusType}`,
    '',
    `Reporting-MTA: dns; ${i.hostname}`,
    `X-Asmtpd-Queue-ID: ${i.queueId}`,
    `Arrival-Date: ${rfc5322Date(i.arrival)}`,
    '',
  ];
  for (const f of i.failed) {
    lines.push(
      `Final-Recipient: ${xtextAddress(f.to, i.smtputf8)}`,
      'Action: failed',
      `Status: ${f.enhanced}`,
      ...(i.remoteMta ? [`Remote-MTA: dns; ${i.remoteMta}`] : []),
      ...(i.remoteMta ? [`Diagnostic-Code: smtp; ${f.code} ${f.enhanced} ${f.text}`] : []),
      '',
    );
  }
  lines.push(`--${boundary}`, 'Content-Description: Undelivered Message Headers', `Content-Type: ${headersType}`, '');
  lines.push(...i.originalHeaders.map((l) => l.replace(/\r?\n/g, '\r\n')));
  lines.push('', `--${boundary}--`, '');
  return Buffer.from(lines.join('\r\n'), 'utf8');
}
