/**
 * relay/recipient-verifier — is this relay-domain recipient one the backend knows? The backend's
 * answer (relay/backend-verify.ts), remembered in the state database, one question at a time per
 * address (seeds.md §A; docs/decisions.md "Recipient verification").
 *
 *   createRecipientVerifier(options) → RecipientVerifier
 *     .verify(address, backends) → Verification     what RCPT answers, and RCPT_VERIFY
 *     .cached(address) → CachedVerification | null  the remembered answer (asmtpd --verify)
 *     .close()
 *
 * Verification.status (RCPT_VERIFY):
 *   valid / cached-valid       the backend said 2xx (now / within RcptVerifyValidTTL): reply null
 *   invalid / cached-invalid   the backend said 5xx (now / within RcptVerifyInvalidTTL): its reply, as is
 *   deferred                   the backend said 4xx: its reply, as is; never remembered
 *   tempfail                   no backend could be asked, RcptVerifyTempfail yes: 451 4.4.1
 *   unverified                 no backend could be asked, RcptVerifyTempfail no: accepted, reply null
 * A temporary failure is never remembered, and never turns into a permanent refusal.
 *
 * Concurrent verifications of one address (in one session or many) share one backend question:
 * the second waits for the first's answer (`shared: true`). The cache key is the address in lower
 * case. A state database that fails (full disk, SQLITE_BUSY past its timeout) is logged as
 * `store.error` and the verification goes on without it.
 */
import type { Logger } from '../log/logger.js';
import { REPLIES } from '../reply/catalogue.js';
import type { Reply } from '../reply/reply.js';
import type { CachedVerification, RcptVerifyCache } from '../store/state-db.js';
import type { Backend, BackendVerifier } from './backend-verify.js';
import { downstreamFailureReply } from './relay-replies.js';
import { metrics } from '../metrics/metrics.js';

export type VerifyStatus =
  | 'valid'
  | 'cached-valid'
  | 'invalid'
  | 'cached-invalid'
  | 'deferred'
  | 'tempfail'
  | 'unverified';

export interface Verification {
  status: VerifyStatus;
  /** null: accept (as far as the backend goes); else the client's RCPT reply */
  reply: Reply | null;
  /** the backend that answered (not for cached answers) */
  backend?: string;
  /** why no backend could be asked (tempfail, unverified), for the log */
  detail?: string;
  /** the cached entry's expiry (ms since the epoch), for cached answers */
  expires?: number;
  /** this call waited for another one's backend question */
  shared?: boolean;
}

export interface RecipientVerifierOptions {
  backends: BackendVerifier;
  /** the state database's cache; null: none (not remembered) */
  cache: () => RcptVerifyCache | null;
  validTtlMs: number;
  invalidTtlMs: number;
  /** RcptVerifyTempfail */
  tempfail: boolean;
  log: Logger;
  now?: () => number;
}

export interface RecipientVerifier {
  verify(address: string, backends: readonly Backend[]): Promise<Verification>;
  cached(address: string): CachedVerification | null;
  close(): Promise<void>;
}

export function createRecipientVerifier(o: RecipientVerifierOptions): RecipientVerifier {
  const now = o.now ?? Date.now;
  const inFlight = new Map<string, Promise<Verification>>();
  const guard = <T>(op: string, f: (c: RcptVerifyCache) => T, fallback: T): T => {
    try {
      const c = o.cache();
      return c ? f(c) : fallback;
    } catch (err) {
      o.log.warn('store.error', { op, error: err instanceof Error ? err.message : String(err) });
      return fallback;
    }
  };
  const cached = (key: string): CachedVerification | null =>
    guard('rcpt_verify_cache.get', (c) => c.get(key, now()) ?? null, null);

  async function ask(key: string, address: string, backends: readonly Backend[]): Promise<Verification> {
    const started = performance.now();
    const a = await o.backends.ask(backends, address);
    metrics.rcptVerifyBackend(a.kind, performance.now() - started);
    switch (a.kind) {
      case 'valid':
        if (o.validTtlMs > 0)
          guard(
            'rcpt_verify_cache.put',
            (c) => c.put(key, { valid: true, reply: '' }, now() + o.validTtlMs),
            undefined,
          );
        return { status: 'valid', reply: null, backend: a.backend };
      case 'invalid': {
        const reply = downstreamFailureReply(a.line);
        if (o.invalidTtlMs > 0)
          guard(
            'rcpt_verify_cache.put',
            (c) => c.put(key, { valid: false, reply: oneLine(a.line) }, now() + o.invalidTtlMs),
            undefined,
          );
        return { status: 'invalid', reply, backend: a.backend };
      }
      case 'deferred':
        return { status: 'deferred', reply: downstreamFailureReply(a.line), backend: a.backend };
      case 'unreachable': {
        const detail = a.tried.map((t) => `${t.backend}: ${t.reason}`).join('; ');
        return o.tempfail
          ? { status: 'tempfail', reply: REPLIES.recipientUnverifiable(detail), detail }
          : { status: 'unverified', reply: null, detail };
      }
    }
  }

  return {
    async verify(address, backends) {
      const key = address.toLowerCase();
      const hit = cached(key);
      metrics.rcptVerifyCache(hit !== null);
      if (hit)
        return hit.valid
          ? { status: 'cached-valid', reply: null, expires: hit.expires }
          : { status: 'cached-invalid', reply: downstreamFailureReply(hit.reply), expires: hit.expires };
      const pending = inFlight.get(key);
      if (pending) return { ...(await pending), shared: true };
      const p = ask(key, address, backends).finally(() => inFlight.delete(key));
      inFlight.set(key, p);
      return p;
    },
    cached: (address) => cached(address.toLowerCase()),
    close: () => o.backends.close(),
  };
}

/** "550-5.1.1 a\n550 5.1.1 b" → "550 5.1.1 a b": what is stored and given again from the cache */
function oneLine(raw: string): string {
  const lines = raw.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length <= 1) return raw.trim();
  const code = lines[0]!.slice(0, 3);
  const enhanced = /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\s/.exec(lines[0]!)?.[1];
  const texts = lines.map((l) => {
    const t = l.slice(4).trim();
    return enhanced && t.startsWith(`${enhanced} `) ? t.slice(enhanced.length + 1) : t;
  });
  return [code, enhanced, ...texts].filter(Boolean).join(' ');
}
