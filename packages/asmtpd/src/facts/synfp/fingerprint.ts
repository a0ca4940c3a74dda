/**
 * fingerprint.ts — the CLIENT_SYNFP string: a SYN written as the first five fields of a pf.os
 * line, `window:ttl:df:size:options` (spec asmtpd.md §4; avenger.md §5 synos).
 *
 *   formatFingerprint(fp) -> "65535:64:1:60:M1460,N,W0,N,N,T"
 *   formatOptions(options) -> "M1460,N,W0,N,N,T" ("." when there are none)
 *   parseFingerprint(text) -> Fingerprint | null      the inverse, for synos; concrete values only
 *   guessInitialTtl(observed) -> 32 | 64 | 128 | 255  the smallest one >= observed
 *   hopsFromTtl(observed) -> guessInitialTtl(observed) - observed
 *
 * The TTL written is the OBSERVED one, as the packet arrived: pf.os stores initial TTLs and its
 * matching rule takes the observed TTL ("can't be higher than the initial TTL, and shouldn't be
 * more than 40 hops lower"), so the string keeps everything needed to match it and to compute
 * the distance. Options: M<mss>, W<scale>, S (sackOK), T (timestamp) or T0 (TSval zero), N (nop),
 * E (end of list), ?<kind> (anything else), in packet order, comma-separated.
 */
import type { SynInfo, TcpOption } from './syn-packet.js';

/** The part of a SynInfo the fingerprint carries. */
export type Fingerprint = Pick<SynInfo, 'window' | 'ttl' | 'df' | 'totalLength' | 'options'>;

export function formatOption(o: TcpOption): string {
  switch (o.kind) {
    case 'M':
    case 'W':
      return `${o.kind}${o.value}`;
    case 'T':
      return o.zero ? 'T0' : 'T';
    case '?':
      return `?${o.code}`;
    default:
      return o.kind;
  }
}

export function formatOptions(options: readonly TcpOption[]): string {
  return options.length === 0 ? '.' : options.map(formatOption).join(',');
}

export function formatFingerprint(fp: Fingerprint): string {
  return `${fp.window}:${fp.ttl}:${fp.df}:${fp.totalLength}:${formatOptions(fp.options)}`;
}

const DIGITS = /^\d{1,5}$/;
const num = (s: string, max: number): number | null => (DIGITS.test(s) && Number(s) <= max ? Number(s) : null);

/** One option token of a fingerprint (concrete values only); null when it is not one. */
export function parseOption(token: string): TcpOption | null {
  const head = token[0];
  const rest = token.slice(1);
  if ((head === 'M' || head === 'm') && rest !== '') {
    const value = num(rest, 0xffff);
    return value === null ? null : { kind: 'M', value };
  }
  if ((head === 'W' || head === 'w') && rest !== '') {
    const value = num(rest, 0xff);
    return value === null ? null : { kind: 'W', value };
  }
  if (head === '?' && rest !== '') {
    const code = num(rest, 0xff);
    return code === null ? null : { kind: '?', code };
  }
  switch (token.toUpperCase()) {
    case 'S':
      return { kind: 'S' };
    case 'N':
      return { kind: 'N' };
    case 'E':
      return { kind: 'E' };
    case 'T':
      return { kind: 'T', zero: false };
    case 'T0':
      return { kind: 'T', zero: true };
  }
  return null;
}

/** Read a CLIENT_SYNFP string back; wildcards (`*`, `%N`, `SN`, `TN`) are not fingerprints. */
export function parseFingerprint(text: string): Fingerprint | null {
  const fields = text
    .trim()
    .split(':')
    .map((f) => f.trim());
  if (fields.length !== 5) return null;
  const [w, t, d, s, o] = fields as [string, string, string, string, string];
  const window = num(w, 0xffff),
    ttl = num(t, 255),
    totalLength = num(s, 0xffff);
  if (window === null || ttl === null || totalLength === null || (d !== '0' && d !== '1')) return null;
  const options: TcpOption[] = [];
  if (o !== '.') {
    for (const token of o.split(/\s*,\s*|\s+/)) {
      const opt = parseOption(token);
      if (opt === null) return null;
      options.push(opt);
    }
  }
  return { window, ttl, df: d === '1' ? 1 : 0, totalLength, options };
}

export function guessInitialTtl(observed: number): number {
  return observed <= 32 ? 32 : observed <= 64 ? 64 : observed <= 128 ? 128 : 255;
}

export function hopsFromTtl(observed: number): number {
  return guessInitialTtl(observed) - observed;
}
