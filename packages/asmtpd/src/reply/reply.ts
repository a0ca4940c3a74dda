/**
 * Replies as values: {code, enhanced, text}. Every reply asmtpd sends is built here, and
 * validated: a 3-digit code, an enhanced status whose class equals the code's first digit
 * (RFC 3463), printable text without CR/LF, the whole line at most 512 octets (RFC 5321 §4.5.3.1.5).
 */
export interface Reply {
  code: number;
  enhanced: string;
  text: string;
}

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}$/;

export class ReplyError extends Error {}

/** Build a validated reply. Control characters in text are replaced, overlong text is cut. */
export function reply(code: number, enhanced: string, text: string): Reply {
  if (!Number.isInteger(code) || code < 200 || code > 599) throw new ReplyError(`bad reply code ${code}`);
  if (!ENHANCED.test(enhanced) || enhanced[0] !== String(code)[0]) {
    throw new ReplyError(`enhanced status ${enhanced} does not fit code ${code}`);
  }
  let clean = text.replace(/[\x00-\x1f\x7f]/g, ' ');
  const max = 512 - 2 /* CRLF */ - 4 /* "NNN " */ - enhanced.length - 1;
  if (Buffer.byteLength(clean) > max)
    clean = Buffer.from(clean)
      .subarray(0, max)
      .toString('utf8')
      .replace(/\uFFFD$/, '');
  return { code, enhanced, text: clean };
}

/** "550 5.7.1 text" */
export function formatReply(r: Reply): string {
  return `${r.code} ${r.enhanced} ${r.text}`;
}

/** A reply of ours with a generic text for the client and the particulars for the log. */
export interface DetailedReply extends Reply {
  detail: string;
}

export function withDetail(r: Reply, detail: string): DetailedReply {
  return { ...r, detail };
}

/** Code, enhanced status and text only: a canned reply's detail stays in the log. */
export function plainReply(r: Reply): Reply {
  return { code: r.code, enhanced: r.enhanced, text: r.text };
}

/**
 * Parse a downstream reply such as "550 5.1.1 <x@y>: unknown user" or "554 no" into a Reply,
 * supplying a default enhanced status (of the right class) when the peer gave none.
 */
export function parseReply(line: string, fallbackCode: number, fallbackEnhanced: string): Reply {
  const m = /^([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3}) )?(.*)$/s.exec(line.trim());
  if (!m) return reply(fallbackCode, fallbackEnhanced, line.trim() || 'no reply text');
  const code = Number(m[1]);
  const cls = String(code)[0];
  const enhanced = m[2] && m[2][0] === cls ? m[2] : `${cls}${fallbackEnhanced.slice(1)}`;
  return reply(code, enhanced, (m[3] ?? '').replace(/\r?\n\d{3}[ -](?:[245]\.\d{1,3}\.\d{1,3} )?/g, ' '));
}
