/*
 * macro.ts — SPF macro strings (RFC 7208 §7): parsing once, expanding per check.
 *
 * Public: parseMacroString(text, where) -> MacroString (throws SpfSyntaxError),
 *   expandMacroString(ms, values) -> string, expandDomain(ms, values) -> string | undefined,
 *   validDomainName(name), urlEscape(text), SpfSyntaxError.
 * Grammar: macro-string = *( macro-expand / macro-literal ); macro-expand =
 *   "%{" macro-letter transformers *delimiter "}" / "%%" / "%_" / "%-".
 *   Letters s l o d i p h v everywhere; c r t only in explanation text (§7.1/8).
 *   Transformers: DIGITs (non-zero: how many right-hand parts), "r" (reverse);
 *   delimiters . - + , / _ = (default "."). An upper-case letter URL-escapes the
 *   result (§7.1/26; everything outside ALPHA DIGIT - . _ ~ becomes %XX).
 * A domain-spec must end in a macro-expand or in "." toplabel ["."] (§7.1); that check
 *   is done on the literal text, never on the expansion.
 * After expansion a name longer than 253 octets loses labels on its left (§7.3); a name with
 *   an empty label or a label over 63 octets cannot be queried (the caller treats it as no match).
 * Security: expansion is pure; the only value that needs DNS (%{p}) is supplied by the caller.
 */

export class SpfSyntaxError extends Error {
  override readonly name = 'SpfSyntaxError';
}

export type MacroLetter = 's' | 'l' | 'o' | 'd' | 'i' | 'p' | 'h' | 'c' | 'r' | 't' | 'v';

export type MacroToken =
  | { readonly kind: 'literal'; readonly text: string }
  | {
      readonly kind: 'expand';
      readonly letter: MacroLetter;
      /** upper-case letter: URL-escape the result */
      readonly escape: boolean;
      /** 0 = all parts */
      readonly digits: number;
      readonly reverse: boolean;
      /** null = the default "." */
      readonly delimiters: RegExp | null;
    };

export interface MacroString {
  readonly raw: string;
  readonly tokens: readonly MacroToken[];
  /** true when the string has no expand token (then `literal` is its value) */
  readonly constant: boolean;
  readonly literal: string;
  readonly usesP: boolean;
}

/** The values a check supplies to expand macros (RFC 7208 §7.3). */
export interface MacroValues {
  /** s: the sender, local-part@domain ("postmaster" substituted for an empty local-part) */
  readonly sender: string;
  /** l */
  readonly localPart: string;
  /** o */
  readonly senderDomain: string;
  /** d: the current domain */
  readonly domain: string;
  /** i */
  readonly ipDotted: string;
  /** c */
  readonly ipReadable: string;
  /** v: "in-addr" or "ip6" */
  readonly ipVersion: string;
  /** h */
  readonly helo: string;
  /** r */
  readonly receiver: string;
  /** t: seconds since the epoch */
  readonly nowSeconds: number;
  /** p: the validated domain name, already looked up when the string uses %{p}, else "unknown" */
  readonly validatedName?: string;
}

export type MacroWhere = 'domain' | 'explanation';

const DOMAIN_LETTERS = 'slodiphv';
const EXPLAIN_LETTERS = 'slodiphvcrt';
const DELIMS = '.-+,/_=';

function escapeForClass(ch: string): string {
  return ch === '-' || ch === '/' || ch === '.' || ch === '+' ? `\\${ch}` : ch;
}

/**
 * Parses a macro-string. `where` selects the letters allowed: "domain" for a domain-spec and
 * unknown modifiers' values, "explanation" for exp= TXT text (which may also contain spaces).
 */
export function parseMacroString(text: string, where: MacroWhere): MacroString {
  const letters = where === 'domain' ? DOMAIN_LETTERS : EXPLAIN_LETTERS;
  const tokens: MacroToken[] = [];
  let lit = '';
  let usesP = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (ch === 0x25 /* % */) {
      const next = text[i + 1];
      if (next === '%') {
        lit += '%';
        i += 2;
        continue;
      }
      if (next === '_') {
        lit += ' ';
        i += 2;
        continue;
      }
      if (next === '-') {
        lit += '%20';
        i += 2;
        continue;
      }
      if (next !== '{') throw new SpfSyntaxError(`bad macro at "${text.slice(i, i + 3)}"`);
      const close = text.indexOf('}', i + 2);
      if (close < 0) throw new SpfSyntaxError('unterminated macro');
      const body = text.slice(i + 2, close);
      const m = /^([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)$/.exec(body);
      if (!m) throw new SpfSyntaxError(`bad macro "%{${body}}"`);
      const letterRaw = m[1] as string;
      const letter = letterRaw.toLowerCase() as MacroLetter;
      if (!letters.includes(letter)) {
        throw new SpfSyntaxError(
          `macro letter "${letterRaw}" not allowed ${where === 'domain' ? 'outside explanation text' : ''}`.trim(),
        );
      }
      const digitsText = m[2] as string;
      const digits = digitsText === '' ? 0 : Number(digitsText);
      if (digitsText !== '' && digits === 0) throw new SpfSyntaxError('macro digit transformer must be non-zero');
      const delimText = m[4] as string;
      if (lit !== '') {
        tokens.push({ kind: 'literal', text: lit });
        lit = '';
      }
      if (letter === 'p') usesP = true;
      tokens.push({
        kind: 'expand',
        letter,
        escape: letterRaw !== letter,
        digits,
        reverse: m[3] !== '',
        delimiters: delimText === '' ? null : new RegExp(`[${[...new Set(delimText)].map(escapeForClass).join('')}]`),
      });
      i = close + 1;
      continue;
    }
    // macro-literal: visible characters except "%"; explanation text may also hold spaces
    if (ch < 0x21 || ch > 0x7e) {
      if (!(ch === 0x20 && where === 'explanation')) {
        throw new SpfSyntaxError(`invalid character 0x${ch.toString(16)} in macro-string`);
      }
    }
    lit += text[i];
    i++;
  }
  if (lit !== '') tokens.push({ kind: 'literal', text: lit });
  const constant = tokens.every((t) => t.kind === 'literal');
  return {
    raw: text,
    tokens,
    constant,
    literal: constant ? tokens.map((t) => (t as { text: string }).text).join('') : '',
    usesP,
  };
}

