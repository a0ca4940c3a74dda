/**
 * cram-md5.ts — the CRAM-MD5 answer (RFC 2195: HMAC-MD5 of the server's challenge, keyed with the
 * shared secret, in lower-case hex) from what an AuthFile may hold for it:
 *
 *   cramDigestFromSecret(secret, challenge) -> hex      a `{PLAIN}` entry (the secret itself)
 *   cramDigestFromContext(context, challenge) -> hex    a `{CRAM-MD5}` entry, Dovecot's scheme
 *   cramContext(secret) -> hex                          the `{CRAM-MD5}` form of a secret (as `doveadm pw -s CRAM-MD5`)
 *
 * Dovecot's CRAM-MD5 scheme (src/lib/hmac-cram-md5.c) keeps the two MD5 states HMAC reaches after
 * the key's outer and inner pads: 32 bytes, the outer state's words A B C D then the inner's, each
 * little-endian, as 64 hex digits. Such a state cannot be given to node:crypto's MD5, so this
 * module carries the MD5 compression function (RFC 1321) and finishes both hashes from the stored
 * states. It is not the password itself, but it lets anyone who reads it authenticate with
 * CRAM-MD5: an AuthFile with such entries is as secret as one with `{PLAIN}` ones.
 */
import { createHash, createHmac } from 'node:crypto';

const S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);
const INITIAL = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476] as const;

/** One 64-byte block into the state (RFC 1321 §3.4). */
function compress(state: number[], block: Buffer, at: number): void {
  let [a, b, c, d] = state as [number, number, number, number];
  for (let i = 0; i < 64; i++) {
    let f: number;
    let g: number;
    if (i < 16) [f, g] = [(b & c) | (~b & d), i];
    else if (i < 32) [f, g] = [(d & b) | (~d & c), (5 * i + 1) % 16];
    else if (i < 48) [f, g] = [b ^ c ^ d, (3 * i + 5) % 16];
    else [f, g] = [c ^ (b | ~d), (7 * i) % 16];
    const sum = (a + f + K[i]! + block.readUInt32LE(at + g * 4)) >>> 0;
    const s = S[(i >> 4) * 4 + (i % 4)]!;
    [a, d, c] = [d, c, b];
    b = (b + ((sum << s) | (sum >>> (32 - s)))) >>> 0;
  }
  state[0] = (state[0]! + a) >>> 0;
  state[1] = (state[1]! + b) >>> 0;
  state[2] = (state[2]! + c) >>> 0;
  state[3] = (state[3]! + d) >>> 0;
}

/** MD5 of (64 bytes already hashed into `state`) + data. */
function finishMd5(start: readonly number[], data: Buffer): Buffer {
  const state = [...start];
  const total = 64 + data.length;
  const padded = Buffer.alloc(Math.ceil((data.length + 9) / 64) * 64);
  data.copy(padded);
  padded[data.length] = 0x80;
  const bits = BigInt(total) * 8n;
  padded.writeBigUInt64LE(bits, padded.length - 8);
  for (let at = 0; at < padded.length; at += 64) compress(state, padded, at);
  const out = Buffer.alloc(16);
  state.forEach((w, i) => out.writeUInt32LE(w, i * 4));
  return out;
}

/** The HMAC key pads' states: [outer, inner]. */
function padStates(secret: Buffer): [number[], number[]] {
  // RFC 2104: a key longer than the block is hashed first
  let key = secret.length > 64 ? createHash('md5').update(secret).digest() : secret;
  key = Buffer.concat([key, Buffer.alloc(64 - key.length)]);
  const pad = (byte: number): number[] => {
    const state = [...INITIAL];
    compress(state, Buffer.from(key.map((k) => k ^ byte)), 0);
    return state;
  };
  return [pad(0x5c), pad(0x36)];
}

/** Dovecot's `{CRAM-MD5}` value of a secret: 64 hex digits. */
export function cramContext(secret: string): string {
  const [outer, inner] = padStates(Buffer.from(secret, 'utf8'));
  const out = Buffer.alloc(32);
  [...outer, ...inner].forEach((w, i) => out.writeUInt32LE(w, i * 4));
  return out.toString('hex');
}

/** The expected answer to `challenge` for a `{CRAM-MD5}` context (64 hex digits). */
export function cramDigestFromContext(context: string, challenge: string): string {
  const bytes = Buffer.from(context, 'hex');
  const words = (from: number): number[] => [0, 1, 2, 3].map((i) => bytes.readUInt32LE(from + i * 4));
  const innerDigest = finishMd5(words(16), Buffer.from(challenge, 'utf8'));
  return finishMd5(words(0), innerDigest).toString('hex');
}

/** The expected answer to `challenge` for the secret itself (a `{PLAIN}` entry). */
export function cramDigestFromSecret(secret: string, challenge: string): string {
  return createHmac('md5', secret).update(challenge).digest('hex');
}
