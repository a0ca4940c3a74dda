/**
 * mac-code.ts — the codes of macutil(1): expiring, MAC-signed address extensions (pure).
 *
 *   makeCode(key, expiresAt) -> code                16 characters a-z and 2-7
 *   checkCode(key, code, now) -> CodeCheck          valid | expired | invalid
 *   parseWhen(text, now) -> seconds | error         --expire's WHEN
 *   MAX_EXPIRY                                      the last second a code can name (2106-02-07)
 *
 * A code is the base32 (RFC 4648 alphabet, lower case, no padding) of 10 bytes: the expiry in
 * seconds since the epoch (32 bits, big-endian) and the first 6 bytes of
 * HMAC-SHA256(key, "macutil1" || expiry). Lower case because MTAs and people change the case of
 * local parts; checking accepts either case. 48 bits of MAC: a forger needs ~2^47 guesses, each
 * one an SMTP transaction. A code is genuine while now <= expiry (checked after the MAC, so an
 * expired code is only reported as such when it is genuine).
 *
 * WHEN: `+N` / `-N` with units s, m (minutes), h, d, w, combinable (`+1d12h`, a bare number is
 * seconds); an epoch time (digits); or an ISO 8601 date `YYYY-MM-DD` (midnight UTC) or date and
 * time `YYYY-MM-DDTHH:MM[:SS][Z|±HH:MM]` (local time without a zone).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const MAX_EXPIRY = 0xffffffff;
const MAC_BYTES = 6;
const CODE_LENGTH = 16;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const DOMAIN = Buffer.from('macutil1');

function base32(bytes: Buffer): string {
  let bits = 0,
    value = 0,
    out = '';
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xfff; // at most 4 bits carried + 8
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** The bytes of a base32 string (either case), or null if it has another character. */
function unbase32(text: string): Buffer | null {
  const out: number[] = [];
  let bits = 0,
    value = 0;
  for (const c of text.toLowerCase()) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) return null;
    value = ((value << 5) | v) & 0xfff; // at most 7 bits carried + 5
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function mac(key: Buffer, expiry: Buffer): Buffer {
  return createHmac('sha256', key).update(DOMAIN).update(expiry).digest().subarray(0, MAC_BYTES);
}

export function makeCode(key: Buffer, expiresAt: number): string {
  if (!Number.isInteger(expiresAt) || expiresAt < 0 || expiresAt > MAX_EXPIRY)
    throw new RangeError(`expiry ${expiresAt} is out of range`);
  const expiry = Buffer.alloc(4);
  expiry.writeUInt32BE(expiresAt);
  return base32(Buffer.concat([expiry, mac(key, expiry)]));
}

export type CodeCheck =
  | { kind: 'valid'; expiresAt: number }
  | { kind: 'expired'; expiresAt: number }
  | { kind: 'invalid'; why: string };

export function checkCode(key: Buffer, code: string, nowSeconds: number): CodeCheck {
  if (code.length !== CODE_LENGTH) return { kind: 'invalid', why: `not a code (${CODE_LENGTH} characters a-z, 2-7)` };
  const bytes = unbase32(code);
  if (bytes === null) return { kind: 'invalid', why: `not a code (${CODE_LENGTH} characters a-z, 2-7)` };
  const expiry = bytes.subarray(0, 4);
  if (!timingSafeEqual(bytes.subarray(4), mac(key, expiry))) return { kind: 'invalid', why: 'not a genuine code' };
  const expiresAt = expiry.readUInt32BE();
  return nowSeconds <= expiresAt ? { kind: 'valid', expiresAt } : { kind: 'expired', expiresAt };
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

export function parseWhen(text: string, nowSeconds: number): { kind: 'ok'; seconds: number } | { kind: 'error' } {
  let seconds: number | null = null;
  const relative = /^([+-])((?:\d{1,9}[smhdw])*(?:\d{1,9})?)$/i.exec(text);
  if (relative && relative[2] !== '') {
    let total = 0;
    for (const [, n, unit] of relative[2]!.matchAll(/(\d{1,9})([smhdw]?)/gi))
      total += Number(n) * UNIT_SECONDS[(unit || 's').toLowerCase()]!;
    seconds = nowSeconds + (relative[1] === '-' ? -total : total);
  } else if (/^\d{1,10}$/.test(text)) {
    seconds = Number(text);
  } else if (/^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d)?(Z|[+-]\d\d:\d\d)?)?$/.test(text)) {
    const ms = Date.parse(text);
    if (!Number.isNaN(ms)) seconds = Math.floor(ms / 1000);
  }
  if (seconds === null || seconds < 0 || seconds > MAX_EXPIRY) return { kind: 'error' };
  return { kind: 'ok', seconds };
}
