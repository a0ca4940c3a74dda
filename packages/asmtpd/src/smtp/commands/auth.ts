/**
 * auth.ts — AUTH PLAIN, LOGIN and CRAM-MD5 (RFC 4954, RFC 2195): smtp-server runs the SASL
 * exchange, this decides. Offered only with an AuthFile (or DovecotAuth: PLAIN and LOGIN), and only
 * inside TLS unless InsecureAuth (front-end.ts hides the keyword and the command per session until
 * STARTTLS); CRAM-MD5 with AuthCramMD5, in clear too with `yes` (authMethodsFor: a mechanism the
 * session may not use is refused before its exchange, 538 5.7.11).
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
import type { Config } from '../../config/types.js';

/**
 * The AUTH mechanisms a session may use: PLAIN and LOGIN inside TLS (or with InsecureAuth),
 * CRAM-MD5 with AuthCramMD5 (tls: inside TLS; yes: in clear too) and an AuthFile. Empty: no AUTH.
 */
export function authMethodsFor(config: Config, secure: boolean): string[] {
  if (config.authFile === null && config.dovecotAuth === null) return [];
  const cram = config.authFile !== null && (config.authCramMd5 === 'yes' || (config.authCramMd5 === 'tls' && secure));
  return [...(secure || config.insecureAuth ? ['PLAIN', 'LOGIN'] : []), ...(cram ? ['CRAM-MD5'] : [])];
}

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
  const cram = auth.method === 'CRAM-MD5';
  if (!s || !st || !backend || (auth.method !== 'PLAIN' && auth.method !== 'LOGIN' && !cram))
    return cb(new ReplyAsError(REPLIES.localError()));
  if (cram && !backend.checkCram) return cb(new ReplyAsError(REPLIES.localError()));
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
      const checked = cram
        ? backend.checkCram!(user, auth.challenge ?? '', auth.challengeResponse ?? '')
        : backend.check(user, auth.password ?? '', { ip, secured: s.tls !== null });
      return checked.then(async (result) => {
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
