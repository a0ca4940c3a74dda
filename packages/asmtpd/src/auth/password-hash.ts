/**
 * password-hash.ts — does a password match an AuthFile hash? The only importer of the hash
 * libraries, one per family, each checked against hashes made by Dovecot's `doveadm pw`
 * (password-hash.test.ts):
 *
 *   verifyPassword(entry, password) -> Promise<boolean>      never throws: a broken hash is false
 *
 *   SHA512-CRYPT ($6$)           unixcrypt (crypt(3) SHA-crypt, plain TypeScript on node:crypto)
 *   BLF-CRYPT ($2y$ $2b$ $2a$)   hash-wasm bcryptVerify (WebAssembly, no native build)
 *   ARGON2ID, ARGON2I            hash-wasm argon2Verify
 *
 * hash-wasm computes in WebAssembly on the main thread: one ARGON2ID verification with Dovecot's
 * default cost (m=64 MiB, t=3) takes some tens of milliseconds; bcrypt's cost is in the hash.
 * SECURITY: the password is passed to the library and dropped; it is never logged or kept.
 */
import { argon2Verify, bcryptVerify } from 'hash-wasm';
import { verify as shaCryptVerify } from 'unixcrypt';
import { timingSafeEqual } from 'node:crypto';
import type { AuthEntry } from '../config/auth-file.js';
import { cramContext, cramDigestFromContext, cramDigestFromSecret } from './cram-md5.js';

/** Equal strings, compared in constant time for their length. */
function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Does `response` (lower-case hex, the client's) answer `challenge` for this entry? */
export function verifyCramMd5(entry: Pick<AuthEntry, 'kind' | 'hash'>, challenge: string, response: string): boolean {
  switch (entry.kind) {
    case 'plain':
      return sameText(cramDigestFromSecret(entry.hash, challenge), response.toLowerCase());
    case 'cram-md5':
      return sameText(cramDigestFromContext(entry.hash, challenge), response.toLowerCase());
    default:
      return false;
  }
}

export async function verifyPassword(entry: Pick<AuthEntry, 'kind' | 'hash'>, password: string): Promise<boolean> {
  try {
    switch (entry.kind) {
      case 'sha512-crypt':
        return shaCryptVerify(password, entry.hash);
      case 'bcrypt':
        return await bcryptVerify({ password, hash: entry.hash });
      case 'argon2':
        return await argon2Verify({ password, hash: entry.hash });
      case 'cram-md5':
        return sameText(cramContext(password), entry.hash.toLowerCase());
      case 'plain':
        return sameText(password, entry.hash);
    }
  } catch {
    return false;
  }
}
