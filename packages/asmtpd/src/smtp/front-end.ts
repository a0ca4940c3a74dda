/**
 * front-end.ts — the SMTP listener: the only module that creates smtp-server's server (through
 * boundary.ts, whose overrides each server and its connections carry).
 *
 *   createFrontEnd(deps) -> FrontEnd { listen(port, host), close(timeoutMs), stats() }
 *
 * Lifecycle of a connection: accept → onInit (bookkeeping) → GreetingDelay → onConnect
 * (commands/connect.ts: limits, Session) → banner → commands (boundary.ts checks, MaxErrors,
 * SMTPTimeout) → HELO/EHLO, MAIL, RCPT, DATA (commands/: one file per command) → onClose (one
 * session.end line). EHLO advertises PIPELINING, ENHANCEDSTATUSCODES, and 8BITMIME, SMTPUTF8,
 * SIZE as far as the downstream offers them (extensions.ts; DSN is hidden), STARTTLS with
 * certificates (tls.ts), AUTH PLAIN LOGIN with an AuthFile (commands/auth.ts): inside TLS only,
 * unless InsecureAuth — a session in clear gets its own disabledCommands with AUTH in it.
 *
 * Half-close (RFC 5321 §3.8, as Postfix and Exim do it): the server runs with allowHalfOpen, so a
 * client that shuts down its sending side after ".\r\nQUIT\r\n" (Exim) still gets the reply to its
 * message and the 221. Once its input ended and every command was answered the connection is
 * closed; input that ends inside a message (no final dot) ends the connection at once, the
 * message is dropped. A client whose socket is really gone (closed, reset) is `gone`: the
 * transaction's downstream side is aborted where it still can be (downstream.ts).
 * --verbose: smtp-server's own logger hooks give the exact wire text (session.smtp).
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import { readTlsPairs } from '../config/tls-files.js';
import { clearTextCommands, sessionTls, tlsOptions, type AuthSettings, type TlsServerOptions } from './tls.js';
import { createBoundaryServer, replyToHalfClosed, sendReply, type BoundaryHooks } from './boundary.js';
import type { AbuseKind } from './abuse.js';
import { ConnectionTable, type ConnState, type SharedLimits } from './connections.js';
import { REPLIES } from '../reply/catalogue.js';
import type { Session } from './session.js';
import { abortDownstream } from './downstream.js';
import type { CommandDeps } from './commands/context.js';
import { onConnect, type ConnectDeps } from './commands/connect.js';
import { onMailFrom } from './commands/mail.js';
import { onRcptTo } from './commands/rcpt.js';
import { onData } from './commands/data.js';
import { onAuth, type AuthDeps } from './commands/auth.js';
import { AuthFailures, type AuthFailureCounter } from './auth-limiter.js';
import { applyAdvertised } from './extensions.js';
import { wireLogger } from './wire-log.js';
import type { Logger } from '../log/logger.js';
import type { Runtime } from './runtime.js';
import type { Config } from '../config/types.js';
import { commandLabel, metrics } from '../metrics/metrics.js';

export interface FrontEndDeps {
  runtime(): Runtime;
  log: Logger;
  verbose: boolean;
  version: string;
  /** Workers N: MaxClients/MaxClientsPerIP and the AUTH failures counted by the primary */
  shared?: { limits: SharedLimits; authFailures: AuthFailureCounter };
  /** Workers N: this worker's number, named in session.connect */
  worker?: number;
}

export interface FrontEnd {
  listen(port: number, host: string): Promise<void>;
  /** stop accepting; sessions in DATA may finish within timeoutMs, then the rest get 421 */
  close(timeoutMs: number): Promise<void>;
  stats(): { connections: number };
  /** after SIGHUP: limits and names that smtp-server reads from its options */
  applyConfig(config: Config): void;
}

/** socket errors that mean the client (or the path to it) is gone; nothing was acknowledged */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

