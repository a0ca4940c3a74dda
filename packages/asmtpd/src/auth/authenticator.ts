/**
 * authenticator.ts — SMTP AUTH's backend: the AuthFile (config/auth-file.ts), re-read when it
 * changes (config/reloading-file.ts: at most one stat a second), and the password checked against
 * its hash (password-hash.ts).
 *
 *   createAuthFile(path, options) -> Authenticator { check(user, password) -> Promise<AuthCheck>,
 *                                                    checkCram(user, challenge, response) -> Promise<AuthCheck> }
 *
 * A user the file does not name fails as a wrong password does (the client hears the same 535).
 * SECURITY: the password is never logged or kept; a file that cannot be read keeps its last
 * contents (reloading-file.ts), and a bad line is skipped and reported, never a way in.
 */
import { parseAuthFile, type AuthTable } from '../config/auth-file.js';
import { createReloadingFile, type ReloadOptions } from '../config/reloading-file.js';
import { verifyCramMd5, verifyPassword } from './password-hash.js';

export type AuthCheck =
  | { kind: 'ok'; /** the name as the file writes it */ user: string }
  | { kind: 'failed'; reason: 'unknown-user' | 'wrong-password' };

/** what a backend may pass on about the client (DovecotAuth: rip, secured) */
export interface AuthContext {
  ip: string;
  /** inside TLS */
  secured: boolean;
}

export interface Authenticator {
  /** rejects only for a failure of the backend itself (DovecotAuth unreachable): not the client's */
  check(user: string, password: string, ctx?: AuthContext): Promise<AuthCheck>;
  /**
   * AUTH CRAM-MD5 (RFC 2195): the client's hex answer to our challenge. Only an AuthFile has it
   * (a `{CRAM-MD5}` or `{PLAIN}` entry; any other entry fails as a wrong password)
   */
  checkCram?(user: string, challenge: string, response: string): Promise<AuthCheck>;
}

export function createAuthFile(path: string, options: ReloadOptions = {}): Authenticator {
  const file = createReloadingFile<AuthTable>(path, parseAuthFile, new Map(), options);
  return {
    async check(user, password) {
      const entry = file.current().get(user.toLowerCase());
      if (!entry) return { kind: 'failed', reason: 'unknown-user' };
      return (await verifyPassword(entry, password))
        ? { kind: 'ok', user: entry.user }
        : { kind: 'failed', reason: 'wrong-password' };
    },
    async checkCram(user, challenge, response) {
      const entry = file.current().get(user.toLowerCase());
      if (!entry) return { kind: 'failed', reason: 'unknown-user' };
      return verifyCramMd5(entry, challenge, response)
        ? { kind: 'ok', user: entry.user }
        : { kind: 'failed', reason: 'wrong-password' };
    },
  };
}
