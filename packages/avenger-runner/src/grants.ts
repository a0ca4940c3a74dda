/*
 * grants — body tests the runner itself agreed to run.
 *
 * SUMMARY
 *   When an rcpt script decides `bodytest COMMAND ARG…`, the runner issues a token bound to the
 *   account the script ran as, that exact argv and the script's environment. After DATA the
 *   daemon names the token (and a spool file); it cannot name a command, a user or an
 *   environment. A token stays valid for TOKEN_TTL_MS (a session may send several messages on
 *   one remembered decision); at most MAX_GRANTS are kept, the oldest dropped first.
 *
 * PUBLIC
 *   class BodyTestGrants: issue(grant) → token, find(token) → grant | null
 *   BodyTestGrant, TOKEN_TTL_MS, MAX_GRANTS
 */
import { randomBytes } from 'node:crypto';
import type { ChildCredentials } from './spawner.js';

export const TOKEN_TTL_MS = 24 * 60 * 60_000;
export const MAX_GRANTS = 50_000;

export interface BodyTestGrant {
  /** who runs it: the account whose rcpt script asked for it */
  user: string;
  credentials: ChildCredentials;
  home: string;
  argv: string[];
  /** the rcpt script's environment, as the runner built it */
  env: Record<string, string>;
}

export class BodyTestGrants {
  private readonly grants = new Map<string, { grant: BodyTestGrant; expiresAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  issue(grant: BodyTestGrant): string {
    const token = randomBytes(16).toString('hex');
    this.grants.set(token, { grant, expiresAt: this.now() + TOKEN_TTL_MS });
    while (this.grants.size > MAX_GRANTS) this.grants.delete(this.grants.keys().next().value as string);
    return token;
  }

  find(token: string): BodyTestGrant | null {
    const hit = this.grants.get(token);
    if (hit === undefined) return null;
    if (hit.expiresAt <= this.now()) {
      this.grants.delete(token);
      return null;
    }
    return hit.grant;
  }
}