export function createFrontEnd(deps: FrontEndDeps): FrontEnd {
  const table = new ConnectionTable(deps.shared?.limits ?? null);
  const { log } = deps;
  let shuttingDown = false;

  // protocol abuse (abuse.ts): the Session's facts and one session.abuse line per kind; what
  // comes before the Session exists (an early talker during GreetingDelay) waits for onConnect
  const earlyAbuse = new WeakMap<ConnState, Array<[AbuseKind, Record<string, unknown>]>>();
  const noteAbuse = (s: Session, kind: AbuseKind, detail: Record<string, unknown>): void => {
    if (kind === 'post') s.post = true;
    else if (s.pipelining !== 'pre-greeting') s.pipelining = kind;
    s.log.info('session.abuse', { kind, ...detail });
  };

  /** the client's socket (the TLS socket after STARTTLS): its end is a half-close, its close the client gone */
  const watchSocket = (st: ConnState, socket: Socket): void => {
    st.socket = socket;
    socket.once('close', () => {
      st.gone = true;
    });
    socket.once('end', () => {
      st.halfClosed = true;
      if (!st.closing)
        st.session?.log.info('session.half_closed', {
          ip: st.session.client.ip,
          in_transaction: st.session.tx !== null,
        });
    });
  };

  const closeWith = (st: ConnState, r: ReturnType<typeof REPLIES.timeout>): void => {
    if (st.closing) return;
    st.closing = true;
    // not an answer to a command: the command (if any) had its reply
    st.answering = 'none';
    sendReply(st.conn, r);
    st.conn.close();
  };

  // the hooks of this front end's servers (boundary.ts): each server holds its own
  const hooks: BoundaryHooks = {
    onInit(connId, conn, socket, proxy) {
      metrics.connectionAccepted();
      const st = table.add(connId, conn);
      st.proxy = proxy;
      watchSocket(st, socket);
    },
    onInputEnd(connId, inData) {
      const st = table.get(connId);
      if (!st) return;
      // a message without its final dot is not a message: drop the connection (and the message)
      if (inData) {
        st.gone = true;
        st.socket?.destroy();
        return;
      }
      st.closing = true;
      table.clearDeadline(st);
      st.conn.close();
    },
    greetingDelayMs: () => deps.runtime().config.greetingDelayMs,
    // ProxyProtocol (boundary.ts, proxy-header.ts): the header may take as long as a command
    proxyPeers: () => deps.runtime().proxyPeers,
    proxyHeaderTimeoutMs: () => deps.runtime().config.smtpTimeoutMs,
    onProxyRefused(connId, r) {
      const fields = { peer: r.peer.ip, peer_port: r.peer.port, reason: r.reason, detail: r.detail };
      const st = connId === null ? undefined : table.get(connId);
      const s = st?.session;
      // a peer that connects and goes away without a byte is a health check more often than not
      const level = r.reason === 'closed' ? 'info' : 'warn';
      (s?.log ?? log)[level]('session.proxy_refused', { ...(s ? { ip: s.client.ip } : {}), ...fields });
      // a header inside a session: its client hears why (before the connection, nothing is sent)
      if (st) closeWith(st, REPLIES.proxyHeaderRefused());
    },
    onAbuse(connId, kind, detail) {
      const st = table.get(connId);
      if (!st) return;
      if (st.session) noteAbuse(st.session, kind, detail);
      else earlyAbuse.set(st, [...(earlyAbuse.get(st) ?? []), [kind, detail]]);
    },
    onCommand(connId, line) {
      const st = table.get(connId);
      if (!st) return;
      table.clearDeadline(st);
      st.answering = commandLabel(line.subarray(0, 9).toString('latin1'));
      const verb = line.subarray(0, 5).toString('latin1').trim().toUpperCase();
      // RSET and QUIT always end the transaction (smtp-server resets it): its downstream side too.
      // A HELO/EHLO resets it only when it succeeds: the next MAIL (or the close) aborts it then.
      const whole = line.toString('latin1').trim().toUpperCase();
      if (st.session?.tx && (whole === 'RSET' || whole === 'QUIT')) {
        abortDownstream(st.session.tx);
        st.session.tx = null;
      }
      // the EHLO reply lists what the downstream offers now (smtp-server reads its options)
      if (verb === 'EHLO') advertiseNow();
    },
    onReply(connId, code) {
      const st = table.get(connId);
      if (!st) return;
      metrics.reply(st.answering, code);
      // the reply after DATA's 354 answers the message
      if (code === 354) st.answering = 'message';
      const cfg = deps.runtime().config;
      if (code >= 500 && code <= 504) {
        st.errors++;
        if (st.session) st.session.counts.errors++;
        if (st.errors >= cfg.maxErrors && !st.closing) {
          closeWith(st, REPLIES.tooManyErrors());
          return;
        }
      }
      // 421 and the 221 to QUIT end the session: no more deadline (and the client's FIN is no half-close)
      if (code === 421 || code === 221) {
        st.closing = true;
        table.clearDeadline(st);
        return;
      }
      const isData = code === 354;
      table.armDeadline(st, isData ? cfg.dataTimeoutMs : cfg.smtpTimeoutMs, () =>
        closeWith(st, isData ? REPLIES.dataTimeout() : REPLIES.timeout()),
      );
    },
  };

  const txDeps: CommandDeps = {
    runtime: deps.runtime,
    version: deps.version,
    sessionOf: (s) => table.get(s.id)?.session ?? null,
    connOf: (s) => table.get(s.id) ?? null,
    clearDeadline: (st) => table.clearDeadline(st),
  };

  const connectDeps: ConnectDeps = {
    runtime: deps.runtime,
    log,
    ...(deps.worker ? { worker: deps.worker } : {}),
    table,
    shuttingDown: () => shuttingDown,
    replayEarlyAbuse(st, s) {
      for (const [kind, detail] of earlyAbuse.get(st) ?? []) noteAbuse(s, kind, detail);
      earlyAbuse.delete(st);
    },
    onIdle: (st) => closeWith(st, REPLIES.timeout()),
  };

  // AUTH (commands/auth.ts): failures per client IP outlive a SIGHUP's new Runtime
  const authDeps: AuthDeps = { ...txDeps, failures: deps.shared?.authFailures ?? new AuthFailures() };
  const authSettings = (config: Config): AuthSettings => ({
    on: config.authFile !== null || config.dovecotAuth !== null,
    insecure: config.insecureAuth,
  });

  // STARTTLS (tls.ts): the pairs as the configuration loader checked them; re-read on SIGHUP
  const tlsNow = (config: Config): TlsServerOptions => {
    const files = readTlsPairs(config);
    if (files.kind === 'error') log.error('tls.error', { error: files.message });
    return tlsOptions(files, authSettings(config));
  };
  /** the options of new sessions (AUTH hidden in clear: clearTextCommands) */
  let tlsCurrent: TlsServerOptions | null = null;
  /** A finished handshake: the session starts over in TLS (RFC 3207 §4.2) with its TLS facts. */
  const onSecure = (socket: Socket, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    const st = table.get(session.id);
    const s = st?.session;
    // AUTH may be offered now (the server's disabledCommands apply again)
    delete session.disabledCommands;
    if (st && s && socket instanceof TLSSocket) {
      watchSocket(st, socket);
      replyToHalfClosed(socket);
      const cipher = socket.getCipher();
      s.tls = sessionTls(cipher);
      // RFC 3207 §4.2: nothing from before the handshake carries over (smtp-server reset its side)
      if (s.tx) abortDownstream(s.tx);
      s.tx = null;
      s.helo = null;
      s.proto = null;
      s.decisions.clear();
      s.authUser = null;
      s.log.info('tls.started', {
        ip: s.client.ip,
        version: s.tls.version,
        cipher: s.tls.cipher,
        bits: s.tls.cipherBits,
      });
    }
    callback();
  };

  const makeServer = (): SMTPServer => {
    const cfg0 = deps.runtime().config;
    tlsCurrent = tlsNow(cfg0);
    const server = createBoundaryServer(
      {
        name: cfg0.hostname,
        banner: 'asmtpd',
        size: cfg0.maxMsgSizeBytes,
        maxRecipients: cfg0.maxRcpts,
        socketTimeout: Math.max(cfg0.smtpTimeoutMs, cfg0.dataTimeoutMs) + 60_000,
        closeTimeout: 30_000,
        disableReverseLookup: true,
        authOptional: true,
        hideDSN: true,
        hideENHANCEDSTATUSCODES: false,
        hideREQUIRETLS: true,
        ...tlsCurrent,
        onSecure,
        // AUTH before STARTTLS is hidden per session (clearTextCommands), not by smtp-server's 538
        authMethods: ['PLAIN', 'LOGIN'],
        allowInsecureAuth: true,
        onAuth: (auth, session, callback) => onAuth(authDeps, auth, session, callback),
        maxCommandLength: 64 * 1024,
        // a half-closed client still gets its replies (see the header)
        allowHalfOpen: true,
        logger: deps.verbose ? wireLogger((cid) => table.get(cid)?.session?.log ?? null) : false,
        onConnect: (session, callback) =>
          onConnect(connectDeps, session, (err) => {
            const cfg = deps.runtime().config;
            const commands = tlsCurrent ? clearTextCommands(tlsCurrent, authSettings(cfg)) : undefined;
            if (!err && commands) session.disabledCommands = commands;
            callback(err);
          }),
        onMailFrom: (address, session, callback) => onMailFrom(txDeps, address, session, callback),
        onRcptTo: (address, session, callback) => onRcptTo(txDeps, address, session, callback),
        onData: (stream, session, callback) => onData(txDeps, stream, session, callback),
        onClose(session: SMTPServerSession) {
          const st = table.remove(session.id);
          const s = st?.session;
          if (st) st.gone = true;
          if (s?.tx) abortDownstream(s.tx);
          if (s) {
            s.log.info('session.end', { ip: s.client.ip, ms: Date.now() - s.startedAt, ...s.counts });
          }
        },
      },
      hooks,
    );
    // smtp-server reports a socket error of a session here (and drops quiet ones outside a
    // transaction itself): a client that went away mid-transaction is routine on port 25, not a fault
    server.on(
      'error',
      (err: Error & { code?: string; remoteAddress?: string; meta?: { tlsProtocol?: unknown; message?: string } }) => {
        const fields = { ip: err.remoteAddress, code: err.code, error: err.message };
        // a handshake that failed (smtp-server's normalizeTLSError adds meta.tlsProtocol): the client's problem, logged
        if (err.meta && 'tlsProtocol' in err.meta && !(err.code !== undefined && CLIENT_GONE.has(err.code)))
          log.warn('tls.failed', { ...fields, reason: err.meta.message ?? err.message });
        else if (err.code !== undefined && CLIENT_GONE.has(err.code)) log.info('session.reset', fields);
        else log.error('session.error', fields);
      },
    );
    return server;
  };
  const servers: SMTPServer[] = [];
  let lastAdvertised = '';
  const advertiseNow = (): void => {
    let a: ReturnType<typeof applyAdvertised> | null = null;
    for (const server of servers)
      a = applyAdvertised(server.options as unknown as Record<string, unknown>, deps.runtime());
    const text = a ? JSON.stringify(a) : '';
    if (a && text !== lastAdvertised) {
      if (lastAdvertised !== '')
        log.info('relay.capabilities', { smtputf8: a.smtputf8, eightbitmime: a.eightBitMime, size: a.size });
      lastAdvertised = text;
    }
  };

  return {
    async listen(port, host) {
      // the EHLO reply depends on what the downstream offers: learn it first (bounded)
      const ready = deps.runtime().relay.ready?.();
      if (ready) await Promise.race([ready, new Promise<void>((r) => setTimeout(r, 5000).unref())]);
      const server = makeServer();
      servers.push(server);
      advertiseNow();
      return new Promise((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        server.server.once('error', onError);
        server.listen(port, host, () => {
          server.server.off('error', onError);
          resolve();
        });
      });
    },
    close(timeoutMs) {
      shuttingDown = true;
      return Promise.all(
        servers.map((server) => {
          (server.options as { closeTimeout?: number }).closeTimeout = timeoutMs;
          return new Promise<void>((resolve) => server.close(() => resolve()));
        }),
      ).then(() => undefined);
    },
    applyConfig(config) {
      const tls = tlsNow(config);
      tlsCurrent = tls;
      for (const server of servers) {
        const o = server.options as unknown as Record<string, unknown>;
        o.name = config.hostname;
        o.maxRecipients = config.maxRcpts;
        // new sessions get the new certificates; a session already in TLS keeps its own
        o.hideSTARTTLS = tls.hideSTARTTLS;
        o.disabledCommands = tls.disabledCommands;
        if (tls.key && tls.cert)
          server.updateSecureContext({ key: tls.key, cert: tls.cert, minVersion: tls.minVersion });
      }
      if (tls.cert) log.info('tls.loaded', { certificates: config.tlsCerts });
      advertiseNow();
    },
    stats: () => ({ connections: table.size }),
  };
}
