/**
 * dovecot-auth.ts — SMTP AUTH against a Dovecot auth service (DovecotAuth), over its auth-client
 * protocol (doc.dovecot.org "Authentication protocol", version 1.2; what Postfix's
 * smtpd_sasl_type = dovecot speaks):
 *
 *   createDovecotAuth(target, timeoutMs?) -> Authenticator
 *
 * One connection per check: VERSION 1 2 and CPID, the server's handshake up to DONE (its MECH
 * lines must include PLAIN), then `AUTH 1 PLAIN service=smtp nologin rip=IP [secured]
 * resp=BASE64`, answered OK (user= the name Dovecot settled on), FAIL (a wrong password or an
 * unknown user; with `temp`, Dovecot's own trouble) or CONT (not expected for PLAIN). A FAIL is
 * answered after Dovecot's auth_failure_delay (2 s by default), on top of asmtpd's own.
 * A temporary failure, a refused or closed connection, or no answer within timeoutMs rejects:
 * the client gets 451 4.3.0 (commands/auth.ts) and nothing is counted against it.
 * SECURITY: the password travels only in the base64 `resp` of the AUTH line to the socket the
 * configuration names; it is never logged. A name with a TAB, LF or NUL is refused before it is
 * sent (it could not be told apart from the protocol's separators).
 */
import { connect, type Socket } from 'node:net';
import type { DovecotAuthTarget } from '../config/types.js';
import type { AuthCheck, AuthContext, Authenticator } from './authenticator.js';

const DEFAULT_TIMEOUT_MS = 15_000;

export function createDovecotAuth(target: DovecotAuthTarget, timeoutMs = DEFAULT_TIMEOUT_MS): Authenticator {
  return {
    check(user, password, ctx) {
      // eslint-disable-next-line no-control-regex
      if (/[\t\n\r\0]/.test(user) || /\0/.test(password))
        return Promise.resolve({ kind: 'failed', reason: 'unknown-user' });
      return ask(target, timeoutMs, user, password, ctx);
    },
  };
}

function ask(
  target: DovecotAuthTarget,
  timeoutMs: number,
  user: string,
  password: string,
  ctx: AuthContext | undefined,
): Promise<AuthCheck> {
  return new Promise((resolve, reject) => {
    const socket: Socket =
      target.kind === 'unix' ? connect(target.path) : connect({ host: target.host, port: target.port });
    let buffer = '';
    let handshakeDone = false;
    let settled = false;
    const finish = (err: Error | null, result?: AuthCheck): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(() => finish(new Error(`DovecotAuth: no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => finish(new Error(`DovecotAuth: ${err.message}`)));
    socket.on('close', () => finish(new Error('DovecotAuth: the auth service closed the connection')));
    socket.on('connect', () => socket.write(`VERSION\t1\t2\nCPID\t${process.pid}\n`));
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const fields = buffer.slice(0, nl).split('\t');
        buffer = buffer.slice(nl + 1);
        if (!handshakeDone) {
          if (fields[0] === 'VERSION' && fields[1] !== '1')
            return finish(new Error(`DovecotAuth: protocol version ${fields[1]} is not 1`));
          if (fields[0] !== 'DONE') continue;
          handshakeDone = true;
          const resp = Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64');
          const params = [
            'service=smtp',
            'nologin',
            ...(ctx ? [`rip=${ctx.ip}`] : []),
            ...(ctx?.secured ? ['secured'] : []),
          ];
          socket.write(['AUTH', '1', 'PLAIN', ...params, `resp=${resp}`].join('\t') + '\n');
          continue;
        }
        if (fields[1] !== '1') continue;
        const args = fields.slice(2);
        if (fields[0] === 'OK') {
          const named = args.find((a) => a.startsWith('user='));
          return finish(null, { kind: 'ok', user: named ? named.slice('user='.length) : user });
        }
        if (fields[0] === 'FAIL') {
          if (args.includes('temp')) return finish(new Error('DovecotAuth: temporary failure of the auth service'));
          return finish(null, { kind: 'failed', reason: 'wrong-password' });
        }
        return finish(new Error(`DovecotAuth: unexpected ${fields[0]} answer`));
      }
    });
  });
}
