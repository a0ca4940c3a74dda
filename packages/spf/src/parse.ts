/*
 * parse.ts — an SPF record's text into typed terms (RFC 7208 §4.5, §4.6, §5, §6, §12 ABNF).
 *
 * Public: isSpfRecord(text), parseRecord(text) -> SpfRecord (throws SpfSyntaxError),
 *   parseTerms(text) for mechanisms without the version (SPFLocal, the spf script helper),
 *   Mechanism, Qualifier, SpfRecord.
 * Rules kept: terms are separated by one or more SP only (any other control or non-ASCII
 *   character is a syntax error, §3.1, §4.6.1); mechanism names are case-insensitive; "all",
 *   "include", "exists" take exactly their ABNF arguments; a and mx take dual-cidr-length
 *   (ip4 /0-32 and //0-128, no leading zeros); ip4 needs a strict dotted quad; ip6 an RFC 4291
 *   address; "redirect" and "exp" at most once each with a valid domain-spec; unknown modifiers
 *   need a valid name and macro-string and are otherwise ignored; a name that is neither a
 *   mechanism nor followed by "=" is a syntax error. The whole record is checked before any
 *   evaluation, so a syntax error anywhere gives permerror (§4.6).
 * Parsed records are immutable and cached by text (bounded), so a busy server parses a policy once.
 * Security: pure; bounded work per record (linear in its length).
 */
import { parseDomainSpec, parseMacroString, SpfSyntaxError, type MacroString } from './macro.js';
import { parseIp4Network, parseIp6Network } from './ip.js';

export type Qualifier = '+' | '-' | '~' | '?';

interface MechanismBase {
  readonly qualifier: Qualifier;
  /** the term as written (for Received-SPF's mechanism= and logs) */
  readonly text: string;
}
export type Mechanism =
  | (MechanismBase & { readonly kind: 'all' })
  | (MechanismBase & { readonly kind: 'include'; readonly domain: MacroString })
  | (MechanismBase & {
      readonly kind: 'a' | 'mx';
      readonly domain: MacroString | null;
      readonly cidr4: number;
      readonly cidr6: number;
    })
  | (MechanismBase & { readonly kind: 'ptr'; readonly domain: MacroString | null })
  | (MechanismBase & { readonly kind: 'ip4'; readonly network: number; readonly cidr: number })
  | (MechanismBase & { readonly kind: 'ip6'; readonly network: Uint32Array; readonly cidr: number })
  | (MechanismBase & { readonly kind: 'exists'; readonly domain: MacroString });

export interface SpfRecord {
  readonly text: string;
  readonly mechanisms: readonly Mechanism[];
  readonly redirect: MacroString | null;
  readonly exp: MacroString | null;
}

const VERSION_RE = /^v=spf1(?: |$)/i;

/** Is this TXT text an SPF version 1 record (§4.5: "v=spf1" followed by SP or the end)? */
export function isSpfRecord(text: string): boolean {
  return VERSION_RE.test(text);
}

const MODIFIER_NAME_RE = /^[A-Za-z][A-Za-z0-9\-_.]*$/;
const CIDR_RE = /^(0|[1-9][0-9]{0,2})$/;

function cidr(text: string, max: number): number {
  if (!CIDR_RE.test(text)) throw new SpfSyntaxError(`invalid CIDR length "/${text}"`);
  const n = Number(text);
  if (n > max) throw new SpfSyntaxError(`CIDR length /${n} over ${max}`);
  return n;
}

const DUAL_CIDR_RE = /(?:\/([0-9]+))?(?:\/\/([0-9]+))?$/;

