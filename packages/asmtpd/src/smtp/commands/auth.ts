/**
 * auth.ts — AUTH PLAIN and LOGIN (RFC 4954): smtp-server runs the SASL exchange, this decides.
 * Offered only with an AuthFile, and only inside TLS unless InsecureAuth (front-end.ts hides the
 * keyword and the command per session until STARTTLS).
 *
 *   onAuth(deps, auth, session, cb)      logs auth.decision (never the password)
 *
 * Success: 235 at once; the session's authUser is set — AUTH_USER for the scripts, "ESMTPSA" in
 * Received, and the client may relay as a RelayNet client does (rcpt.ts, still through the relay
 * script of EtcDir). The RCPT decisions remembered before it are forgotten.
 * Failure (auth-limiter.ts): 535 5.7.8 after a delay that grows with each failure; the failure
 * that reaches AuthMaxFailures on the connection or from the IP (in its window) is 421 4.7.0 and
 * the connection is closed, and an IP at the limit gets 421 4.7.0 before any password check.
 */
import type { SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerSession } from 'smtp-server';
import { REPLIES, ReplyAsError } from '../../reply/catalogue.js';
import { formatReply, type Reply } from '../../reply/reply.js';
import { failureDelayMs, type AuthFailureCounter } from '../auth-limiter.js';
import type { CommandDeps } from './context.js';
import { metrics } from '../../metrics/metrics.js';

export interface AuthDeps extends CommandDeps {
  failures: AuthFailureCounter;
}

type AuthCallback = (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void;

export function onAuth(
  d: AuthDeps,
  auth: SMTPServerAuthentication,
  session: SMTPServerSession,
  cb: AuthCallback,
): void {
  const s = d.sessionOf(session);
  const st = d.connOf(session);
  const backend = d.runtime().auth;
  if (!s || !st || !backend || (auth.method !== 'PLAIN' && auth.method !== 'LOGIN'))
    return cb(new ReplyAsError(REPLIES.localError()));
  const max = d.runtime().config.authMaxFailures;
  const user = auth.username ?? '';
  const ip = s.client.ip;
  const started = Date.now();
  const log = (
    level: 'info' | 'warn',
    result: 'ok' | 'failed' | 'limit',
    r: Reply | null,
    extra: Record<string, unknown> = {},
  ): void => {
    metrics.auth(result);
    s.log[level]('auth.decision', {
      ip,
      user,
      method: auth.method,
      result,
      ...(r ? { reply: formatReply(r) } : {}),
      ...extra,
      ms: Date.now() - started,
    });
  };
  const refuse = (r: Reply, extra: Record<string, unknown>): void => {
    log('warn', 'limit', r, extra);
    cb(new ReplyAsError(r));
    st.conn.close();
  };
  Promise.resolve(d.failures.count(ip))
    .then((before) => {
      if (before >= max)
        return refuse(REPLIES.authTooManyFailures(), { failures: s.authFailures, ip_failures: before });
      return backend.check(user, auth.password ?? '', { ip, secured: s.tls !== null }).then(async (result) => {
        if (result.kind === 'ok') {
          s.authUser = result.user;
          s.decisions.clear();
          log('info', 'ok', null);
          return cb(null, { user: result.user });
        }
        s.authFailures++;
        const ipFailures = await d.failures.fail(ip);
        const extra = { reason: result.reason, failures: s.authFailures, ip_failures: ipFailures };
        if (s.authFailures >= max || ipFailures >= max) return refuse(REPLIES.authTooManyFailures(), extra);
        const delayMs = failureDelayMs(Math.max(s.authFailures, ipFailures));
        const r = REPLIES.authFailed();
        log('info', 'failed', r, { ...extra, delay_ms: delayMs });
        setTimeout(() => cb(new ReplyAsError(r)), delayMs).unref();
      });
    })
    .catch((err: Error) => {
      const r = REPLIES.localError();
      metrics.auth('error');
      s.log.error('auth.decision', { ip, user, method: auth.method, result: 'error', error: err.message });
      cb(new ReplyAsError(r));
    });
}
