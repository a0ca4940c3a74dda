/**
 * relay/backend-verify — asking a relay domain's backend whether a recipient exists (seeds.md §A,
 * the "rq" and "scam-backscatter" seeds): `MAIL FROM:<>` then `RCPT TO:<address>` on a session
 * kept open and reused across verifications, sessions and clients; never DATA.
 *
 *   createBackendVerifier(options) → BackendVerifier
 *     .ask(backends, address) → BackendAnswer     the first backend that can be asked answers
 *     .stats()                                    sessions opened so far, per backend (diagnostics, tests)
 *     .close()                                    QUIT the idle sessions
 *
 * Answers: the backend's 2xx to RCPT → valid; its 5xx → invalid (the line, passed to the client as
 * is); its 4xx (to MAIL or RCPT) → deferred (the line; not the backend's fault to skip it). A backend
 * that cannot be asked — refused or timed-out connection, closed or refused greeting, a session lost
 * mid-verification — is *down*: the next backend of the list (the fallbacks) is asked, and no
 * connection goes to it for backoffMs (no connection storm while it is down: during the backoff it
 * is skipped without a try). None could be asked → unreachable, with each backend's reason.
 *
 * Sessions (relay/connection-pool.ts, one pool per backend, at most maxConnections each; a
 * verification waits up to timeoutMs for a free one): EHLO at the opening, one `MAIL FROM:<>`
 * transaction per session, then one RCPT per verification — no RSET between verifications,
 * because Postfix counts RSET as a junk command (smtpd_junk_command_limit, 100) and then as an
 * error. Every refused RCPT is an error for Postfix too (smtpd_soft_error_limit 10: each further
 * reply is delayed by a second; smtpd_hard_error_limit 20: disconnect), so a session is retired
 * (QUIT) after MAX_REFUSALS refusals or MAX_RCPTS recipients (smtpd_recipient_limit is 1000).
 * A reused session that turns out dead (or says 421) is replaced once by a fresh one.
 * The session is nodemailer's, through relay/downstream-connection.ts (command(): its reply
 * parsing and RcptVerifyTimeout on each reply).
 */
import { ConnectionPool } from './connection-pool.js';
import { openDownstream, type DownstreamConnection, type DownstreamFailure } from './downstream-connection.js';

/** refusals (4xx/5xx to RCPT) a session takes before it is retired, below Postfix's soft error limit */
export const MAX_REFUSALS = 8;
/** recipients a session asks before it is retired, below Postfix's smtpd_recipient_limit */
export const MAX_RCPTS = 500;
const IDLE_MS = 5000;

export interface Backend {
  host: string;
  port: number;
}

export type BackendAnswer =
  | { kind: 'valid'; backend: string; line: string }
  | { kind: 'invalid'; backend: string; line: string }
  | { kind: 'deferred'; backend: string; line: string }
  | { kind: 'unreachable'; tried: { backend: string; reason: string }[] };

export interface BackendVerifierOptions {
  /** our name in EHLO (Hostname) */
  clientName: string;
  /** connect, greeting, each reply (RcptVerifyTimeout) */
  timeoutMs: number;
  /** RcptVerifyBackoff */
  backoffMs: number;
  /** sessions at most per backend (RcptVerifyConnections) */
  maxConnections: number;
  now?: () => number;
}

export interface BackendVerifier {
  ask(backends: readonly Backend[], address: string): Promise<BackendAnswer>;
  stats(): Record<string, { opened: number; downUntil: number }>;
  close(): Promise<void>;
}

export function backendName(b: Backend): string {
  return `${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}`;
}

interface Usage {
  inTransaction: boolean;
  rcpts: number;
  refusals: number;
}

type Attempt =
  | { kind: 'answer'; answer: Exclude<BackendAnswer, { kind: 'unreachable' }> }
  | { kind: 'down'; reason: string; backoff: boolean };

class BackendSessions {
  readonly name: string;
  downUntil = 0;
  opened = 0;
  private readonly pool: ConnectionPool<DownstreamConnection, DownstreamFailure>;
  private readonly usage = new WeakMap<DownstreamConnection, Usage>();

  constructor(
    backend: Backend,
    private readonly o: BackendVerifierOptions,
  ) {
    this.name = backendName(backend);
    this.pool = new ConnectionPool<DownstreamConnection, DownstreamFailure>(
      async () => {
        // waiters of a backend that just went down do not connect again: they fail at once
        if (this.isDown()) return { kind: 'failed', failure: { kind: 'unreachable', reason: 'down (backoff)' } };
        this.opened++;
        return openDownstream({
          endpoint: { kind: 'tcp', host: backend.host, port: backend.port },
          lmtp: false,
          clientName: o.clientName,
          timeoutMs: o.timeoutMs,
        });
      },
      { maxConnections: o.maxConnections, maxMessagesPerConnection: Number.MAX_SAFE_INTEGER, idleMs: IDLE_MS },
      { kind: 'unreachable', reason: 'verifier is shutting down' },
      { kind: 'unreachable', reason: `all ${o.maxConnections} sessions busy for ${o.timeoutMs} ms` },
    );
  }

  isDown(): boolean {
    return this.now() < this.downUntil;
  }

