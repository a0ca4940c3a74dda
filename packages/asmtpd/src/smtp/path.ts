/**
 * path.ts — parse the argument of MAIL FROM / RCPT TO (RFC 5321 §4.1.2, RFC 6531).
 *
 *   parsePathCommand(verb, line) -> ParsedPath | PathError
 *
 * Used instead of smtp-server's own parser (see boundary.ts) because that one splits the line at
 * whitespace (so `<"john smith"@example.org>` cannot be expressed) and answers 501 for addresses
 * that are relay tricks rather than syntax errors. This parser keeps the address byte-exact as the
 * client wrote it (quoted local parts included) and leaves the relay decision to recipients/route.ts:
 * it accepts a local part with extra `@` (`u@other@local`) so that the router can answer 550 5.7.1.
 *
 * Security: rejects control characters (CR, LF, NUL …) anywhere in the path and in parameters.
 */
export interface ParsedPath {
  /** the address as written, without <> and without a source route; '' for the null path */
  address: string;
  /** ESMTP parameters, keys upper-cased; values xtext-decoded; `true` for a bare keyword */
  args: Record<string, string | true> | false;
  /** the client used an RFC 5321 source route (`@a,@b:u@d`), which was dropped */
  sourceRoute: boolean;
  /** a parameter given twice (the first value is kept in args): smtp-server refuses the command (501) */
  duplicate?: string;
}

export interface PathError {
  error: string;
}

import { lastAtOutsideQuotes } from '../recipients/address.js';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
const MAX_PATH_OCTETS = 256;

/** Parse "MAIL FROM:<a@b> SIZE=10" (verb 'MAIL FROM') or "RCPT TO:<…>" (verb 'RCPT TO'). */
export function parsePathCommand(verb: 'MAIL FROM' | 'RCPT TO', line: string): ParsedPath | PathError {
  const colon = line.indexOf(':');
  if (colon < 0) return { error: `syntax: ${verb}:<address>` };
  const head = line.slice(0, colon).replace(/\s+/g, ' ').trim().toUpperCase();
  if (head !== verb) return { error: `syntax: ${verb}:<address>` };
  const rest = line.slice(colon + 1).replace(/^ +/, '');
  if (CONTROL.test(rest)) return { error: 'control characters are not allowed in addresses' };
  if (rest[0] !== '<') {
    // RFC 5321 requires angle brackets; the special `RCPT TO:postmaster` form is still bracketed.
    return { error: `syntax: ${verb}:<address>` };
  }
  const close = findClosingBracket(rest);
  if (close < 0) return { error: 'unbalanced < > in address' };
  let path = rest.slice(1, close);
  if (Buffer.byteLength(path) > MAX_PATH_OCTETS) return { error: 'address too long' };
  let sourceRoute = false;
  const route = /^@[^\s,:@]+(?:,@[^\s,:@]+)*:/.exec(path);
  if (route) {
    sourceRoute = true;
    path = path.slice(route[0].length);
  }
  if (path !== '' && !isPlausibleMailbox(path)) return { error: 'bad address syntax' };
  const params = rest.slice(close + 1);
  if (params !== '' && !/^ /.test(params)) return { error: 'syntax: parameters must follow a space' };
  const args = parseParams(params.trim());
  if ('error' in args) return args;
  return { address: path, args: args.value, sourceRoute, ...(args.duplicate ? { duplicate: args.duplicate } : {}) };
}

/** Index of the `>` closing the path, honouring quoted strings and backslash escapes. */
function findClosingBracket(s: string): number {
  let quoted = false;
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '>') return i;
    else if (!quoted && c === '<') return -1;
  }
  return -1;
}

/**
 * A mailbox `local@domain` (or the bare `postmaster`), where local is a dot-string or a quoted
 * string. The domain is split at the LAST `@` outside quotes. A local part that is neither a
 * dot-string nor a quoted string but contains `@` (`u@other@local`) is still returned, for the
 * router to refuse as a relay attempt; anything else malformed is a syntax error.
 */
function isPlausibleMailbox(path: string): boolean {
  if (path.toLowerCase() === 'postmaster') return true;
  const at = lastAtOutsideQuotes(path);
  if (at <= 0 || at === path.length - 1) return false;
  const local = path.slice(0, at);
  const domain = path.slice(at + 1);
  if (!isDomain(domain)) return false;
  if (/^"(?:[^"\\]|\\[\x20-\x7e])*"$/.test(local)) return true;
  // Lenient like Postfix: an unquoted local part may hold any printable character but space,
  // quotes, backslash and angle brackets (`a;id`, `$(id)`, `u@other`); the router and the scripts
  // treat it as data. RFC 5321 dot-atoms are a subset.
  return /^[^\s"\\<>]+$/.test(local);
}

function isDomain(d: string): boolean {
  if (/^\[(?:IPv6:[0-9A-Fa-f:.]+|\d{1,3}(?:\.\d{1,3}){3})\]$/.test(d)) return true;
  const label = '[A-Za-z0-9\\u0080-\\uffff](?:[A-Za-z0-9\\-\\u0080-\\uffff]*[A-Za-z0-9\\u0080-\\uffff])?';
  return d.length <= 255 && new RegExp(`^${label}(?:\\.${label})*\\.?$`).test(d);
}

function parseParams(s: string): { value: Record<string, string | true> | false; duplicate?: string } | PathError {
  if (s === '') return { value: false };
  const out: Record<string, string | true> = {};
  let duplicate: string | undefined;
  for (const word of s.split(/ +/)) {
    const eq = word.indexOf('=');
    const key = (eq < 0 ? word : word.slice(0, eq)).toUpperCase();
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key)) return { error: `bad parameter ${JSON.stringify(word)}` };
    if (key in out) {
      duplicate ??= key;
      continue;
    }
    if (eq < 0) {
      out[key] = true;
      continue;
    }
    const value = word
      .slice(eq + 1)
      .replace(/\+([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    if (CONTROL.test(value)) return { error: `control characters in parameter ${key}` };
    out[key] = value;
  }
  return duplicate ? { value: out, duplicate } : { value: out };
}
