/**
 * verifiers.ts — the daemon's RelayDomain recipient verifier (relay/recipient-verifier.ts) over
 * the SQLite state database, and the record of recipients refused as unknown.
 *
 *   createVerifiers(db, log) -> { factory(config), recordUnknown(ip, address), close() }
 *     factory: one verifier per set of verification settings, kept across SIGHUPs that do not
 *              change them (its pooled backend sessions, its backoff state and the questions in
 *              flight stay); a changed set gets a new one and the old one's sessions are closed
 *              once the sessions that may still use it are done (a minute)
 *     recordUnknown: one row of unknown_rcpt per refused unknown recipient (with its BlockNetmask net); a store failure is
 *              logged (store.error) and ignored. Rows older than a day are purged once an hour.
 *
 * The database is opened at first use (after the daemon gave up root), shared with the bounce probe.
 */
import type { Config } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { StateDb } from '../store/state-db.js';
import { createBackendVerifier } from '../relay/backend-verify.js';
import { hasRelayDomains } from '../recipients/relay-domains.js';
import { createRecipientVerifier, type RecipientVerifier } from '../relay/recipient-verifier.js';

const DAY_MS = 86_400_000;
const PURGE_EVERY_MS = 3_600_000;

export interface Verifiers {
  factory(config: Config): RecipientVerifier | null;
  recordUnknown(ip: string, address: string, net?: string): void;
  close(): Promise<void>;
}

function settingsOf(c: Config): string {
  return JSON.stringify([
    c.hostname,
    c.rcptVerifyTimeoutMs,
    c.rcptVerifyBackoffMs,
    c.rcptVerifyConnections,
    c.rcptVerifyValidTtlMs,
    c.rcptVerifyInvalidTtlMs,
    c.rcptVerifyTempfail,
  ]);
}

export function createVerifiers(db: () => StateDb, log: Logger): Verifiers {
  let current: { key: string; verifier: RecipientVerifier } | null = null;
  let lastPurge = 0;
  const guard = (op: string, f: () => void): void => {
    try {
      f();
    } catch (err) {
      log.warn('store.error', { op, error: err instanceof Error ? err.message : String(err) });
    }
  };
  return {
    factory(config) {
      if (!hasRelayDomains(config)) return null;
      const key = settingsOf(config);
      if (current?.key === key) return current.verifier;
      const retired = current?.verifier;
      if (retired) setTimeout(() => void retired.close(), 60_000).unref();
      const verifier = createRecipientVerifier({
        backends: createBackendVerifier({
          clientName: config.hostname,
          timeoutMs: config.rcptVerifyTimeoutMs,
          backoffMs: config.rcptVerifyBackoffMs,
          maxConnections: config.rcptVerifyConnections,
        }),
        cache: () => db().rcptVerifyCache,
        validTtlMs: config.rcptVerifyValidTtlMs,
        invalidTtlMs: config.rcptVerifyInvalidTtlMs,
        tempfail: config.rcptVerifyTempfail,
        log,
      });
      current = { key, verifier };
      return verifier;
    },
    recordUnknown(ip, address, net = ip) {
      const now = Date.now();
      guard('unknown_rcpt.record', () => db().unknownRecipients.record(ip, address, now, net));
      if (now - lastPurge > PURGE_EVERY_MS) {
        lastPurge = now;
        guard('unknown_rcpt.purge', () => db().unknownRecipients.purgeBefore(now - DAY_MS));
        guard('rcpt_verify_cache.purge', () => db().rcptVerifyCache.purgeExpired(now));
      }
    },
    async close() {
      await current?.verifier.close();
    },
  };
}
