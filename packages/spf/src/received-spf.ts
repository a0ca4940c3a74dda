/*
 * received-spf.ts — the Received-SPF header field (RFC 7208 §9.1).
 *
 * Public: receivedSpf(result, info, options?) -> string ("Received-SPF: …", no trailing CRLF).
 * Form: Received-SPF: <result> (<comment>) key=value; key=value; …
 *   keys: client-ip, envelope-from, helo, receiver, identity (mailfrom|helo), mechanism (the
 *   deciding term or "default"), problem (permerror/temperror reason). A value that is not a
 *   dot-atom is written as a quoted-string; CR, LF and other control characters are dropped,
 *   so client-supplied strings (HELO, sender) cannot inject header lines.
 * Folding: with options.foldWidth (e.g. 78) the field is folded at spaces with CRLF + tab
 *   (or options.newline).
 * Security: pure formatting.
 */
import type { SpfResult } from './check-host.js';

export interface ReceivedSpfInfo {
  /** client address as given */
  ip: string;
  /** MAIL FROM address (empty for the null sender) */
  envelopeFrom: string;
  helo?: string;
  /** our host name */
  receiver?: string;
  /** which identity was checked; default "mailfrom" */
  identity?: 'mailfrom' | 'helo';
}

export interface ReceivedSpfOptions {
  foldWidth?: number;
  newline?: string;
}

const ATEXT = "A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~";
const DOT_ATOM_RE = new RegExp(`^[${ATEXT}]+(?:\\.[${ATEXT}]+)*$`);

function clean(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, '');
}

function value(text: string): string {
  const t = clean(text);
  return DOT_ATOM_RE.test(t) ? t : `"${t.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function commentText(text: string): string {
  return clean(text).replace(/[\\()]/g, (c) => `\\${c}`);
}

function comment(r: SpfResult, info: ReceivedSpfInfo): string {
  const who = info.identity === 'helo' ? (info.helo ?? r.domain) : r.sender;
  const me = info.receiver ?? 'unknown';
  const ip = info.ip;
  switch (r.result) {
    case 'pass':
      return `${me}: domain of ${who} designates ${ip} as permitted sender`;
    case 'fail':
      return `${me}: domain of ${who} does not designate ${ip} as permitted sender`;
    case 'softfail':
      return `${me}: domain of transitioning ${who} does not designate ${ip} as permitted sender`;
    case 'neutral':
      return `${me}: ${ip} is neither permitted nor denied by domain of ${who}`;
    case 'none':
      return `${me}: domain of ${who} does not designate permitted sender hosts`;
    case 'permerror':
      return `${me}: permanent error in processing domain of ${who}: ${r.problem ?? 'invalid SPF record'}`;
    case 'temperror':
      return `${me}: temporary error in processing during lookup of ${who}: ${r.problem ?? 'DNS error'}`;
  }
}

/** Folds at spaces so that each line, with the whitespace `newline` starts it with, fits `width`. */
function fold(line: string, width: number, newline: string): string {
  const indent = newline.replace(/^\r?\n/, '').length;
  const words = line.split(' ');
  let out = '';
  let cur = '';
  let first = true;
  for (const w of words) {
    if (cur === '') {
      cur = w;
      continue;
    }
    if ((first ? 0 : indent) + cur.length + 1 + w.length > width) {
      out += cur + newline;
      cur = w;
      first = false;
    } else {
      cur += ` ${w}`;
    }
  }
  return out + cur;
}

/** Builds the Received-SPF header field for a check result. */
export function receivedSpf(r: SpfResult, info: ReceivedSpfInfo, options: ReceivedSpfOptions = {}): string {
  const pairs: string[] = [`client-ip=${value(info.ip)}`, `envelope-from=${value(info.envelopeFrom)}`];
  if (info.helo !== undefined && info.helo !== '') pairs.push(`helo=${value(info.helo)}`);
  if (info.receiver !== undefined) pairs.push(`receiver=${value(info.receiver)}`);
  pairs.push(`identity=${info.identity ?? 'mailfrom'}`);
  if (r.mechanism !== undefined) pairs.push(`mechanism=${value(r.mechanism)}`);
  if (r.problem !== undefined && (r.result === 'permerror' || r.result === 'temperror'))
    pairs.push(`problem=${value(r.problem)}`);
  const line = `Received-SPF: ${r.result} (${commentText(comment(r, info))}) ${pairs.join('; ')};`;
  if (options.foldWidth === undefined) return line;
  return fold(line, options.foldWidth, options.newline ?? '\r\n\t');
}
