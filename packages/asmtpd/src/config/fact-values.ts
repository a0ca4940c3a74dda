/**
 * Value parsers of the DNS and Facts directives (spec asmtpd.md §3): DNSServer, RBL, SPFLocal,
 * RBLThreshold. Same contract as values.ts: pure, error messages complete
 * `Directive: bad value "x": …`.
 *
 * Public: parseDnsServer, parseRblLine, parseScore, parseSpfLocal.
 */
import { isIP } from 'node:net';
import { parseLocalPolicy } from '@asmtpd/spf';
import type { DnsServer, RblList } from './types.js';
import { parseDomainName, parsePort, type Parsed } from './values.js';

const fail = <T>(message: string): Parsed<T> => ({ kind: 'error', message });

/** `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port`. */
export function parseDnsServer(text: string): Parsed<DnsServer> {
  const expected = 'expected ip, ip:port or [ipv6]:port';
  let host = text;
  let portText: string | null = null;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) {
    host = bracket[1] ?? '';
    portText = bracket[2] ?? null;
    if (isIP(host) !== 6) return fail(expected);
  } else if (isIP(text) === 0) {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return fail(expected);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (isIP(host) !== 4) return fail(expected);
  }
  let port: number | null = null;
  if (portText !== null) {
    const p = parsePort(portText);
    if (p.kind === 'error') return p;
    port = p.value;
  }
  return { kind: 'ok', value: { host, port, text } };
}

/** A score: a number from 0 to 1000 (fractions allowed). */
export function parseScore(text: string): Parsed<number> {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1000) return fail('expected a number from 0 to 1000');
  return { kind: 'ok', value: n };
}

/** `RBL zone [score [reason…]]`: the reason is the rest of the line. */
export function parseRblLine(words: readonly string[]): Parsed<RblList> {
  const [zoneWord, scoreWord, ...reason] = words;
  if (zoneWord === undefined) return fail('expected a DNSBL zone [score [reason]]');
  const zone = parseDomainName(zoneWord);
  if (zone.kind === 'error') return zone;
  let score = 1;
  if (scoreWord !== undefined) {
    const s = parseScore(scoreWord);
    if (s.kind === 'error') return s;
    score = s.value;
  }
  return { kind: 'ok', value: { zone: zone.value, score, reason: reason.length > 0 ? reason.join(' ') : null } };
}

/** SPFLocal: SPF mechanisms (no modifiers), checked with the SPF parser. */
export function parseSpfLocal(words: readonly string[]): Parsed<string> {
  const text = words.join(' ');
  if (text === '') return fail('expected SPF mechanisms');
  try {
    parseLocalPolicy(text);
  } catch (err) {
    return fail(`not valid SPF mechanisms: ${(err as Error).message}`);
  }
  return { kind: 'ok', value: text };
}