const TOPLABEL_RE = /^(?:[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9])$/;

/**
 * Parses a domain-spec (RFC 7208 §7.1): a non-empty macro-string ending in a macro-expand or
 * in "." toplabel ["."].
 */
export function parseDomainSpec(text: string): MacroString {
  if (text === '') throw new SpfSyntaxError('empty domain-spec');
  const ms = parseMacroString(text, 'domain');
  // does the raw text end with a macro-expand ("%{...}", "%%", "%_", "%-")?
  if (text.endsWith('}') || endsWithEscape(text)) {
    const last = ms.tokens[ms.tokens.length - 1];
    if (text.endsWith('}') && last?.kind === 'expand') return ms;
    if (endsWithEscape(text)) return ms;
  }
  let tail = text.endsWith('.') ? text.slice(0, -1) : text;
  const dot = tail.lastIndexOf('.');
  if (dot < 0) throw new SpfSyntaxError(`domain-spec "${text}" lacks a top label`);
  tail = tail.slice(dot + 1);
  if (tail.includes('%') || !TOPLABEL_RE.test(tail)) throw new SpfSyntaxError(`invalid top label in "${text}"`);
  return ms;
}

/** Does the text end with "%%", "%_" or "%-" (counting preceding escaped percents)? */
function endsWithEscape(text: string): boolean {
  const last = text[text.length - 1];
  if (last !== '%' && last !== '_' && last !== '-') return false;
  // count the run of "%" before the last character
  let k = text.length - 2;
  let run = 0;
  while (k >= 0 && text[k] === '%') {
    run++;
    k--;
  }
  return run % 2 === 1;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** URL-escapes everything outside the unreserved set (RFC 3986), as RFC 7208 §7.3 asks. */
export function urlEscape(text: string): string {
  let out = '';
  for (const ch of text) {
    if (UNRESERVED.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function letterValue(letter: MacroLetter, v: MacroValues): string {
  switch (letter) {
    case 's':
      return v.sender;
    case 'l':
      return v.localPart;
    case 'o':
      return v.senderDomain;
    case 'd':
      return v.domain;
    case 'i':
      return v.ipDotted;
    case 'p':
      return v.validatedName ?? 'unknown';
    case 'h':
      return v.helo;
    case 'v':
      return v.ipVersion;
    case 'c':
      return v.ipReadable;
    case 'r':
      return v.receiver;
    case 't':
      return String(v.nowSeconds);
  }
}

/** Expands a parsed macro-string with the values of the current check. */
export function expandMacroString(ms: MacroString, v: MacroValues): string {
  if (ms.constant) return ms.literal;
  let out = '';
  for (const t of ms.tokens) {
    if (t.kind === 'literal') {
      out += t.text;
      continue;
    }
    let value = letterValue(t.letter, v);
    if (t.digits !== 0 || t.reverse || t.delimiters !== null) {
      let parts = value.split(t.delimiters ?? '.');
      if (t.reverse) parts = parts.reverse();
      if (t.digits !== 0 && t.digits < parts.length) parts = parts.slice(parts.length - t.digits);
      value = parts.join('.');
    }
    out += t.escape ? urlEscape(value) : value;
  }
  return out;
}

/**
 * Expands a domain-spec into a name to query: trailing dot removed, shortened from the left to
 * 253 octets (§7.3). Returns undefined when the result is not a name DNS can carry (empty
 * label, label over 63 octets, empty name).
 */
export function expandDomain(ms: MacroString, v: MacroValues): string | undefined {
  let name = expandMacroString(ms, v);
  if (name.endsWith('.')) name = name.slice(0, -1);
  while (name.length > 253) {
    const dot = name.indexOf('.');
    if (dot < 0) return undefined;
    name = name.slice(dot + 1);
  }
  return validDomainName(name) ? name : undefined;
}

/** Can the name be put in a DNS query (non-empty labels of at most 63 octets, 253 in all)? */
export function validDomainName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  let start = 0;
  for (;;) {
    const dot = name.indexOf('.', start);
    const end = dot < 0 ? name.length : dot;
    const len = end - start;
    if (len === 0 || len > 63) return false;
    if (dot < 0) return true;
    start = dot + 1;
  }
}

export { DELIMS as MACRO_DELIMITERS };
