/**
 * pfos.ts — the pf.os SYN fingerprint database (p0f v2 format, OpenBSD pf.os; spec asmtpd.md §3
 * SynFPDB, §4 CLIENT_SYNOS; avenger.md §5 synos) and the OS guess for a fingerprint.
 *
 *   DEFAULT_PFOS_PATH                          the copy shipped in packages/asmtpd/share/pf.os (2010)
 *   DEFAULT_MODERN_PATH                        share/pf.os.modern: today's systems, in the same syntax
 *   DEFAULT_SYNFP_DBS                          [pf.os.modern, pf.os]: what is read when none is named
 *   parsePfos(text, file?) -> PfosDb           never throws: bad lines land in db.errors (file, line, message)
 *   readPfosFile(path?) -> PfosDb              reads the file (throws only the fs error)
 *   concatPfos(dbs) -> PfosDb                  several databases as one: their lines in that order
 *   readPfosFiles(paths) -> PfosDb             readPfosFile of each, concatenated (throws the first fs error)
 *   matchFingerprint(db, fp, {mtu}?) -> OsMatch | null   the guess
 *   matchAll(db, fp, {mtu}?) -> OsMatch[]      every matching line: specific ones in file order, then generic
 *   describeMatch(match) -> "FreeBSD 4.8-5.2 (or MacOS X)", "… (generic)", or "unknown"
 *
 * Line format `window:ttl:df:size:options:OS:version:subtype:description`; `#` starts a comment.
 * Matching follows OpenBSD pf_osfp_find (what Mail Avenger's synos ships with):
 *   window   N exact; `*` any; `%N` a multiple of N; `SN` N × MSS; `TN` N × (MSS + 40). SN and TN
 *            also accept N × (mtu - 40) and N × mtu (pf's "smart" 1460/1500 for NAT boxes that
 *            rewrite the MSS); mtu defaults to 1500, 0 disables that (synos --mtu). No MSS option:
 *            SN/TN never match.
 *   ttl      the line's initial TTL must be >= the observed TTL and at most 40 more (distance rule)
 *   df, size exact (`*`/`%N` allowed for size). An IPv6 SYN (DF 1, 20 bytes longer: pf.os lists
 *            IPv4 sizes) also matches a line whose size is 20 less, whatever its DF, as pf does.
 *   options  same options in the same order; M and W values exact, `*` or `%N`; T only matches a
 *            non-zero timestamp, T0 a zero one. E in the packet is ignored unless the line lists E
 *            (pf stops at EOL without recording it).
 * OS names: `@` = generic (tried only when no specific line matches), `*` = no distance reported
 * (scanners with bogus TTLs). distance = the line's TTL - the observed TTL.
 * Several databases are matched as one file made of theirs in order (concatPfos): a specific line
 * of any of them wins over every generic one; among specific (then generic) lines the first wins.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Fingerprint } from './fingerprint.js';

export const DEFAULT_PFOS_PATH: string = fileURLToPath(new URL('../../../share/pf.os', import.meta.url));
export const DEFAULT_MODERN_PATH: string = fileURLToPath(new URL('../../../share/pf.os.modern', import.meta.url));
/** Today's systems first, so that their lines win over a 2010 line that happens to match. */
export const DEFAULT_SYNFP_DBS: readonly string[] = [DEFAULT_MODERN_PATH, DEFAULT_PFOS_PATH];
export const MAX_TTL_DISTANCE = 40;
export const DEFAULT_MTU = 1500;

export type NumSpec = { kind: 'any' } | { kind: 'eq'; value: number } | { kind: 'mod'; value: number };
export type WindowSpec = NumSpec | { kind: 'mss'; value: number } | { kind: 'mtu'; value: number };
export type OptionSpec =
  | { kind: 'M' | 'W'; value: NumSpec }
  | { kind: 'T'; zero: boolean }
  | { kind: 'S' | 'N' | 'E' }
  | { kind: '?'; code: number };

