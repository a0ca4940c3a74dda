/**
 * received.ts — the Received: trace field we add (RFC 5321 §4.4, RFC 3848 protocol names).
 *
 *   receivedHeader(info) -> "Received: from HELO (NAME [IP]) by HOST (asmtpd V) with PROTO id ID for <RCPT>; DATE\r\n"
 *
 * Protocol: SMTP (HELO), ESMTP (EHLO), +S with TLS, +A when authenticated; UTF8SMTP* with SMTPUTF8
 * (RFC 6531 §3.7.3). Client-supplied HELO is sanitised (no CR/LF, parentheses or controls; no
 * non-ASCII character unless the transaction used SMTPUTF8).
 */
import { foldHeader } from './fold.js';

export interface ReceivedInfo {
  helo: string | null;
  clientName: string | null;
  clientIp: string;
  hostname: string;
  version: string;
  proto: 'SMTP' | 'ESMTP';
  tls: { version: string; cipher: string } | null;
  authenticated: boolean;
  smtputf8: boolean;
  id: string;
  /** only when the message has exactly one recipient (RFC 5321 §4.4: privacy) */
  recipient: string | null;
  date: Date;
}

export function protocolName(i: Pick<ReceivedInfo, 'proto' | 'tls' | 'authenticated' | 'smtputf8'>): string {
  if (i.proto === 'SMTP' && !i.tls && !i.authenticated && !i.smtputf8) return 'SMTP';
  const base = i.smtputf8 ? 'UTF8SMTP' : 'ESMTP';
  return base + (i.tls ? 'S' : '') + (i.authenticated ? 'A' : '');
}

export function receivedHeader(i: ReceivedInfo): string {
  // eslint-disable-next-line no-control-regex
  // without SMTPUTF8 the field must be ASCII (RFC 5321 §4.4, RFC 6531 §3.7.3): other bytes become '?'
  const clean = (s: string): string =>
    (i.smtputf8 ? s : s.replace(/[^\x00-\x7f]/g, '?')).replace(/[\x00-\x20\x7f()\\;]/g, '?').slice(0, 255);
  const ipLiteral = i.clientIp.includes(':') ? `IPv6:${i.clientIp}` : i.clientIp;
  const from = `from ${i.helo ? clean(i.helo) : 'unknown'} (${i.clientName ? clean(i.clientName) + ' ' : ''}[${ipLiteral}])`;
  const tls = i.tls ? ` (${clean(i.tls.version)}:${clean(i.tls.cipher)})` : '';
  const parts = [
    from,
    `by ${i.hostname} (asmtpd ${i.version})`,
    `with ${protocolName(i)}${tls}`,
    `id ${i.id}`,
    ...(i.recipient ? [`for <${clean(i.recipient)}>;`] : []),
    rfc5322Date(i.date),
  ];
  if (!i.recipient) parts[3] += ';';
  return foldHeader('Received', parts, ' ');
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "Sat, 21 Nov 2026 10:00:00 +0100" in local time. */
export function rfc5322Date(d: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const abs = Math.abs(off);
  return (
    `${DAYS[d.getDay()]}, ${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`
  );
}