  private markDown(): void {
    if (this.o.backoffMs > 0) this.downUntil = Math.max(this.downUntil, this.now() + this.o.backoffMs);
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  async verify(address: string): Promise<Attempt> {
    for (let attempt = 0; ; attempt++) {
      const acquired = await this.pool.acquire({ fresh: attempt > 0, waitMs: this.o.timeoutMs });
      if (acquired.kind === 'failed') {
        const busy = acquired.failure.kind === 'unreachable' && acquired.failure.reason.startsWith('all ');
        if (!busy) this.markDown();
        return { kind: 'down', reason: failureText(acquired.failure), backoff: !busy };
      }
      const c = acquired.connection;
      const use = this.usage.get(c) ?? { inTransaction: false, rcpts: 0, refusals: 0 };
      this.usage.set(c, use);
      const step = await this.step(c, use, address);
      if (step.kind === 'unusable') {
        this.pool.release(c, false);
        return { kind: 'down', reason: step.reason, backoff: false };
      }
      if (step.kind === 'broken') {
        c.destroy();
        this.pool.release(c, false);
        // a session that died while idle (the backend's own idle timeout): once more on a fresh one
        if (acquired.reused && attempt === 0) continue;
        this.markDown();
        return { kind: 'down', reason: step.reason, backoff: true };
      }
      const answer = step.answer;
      if (answer.kind !== 'valid') use.refusals++;
      const keep = c.alive && use.refusals < MAX_REFUSALS && use.rcpts < MAX_RCPTS;
      this.pool.release(c, keep);
      return { kind: 'answer', answer };
    }
  }

  private async step(
    c: DownstreamConnection,
    use: Usage,
    address: string,
  ): Promise<
    | { kind: 'answer'; answer: Exclude<BackendAnswer, { kind: 'unreachable' }> }
    | { kind: 'broken'; reason: string }
    | { kind: 'unusable'; reason: string }
  > {
    if (!use.inTransaction) {
      const mail = await c.command('MAIL FROM:<>');
      if (mail.kind === 'failed') return { kind: 'broken', reason: failureText(mail.failure) };
      if (/^421/.test(mail.line)) return { kind: 'broken', reason: firstLine(mail.line) };
      // a backend that refuses the null sender cannot verify anything: as if it could not be asked
      // (the fallback, then RcptVerifyTempfail), never an invalid recipient; no backoff (it answers)
      if (!/^2/.test(mail.line)) return { kind: 'unusable', reason: `MAIL FROM:<> refused: ${firstLine(mail.line)}` };
      use.inTransaction = true;
    }
    const rcpt = await c.command(`RCPT TO:<${address}>`);
    if (rcpt.kind === 'failed') return { kind: 'broken', reason: failureText(rcpt.failure) };
    if (/^421/.test(rcpt.line)) return { kind: 'broken', reason: firstLine(rcpt.line) };
    // Postfix delays a refusal of the sender to RCPT (smtpd_delay_reject yes, its default): a 5xx
    // about the null sender says nothing about the recipient — the backend cannot verify
    if (/^5/.test(rcpt.line) && refusesSender(rcpt.line))
      return { kind: 'unusable', reason: `MAIL FROM:<> refused: ${firstLine(rcpt.line)}` };
    use.rcpts++;
    const kind = /^2/.test(rcpt.line) ? 'valid' : /^5/.test(rcpt.line) ? 'invalid' : 'deferred';
    return { kind: 'answer', answer: { kind, backend: this.name, line: rcpt.line.trim() } };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * a RCPT refusal that is about the sender, not the recipient: the enhanced status of a bad
 * sender address (X.1.7, X.1.8), Postfix's "Sender address rejected", or a text about `<>` itself
 */
export function refusesSender(line: string): boolean {
  const first = firstLine(line);
  return (
    /^\d{3}[ -]\d\.1\.[78]\b/.test(first) ||
    /Sender address rejected/i.test(first) ||
    /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3} )?<>:/.test(first)
  );
}

function firstLine(line: string): string {
  return line.split(/\r?\n/)[0]!.trim();
}

function failureText(f: DownstreamFailure): string {
  switch (f.kind) {
    case 'unreachable':
    case 'lost':
    case 'spool':
      return f.reason;
    case 'timeout':
      return `no answer (${f.stage})`;
    case 'session-refused':
      return `refused the session: ${firstLine(f.response)}`;
    case 'reply':
      return `${f.command}: ${firstLine(f.response)}`;
    case 'recipients-refused':
      return 'recipients refused';
    case 'too-big':
      return 'too big';
  }
}

export function createBackendVerifier(o: BackendVerifierOptions): BackendVerifier {
  const sessions = new Map<string, BackendSessions>();
  const sessionsOf = (b: Backend): BackendSessions => {
    const key = backendName(b);
    let s = sessions.get(key);
    if (!s) sessions.set(key, (s = new BackendSessions(b, o)));
    return s;
  };
  return {
    async ask(backends, address) {
      const tried: { backend: string; reason: string }[] = [];
      for (const b of backends) {
        const s = sessionsOf(b);
        if (s.isDown()) {
          tried.push({
            backend: s.name,
            reason: `down, not tried again before ${new Date(s.downUntil).toISOString()}`,
          });
          continue;
        }
        const r = await s.verify(address);
        if (r.kind === 'answer') return r.answer;
        tried.push({ backend: s.name, reason: r.reason });
      }
      return { kind: 'unreachable', tried };
    },
    stats() {
      return Object.fromEntries([...sessions].map(([k, s]) => [k, { opened: s.opened, downUntil: s.downUntil }]));
    },
    async close() {
      await Promise.all([...sessions.values()].map((s) => s.close()));
    },
  };
}