export interface PfosSignature {
  /** the database it comes from ('' when parsed from a string without a name) */
  file: string;
  line: number;
  /** the line as written (comment and surrounding blanks removed) */
  text: string;
  window: WindowSpec;
  ttl: number;
  df: 0 | 1;
  size: NumSpec;
  options: OptionSpec[];
  os: string;
  version: string;
  subtype: string;
  details: string;
  generic: boolean;
  noDistance: boolean;
}

export interface PfosDb {
  signatures: PfosSignature[];
  errors: { file: string; line: number; message: string }[];
}

export interface OsMatch {
  os: string;
  version: string;
  subtype: string;
  details: string;
  generic: boolean;
  /** hops between the client and us; null for `*` lines */
  distance: number | null;
  signature: PfosSignature;
}

export interface MatchOptions {
  /** hard-coded MTU tried for SN/TN windows besides the MSS-derived one; 0 = MSS only */
  mtu?: number;
}

export function readPfosFile(path: string = DEFAULT_PFOS_PATH): PfosDb {
  return parsePfos(readFileSync(path, 'utf8'), path);
}

export function readPfosFiles(paths: readonly string[]): PfosDb {
  return concatPfos(paths.map((p) => readPfosFile(p)));
}

export function concatPfos(dbs: readonly PfosDb[]): PfosDb {
  return { signatures: dbs.flatMap((db) => db.signatures), errors: dbs.flatMap((db) => db.errors) };
}

export function parsePfos(text: string, file = ''): PfosDb {
  const db: PfosDb = { signatures: [], errors: [] };
  text.split(/\r?\n/).forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const body = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (body === '') return;
    const sig = parseLine(body, i + 1, file);
    if (typeof sig === 'string') db.errors.push({ file, line: i + 1, message: sig });
    else db.signatures.push(sig);
  });
  return db;
}

const digits = (s: string, max: number): number | null => (/^\d{1,5}$/.test(s) && Number(s) <= max ? Number(s) : null);

/** `*`, `%N` (N > 0) or N; a string is the complaint. */
function numSpec(s: string, max: number, what: string): NumSpec | string {
  if (s === '*') return { kind: 'any' };
  const mod = s.startsWith('%');
  const value = digits(mod ? s.slice(1) : s, max);
  if (value === null || (mod && value === 0)) return `bad ${what} "${s}"`;
  return mod ? { kind: 'mod', value } : { kind: 'eq', value };
}

function windowSpec(s: string): WindowSpec | string {
  if (s.startsWith('S') || s.startsWith('T')) {
    const value = digits(s.slice(1), 0xffff);
    return value === null ? `bad window "${s}"` : { kind: s.startsWith('S') ? 'mss' : 'mtu', value };
  }
  return numSpec(s, 0xffff, 'window');
}

function optionSpec(token: string): OptionSpec | string {
  const head = token[0]?.toUpperCase();
  if ((head === 'M' || head === 'W') && token.length > 1) {
    const value = numSpec(token.slice(1), head === 'M' ? 0xffff : 0xff, `${head} option`);
    return typeof value === 'string' ? value : { kind: head, value };
  }
  if (head === '?' && token.length > 1) {
    const code = digits(token.slice(1), 0xff);
    return code === null ? `bad option "${token}"` : { kind: '?', code };
  }
  switch (token.toUpperCase()) {
    case 'S':
    case 'N':
    case 'E':
      return { kind: token.toUpperCase() as 'S' | 'N' | 'E' };
    case 'T':
      return { kind: 'T', zero: false };
    case 'T0':
      return { kind: 'T', zero: true };
  }
  return `unknown option "${token}"`;
}