function parseMechanism(term: string, qualifier: Qualifier, name: string, arg: string): Mechanism {
  const text = term;
  switch (name) {
    case 'all':
      if (arg !== '') throw new SpfSyntaxError(`"all" takes no argument: "${term}"`);
      return { kind: 'all', qualifier, text };
    case 'include':
    case 'exists': {
      if (!arg.startsWith(':')) throw new SpfSyntaxError(`"${name}" needs ":domain": "${term}"`);
      return { kind: name, qualifier, text, domain: parseDomainSpec(arg.slice(1)) };
    }
    case 'a':
    case 'mx': {
      const m = DUAL_CIDR_RE.exec(arg);
      let rest = arg;
      let cidr4 = 32;
      let cidr6 = 128;
      if (m && m[0] !== '') {
        rest = arg.slice(0, m.index);
        if (m[1] !== undefined) cidr4 = cidr(m[1], 32);
        if (m[2] !== undefined) cidr6 = cidr(m[2], 128);
      }
      let domain: MacroString | null = null;
      if (rest !== '') {
        if (!rest.startsWith(':')) throw new SpfSyntaxError(`bad argument in "${term}"`);
        domain = parseDomainSpec(rest.slice(1));
      }
      return { kind: name, qualifier, text, domain, cidr4, cidr6 };
    }
    case 'ptr': {
      if (arg === '') return { kind: 'ptr', qualifier, text, domain: null };
      if (!arg.startsWith(':')) throw new SpfSyntaxError(`bad argument in "${term}"`);
      return { kind: 'ptr', qualifier, text, domain: parseDomainSpec(arg.slice(1)) };
    }
    case 'ip4':
    case 'ip6': {
      if (!arg.startsWith(':')) throw new SpfSyntaxError(`"${name}" needs an address: "${term}"`);
      const body = arg.slice(1);
      const slash = body.indexOf('/');
      const addr = slash < 0 ? body : body.slice(0, slash);
      const len = slash < 0 ? undefined : body.slice(slash + 1);
      if (name === 'ip4') {
        const network = parseIp4Network(addr);
        if (network === undefined) throw new SpfSyntaxError(`invalid ip4 network in "${term}"`);
        return { kind: 'ip4', qualifier, text, network, cidr: len === undefined ? 32 : cidr(len, 32) };
      }
      const network = parseIp6Network(addr);
      if (network === undefined) throw new SpfSyntaxError(`invalid ip6 network in "${term}"`);
      return { kind: 'ip6', qualifier, text, network, cidr: len === undefined ? 128 : cidr(len, 128) };
    }
    default:
      throw new SpfSyntaxError(`unknown mechanism "${name}" in "${term}"`);
  }
}

const MECHANISMS = new Set(['all', 'include', 'a', 'mx', 'ptr', 'ip4', 'ip6', 'exists']);

interface Terms {
  mechanisms: Mechanism[];
  redirect: MacroString | null;
  exp: MacroString | null;
}

/** Parses space-separated terms (no version). Throws SpfSyntaxError. */
export function parseTerms(text: string): Terms {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new SpfSyntaxError(`invalid character 0x${c.toString(16)} in record`);
  }
  const out: Terms = { mechanisms: [], redirect: null, exp: null };
  let sawRedirect = false;
  let sawExp = false;
  for (const term of text.split(' ')) {
    if (term === '') continue;
    let q: Qualifier | null = null;
    const first = term[0];
    if (first === '+' || first === '-' || first === '~' || first === '?') q = first;
    const body = q === null ? term : term.slice(1);
    // the name runs to the first ":", "/" or "="
    let end = 0;
    while (end < body.length && body[end] !== ':' && body[end] !== '/' && body[end] !== '=') end++;
    const name = body.slice(0, end);
    const lower = name.toLowerCase();
    if (body[end] === '=' && q === null && MODIFIER_NAME_RE.test(name)) {
      const value = body.slice(end + 1);
      if (lower === 'redirect' || lower === 'exp') {
        if ((lower === 'redirect' && sawRedirect) || (lower === 'exp' && sawExp)) {
          throw new SpfSyntaxError(`"${lower}=" appears more than once`);
        }
        const spec = parseDomainSpec(value);
        if (lower === 'redirect') {
          out.redirect = spec;
          sawRedirect = true;
        } else {
          out.exp = spec;
          sawExp = true;
        }
      } else {
        parseMacroString(value, 'explanation'); // syntax only; unknown modifiers are ignored (§6)
      }
      continue;
    }
    if (!MECHANISMS.has(lower)) throw new SpfSyntaxError(`unknown term "${term}"`);
    out.mechanisms.push(parseMechanism(term, q ?? '+', lower, body.slice(end)));
  }
  return out;
}

const cache = new Map<string, SpfRecord | SpfSyntaxError>();
const CACHE_MAX = 2048;

/** Parses a whole record ("v=spf1 ..."). Throws SpfSyntaxError. Results are cached by text. */
export function parseRecord(text: string): SpfRecord {
  const hit = cache.get(text);
  if (hit !== undefined) {
    if (hit instanceof SpfSyntaxError) throw hit;
    return hit;
  }
  let result: SpfRecord | SpfSyntaxError;
  try {
    if (!isSpfRecord(text)) throw new SpfSyntaxError('not an SPF version 1 record');
    const t = parseTerms(text.slice(6));
    result = Object.freeze({ text, mechanisms: Object.freeze(t.mechanisms), redirect: t.redirect, exp: t.exp });
  } catch (err) {
    if (!(err instanceof SpfSyntaxError)) throw err;
    result = err;
  }
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(text, result);
  if (result instanceof SpfSyntaxError) throw result;
  return result;
}