function parseLine(body: string, line: number, file: string): PfosSignature | string {
  const f = body.split(':').map((x) => x.trim());
  if (f.length !== 9) return `expected 9 colon-separated fields, found ${f.length}`;
  const [w, t, d, s, o, osField, version, subtype, details] = f as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const window = windowSpec(w);
  if (typeof window === 'string') return window;
  const ttl = digits(t, 255);
  if (ttl === null) return `bad ttl "${t}"`;
  if (d !== '0' && d !== '1') return `bad df "${d}" (0 or 1)`;
  const size = numSpec(s, 0xffff, 'size');
  if (typeof size === 'string') return size;
  const options: OptionSpec[] = [];
  if (o !== '.') {
    for (const token of o.split(/\s*,\s*|\s+/)) {
      const spec = optionSpec(token);
      if (typeof spec === 'string') return spec;
      options.push(spec);
    }
  }
  const generic = osField.startsWith('@'),
    noDistance = osField.startsWith('*');
  const os = generic || noDistance ? osField.slice(1) : osField;
  if (os === '') return 'empty OS name';
  if (details === '') return 'empty description';
  return {
    file,
    line,
    text: body,
    window,
    ttl,
    df: d === '1' ? 1 : 0,
    size,
    options,
    os,
    version,
    subtype,
    details,
    generic,
    noDistance,
  };
}

const numMatches = (spec: NumSpec, v: number): boolean =>
  spec.kind === 'any' || (spec.kind === 'eq' ? v === spec.value : v % spec.value === 0);

/** window = n × unit for the unit from the MSS or, failing that, the hard-coded one. */
const multiple = (win: number, n: number, units: number[]): boolean => units.some((u) => u > 0 && win === n * u);

function windowMatches(spec: WindowSpec, win: number, mss: number, mtu: number): boolean {
  if (spec.kind === 'mss') return mss > 0 && multiple(win, spec.value, [mss, mtu - 40]);
  if (spec.kind === 'mtu') return mss > 0 && multiple(win, spec.value, [mss + 40, mtu]);
  return numMatches(spec, win);
}

function optionsMatch(specs: readonly OptionSpec[], fp: Fingerprint): boolean {
  const seen = specs.some((s) => s.kind === 'E') ? fp.options : fp.options.filter((o) => o.kind !== 'E');
  if (seen.length !== specs.length) return false;
  return specs.every((spec, i) => {
    const o = seen[i]!;
    if (spec.kind !== o.kind) return false;
    if (spec.kind === 'M' || spec.kind === 'W') return numMatches(spec.value, (o as { value: number }).value);
    if (spec.kind === 'T') return spec.zero === (o as { zero: boolean }).zero;
    if (spec.kind === '?') return spec.code === (o as { code: number }).code;
    return true;
  });
}

export function signatureMatches(sig: PfosSignature, fp: Fingerprint, mtu: number = DEFAULT_MTU): boolean {
  if (sig.ttl < fp.ttl || sig.ttl - fp.ttl > MAX_TTL_DISTANCE) return false;
  const v4 = fp.df === sig.df && numMatches(sig.size, fp.totalLength);
  const v6 = fp.df === 1 && fp.totalLength >= 20 && numMatches(sig.size, fp.totalLength - 20);
  if (!v4 && !v6) return false;
  if (!optionsMatch(sig.options, fp)) return false;
  const mssOption = fp.options.find((o) => o.kind === 'M');
  const mss = mssOption?.kind === 'M' ? mssOption.value : 0;
  return windowMatches(sig.window, fp.window, mss, mtu);
}

export function matchAll(db: PfosDb, fp: Fingerprint, opts: MatchOptions = {}): OsMatch[] {
  const mtu = opts.mtu ?? DEFAULT_MTU;
  const hits = db.signatures.filter((sig) => signatureMatches(sig, fp, mtu));
  return [...hits.filter((s) => !s.generic), ...hits.filter((s) => s.generic)].map((sig) => ({
    os: sig.os,
    version: sig.version,
    subtype: sig.subtype,
    details: sig.details,
    generic: sig.generic,
    distance: sig.noDistance ? null : sig.ttl - fp.ttl,
    signature: sig,
  }));
}

export function matchFingerprint(db: PfosDb, fp: Fingerprint, opts: MatchOptions = {}): OsMatch | null {
  return matchAll(db, fp, opts)[0] ?? null;
}

/** The one-line OS guess (CLIENT_SYNOS, synos): the line's description, `unknown` without a match. */
export function describeMatch(match: OsMatch | null): string {
  if (match === null) return 'unknown';
  return match.generic ? `${match.details} (generic)` : match.details;
}
