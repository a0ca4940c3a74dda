/**
 * boundary.ts — where smtp-server 3.21 (pinned) is adapted to asmtpd's rules: the only module
 * that overrides or reads smtp-server's private members.
 *
 *   createBoundaryServer(options, hooks) -> SMTPServer   a server whose connections carry the
 *                                                         overrides below and report to `hooks`
 *   sendReply(conn, reply)                               a Reply value on a raw connection
 *   answerSuccessWith(conn, reply)                       the 250 of the MAIL or RCPT being answered
 *   handOver(conn) -> Socket | null                      ATRN: the socket, no longer read by the library
 *   BoundaryServer, BoundaryConnection                   exported for the tripwire test only
 *
 * Per instance, never process-wide: BoundaryServer (a subclass of SMTPServer) replaces connect(),
 * the one place the library constructs a connection, to construct a BoundaryConnection (a
 * subclass of SMTPConnection) instead. The library's own classes are left as they are: another
 * SMTPServer in the same process (a test's downstream) keeps the library's behaviour, and each
 * server's connections report to the hooks that server was created with. This module keeps no
 * state of its own; what a connection needs (its AbuseDetector, a held line) is on the connection.
 *
 * smtp-server does the protocol; these small overrides fix what a port-25 filter needs and the
 * library does not offer as options (each override names the option that would replace it):
 *  - send(): a reply text that starts with its own enhanced status ("5.7.1 relaying denied", the
 *    form ReplyAsError produces) is sent with that status instead of the library's per-code guess
 *    (which labels every 550 as 5.1.1); a MAIL or RCPT accepted gets the Reply value its handler
 *    gave (answerSuccessWith) instead of the library's fixed "Accepted". Every reply passes
 *    through hooks.onReply (MaxErrors, timers, --verbose transcript).
 *  - _parseAddressCommand(): our RFC 5321 path parser (path.ts) — quoted local parts with spaces,
 *    relay tricks left for the router to refuse with 550 5.7.1 instead of a 501; a duplicate
 *    parameter is reported as `duplicate`, which smtp-server answers with 501 (not "bad address").
 *  - init(): the library waits a fixed 100 ms before the banner and refuses early talkers with
 *    421; asmtpd uses its own GreetingDelay (default 0) and does connection limits in onConnect.
 *    Each connection's socket reports readyState 'open' while half-closed by the client, so the
 *    library's send() still writes the reply to a client that shut down its sending side.
 *    An early talker is not refused: its input waits until the banner is out and is then
 *    answered as usual (the fact CLIENT_PIPELINING=pre-greeting lets the policy decide).
 *  - _onCommand(): lines over 512 octets, NUL or bare CR in a command → 500 5.5.2 (the library
 *    only has a hard limit that closes the connection); an HTTP request line → 502 5.7.0, reported
 *    as abuse `post` (CLIENT_POST=1), and the session goes on: the 502 is a bad command like the
 *    header lines that follow it, so MaxErrors (front-end.ts) closes a proxied request with 421,
 *    and a client that goes on with SMTP reaches a policy that sees CLIENT_POST (the library's
 *    own HTTP check, a 421, is not reached for such a line); hooks.onCommand sees each command.
 *    Then hooks.onVerb may answer a command itself (ETRN, ATRN, the ODMR port's 502, an AUTH
 *    mechanism the session may not use: the library has no ETRN/ATRN and one server-wide list of
 *    AUTH mechanisms), never a SASL continuation nor during a STARTTLS handshake; and at EHLO,
 *    hooks.ehloOffer says which AUTH mechanisms and extra keywords send() puts in the reply.
 *  - handOver(conn): ATRN reverses the roles; the library lets go of the socket (below).
 *  - _createParser(): each command parser (the constructor's, and a new one after STARTTLS)
 *    reports the bytes it is given, before it reads them, and the end of each message, to the
 *    connection's AbuseDetector (abuse.ts: pre-greeting and unadvertised pipelining); send()
 *    reports replies. Detected abuse goes to hooks.onAbuse, once per kind. The parser's end (the
 *    server runs with allowHalfOpen, so a client's half-close ends the input but not the
 *    connection) goes to hooks.onInputEnd once everything the client sent was answered.
 *    With ProxyProtocol, a PROXY header as a session's first bytes goes to hooks.onProxyRefused
 *    (the header came from a peer that is not listed) and nothing more of the input is read.
 *  - _expectsProxyHeader(), _handleProxy() (BoundaryServer): ProxyProtocol. The listed peers
 *    (hooks.proxyPeers, CIDR) must start with a PROXY header, v1 or v2 (proxy-header.ts), before
 *    the connection exists; its client replaces the peer as remoteAddress/remotePort for the whole
 *    session (facts, limits, logs, headers, scripts). The library's own `useProxy` reads v1 only,
 *    from exact addresses, and answers a bad header with "* BAD". The peer reaches the front end
 *    with hooks.onInit (ProxyOrigin).
 * The hooks receive the connection id, which is smtp-server's session.id.
 *
 * The tripwire (boundary.test.ts) holds a hash of the source of every library method overridden
 * or relied on here, and checks each private member used: an upgrade that changes one fails it.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { parsePathCommand } from './path.js';
import { REPLIES } from '../reply/catalogue.js';
import type { Reply } from '../reply/reply.js';
import { AbuseDetector, commandVerb, isHttpRequestLine, type AbuseKind } from './abuse.js';
import { readProxyHeader, startsWithProxyHeader, type ProxyRefusal } from './proxy-header.js';

/** The TCP peer of a connection whose client a PROXY header named (ProxyProtocol). */
export interface ProxyOrigin {
  /** the load balancer's own address and port */
  peer: { ip: string; port: number };
  version: 1 | 2;
}

/** A connection closed for its PROXY header (or its lack of one): logged by the front end. */
export interface ProxyRefused {
  /** the TCP peer */
  peer: { ip: string; port: number };
  reason: ProxyRefusal;
  detail: string;
}

export interface BoundaryHooks {
  /** a new connection object exists (before onConnect), with its socket */
  onInit(connId: string, conn: SmtpConnectionHandle, socket: Socket, proxy: ProxyOrigin | null): void;
  /**
   * the client's input ended (it closed its sending side) and every command it sent was answered;
   * inData: it ended inside a message, before the final dot
   */
  onInputEnd(connId: string, inData: boolean): void;
  /** after a reply line was written (code, full text as sent) */
  onReply(connId: string, code: number, line: string): void;
  /** each command line, before it is checked and handled */
  onCommand(connId: string, line: Buffer): void;
  /** the GreetingDelay for new connections, in ms */
  greetingDelayMs(): number;
  /** protocol abuse seen on a connection (abuse.ts), once per kind; may come before onConnect */
  onAbuse(connId: string, kind: AbuseKind, detail: Record<string, unknown>): void;
  /**
   * ProxyProtocol: the peers whose connections start with a PROXY header (null: none, and a
   * header from anyone is left to the SMTP parser as before), and how long the header may take
   */
  proxyPeers(): { has(ip: string): boolean } | null;
  proxyHeaderTimeoutMs(): number;
  /**
   * a connection was closed for its PROXY header: from a listed peer before any session (connId
   * null), or a header as the first bytes of a session (connId: the front end answers and closes)
   */
  onProxyRefused(connId: string | null, refusal: ProxyRefused): void;
  /**
   * The session's EHLO offer, asked at each EHLO: the AUTH mechanisms it may use (null: the
   * library's line as it is; empty: no AUTH line) and keywords added to the reply (ETRN, ATRN)
   */
  ehloOffer(connId: string, secure: boolean): EhloOffer;
  /**
   * Each command line that is not a SASL continuation, after the checks above and before the
   * library: true when the front end answers it itself (ETRN, ATRN, a command the ODMR port does
   * not take, an AUTH mechanism the session may not use) and calls `done` once it has answered
   * (or never, when the connection was handed over: handOver)
   */
  onVerb(connId: string, verb: string, line: string, secure: boolean, done: () => void): boolean;
}

/** What one EHLO reply offers beyond the library's keywords (BoundaryHooks.ehloOffer). */
export interface EhloOffer {
  authMethods: readonly string[] | null;
  keywords: readonly string[];
}

/** What the rest of asmtpd may do with a raw connection. */
export interface SmtpConnectionHandle {
  id: string;
  send(code: number, data?: string | string[], context?: string | false): void;
  close(): void;
}

/** Longest command line we accept, excluding CRLF (RFC 5321 §4.5.3.1.4: 512 with CRLF). */
export const MAX_COMMAND_OCTETS = 510;

const ENHANCED_PREFIX = /^([245]\.\d{1,3}\.\d{1,3}) ([\s\S]*)$/;

/** An SMTPServer whose connections are BoundaryConnections reporting to `hooks`. */
export function createBoundaryServer(options: SMTPServerOptions, hooks: BoundaryHooks): SMTPServer {
  return new BoundaryServer(options, hooks);
}

export class BoundaryServer extends SMTPServer {
  /** the ProxyOrigin of each socket that came with a PROXY header (read by the connection's init) */
  readonly proxied = new WeakMap<Socket, ProxyOrigin>();

  constructor(
    options: SMTPServerOptions,
    readonly hooks: BoundaryHooks,
  ) {
    super(options);
  }

  /**
   * The library's connect() with BoundaryConnection in place of SMTPConnection (same steps, same
   * order; the library's private _onError and _onClientConnect handle the events as before).
   * Upstream: none exists; a `connectionClass` (or connection factory) option would remove it.
   */
  override connect(socket: Socket, socketOptions?: SMTPConnectionOptions | null): void {
    const connection = new BoundaryConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data) => this._onClientConnect(data));
    connection.init();
  }

  /**
   * ProxyProtocol: a PROXY header is expected from the peers it lists (CIDR, re-read on SIGHUP),
   * instead of the library's exact addresses of `useProxy`. The library's _acceptSocket() guards
   * such a socket until connect() (server.close() destroys it; maxClients counts it).
   * Upstream: `useProxy` taking a function of the address would remove this.
   */
  override _expectsProxyHeader(socket: Socket): boolean {
    return this.hooks.proxyPeers()?.has(socket.remoteAddress ?? '') ?? false;
  }

  /**
   * The PROXY header, v1 or v2 (proxy-header.ts, with proxy-protocol-js), from a listed peer:
   * the client it names becomes the connection's remoteAddress and remotePort (the library's
   * SMTPConnection takes them from socketOptions), and the peer is kept as its ProxyOrigin. No
   * header, a bad one, a timeout or a close: the socket is destroyed, nothing was sent, and
   * hooks.onProxyRefused says why. Other peers go the library's way (no header read).
   * Upstream: the library reads v1 only and answers a bad header with an IMAP-style "* BAD";
   * a v2 parser (or a `parseProxyHeader` option) would remove this.
   */
  override _handleProxy(socket: Socket, callback: Parameters<SMTPServer['_handleProxy']>[1]): void {
    if (!this._expectsProxyHeader(socket)) return super._handleProxy(socket, callback);
    const peer = { ip: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    readProxyHeader(socket, this.hooks.proxyHeaderTimeoutMs(), (r) => {
      if (r.kind === 'refused') {
        this.hooks.onProxyRefused(null, { peer, reason: r.reason, detail: r.detail });
        socket.on('error', () => undefined);
        socket.destroy();
        return callback(new Error(`PROXY header refused: ${r.reason}`));
      }
      // the session id as the library makes it (SMTPConnection would make the same kind without one)
      const id = BigInt('0x' + randomBytes(10).toString('hex'))
        .toString(32)
        .padStart(16, '0');
      // LOCAL (v2) or UNKNOWN (v1): the peer's own connection (a health check), the peer is the client
      if (r.kind === 'local') return callback(null, { id });
      this.proxied.set(socket, { peer, version: r.version });
      callback(null, { id, remoteAddress: r.client.ip, remotePort: r.client.port });
    });
  }
}

type ParsedAddress = ReturnType<SMTPConnection['_parseAddressCommand']>;

export class BoundaryConnection extends SMTPConnection {
  // `declare`: no field initialiser, the library's constructor already calls _createParser()
  /** created on first use (see abuseDetector) */
  declare abuse: AbuseDetector | undefined;
  /** the line an early talker sent before the banner, held with the parser's continuation */
  declare held: { command: Buffer; callback: (() => void) | undefined } | undefined;
  /** the 250 for the MAIL or RCPT being answered (answerSuccessWith), instead of the library's "Accepted" */
  declare successReply: Reply | undefined;
  /** the first bytes of the session were looked at (a PROXY header there is refused) */
  declare firstInputSeen: boolean | undefined;
  /** closed for a PROXY header in the session: what else the client sends is dropped */
  declare proxyRefused: boolean | undefined;
  /** the offer of the EHLO being answered (BoundaryHooks.ehloOffer), applied by send() */
  declare ehloOffer: EhloOffer | undefined;

  /**
   * The reply's own enhanced status, the success texts, the replies seen by the detector and
   * by hooks.onReply. Upstream: none; it would take an `enhancedCode` honoured on handler errors
   * and success texts (as MAIL parameter errors have internally) and an `onReply` event.
   */
  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    let sent: string;
    abuseDetector(this).replied(code, Array.isArray(data) ? data : [data ?? '']);
    if (code === 250 && typeof context === 'string' && context.endsWith('_OK') && this.successReply) {
      data = `${this.successReply.enhanced} ${this.successReply.text}`;
      this.successReply = undefined;
    }
    // the EHLO reply: the session's AUTH mechanisms and our own keywords (ehloOffer)
    if (code === 250 && Array.isArray(data) && this.ehloOffer) {
      const offer = this.ehloOffer;
      this.ehloOffer = undefined;
      data = data
        .map((line) =>
          offer.authMethods !== null && /^AUTH /.test(line)
            ? offer.authMethods.length > 0
              ? `AUTH ${offer.authMethods.join(' ')}`
              : null
            : line,
        )
        .filter((line): line is string => line !== null)
        .concat(offer.keywords);
    }
    const m = typeof data === 'string' ? ENHANCED_PREFIX.exec(data) : null;
    if (m && m[1]![0] === String(code)[0]) {
      super.send(code, data, false);
      sent = `${code} ${data as string}`;
    } else {
      super.send(code, data, context);
      sent = `${code} ${Array.isArray(data) ? data.join(' / ') : (data ?? '')}`;
    }
    hooksOf(this).onReply(this.id, code, sent);
  }

  /**
   * Our RFC 5321 path parser (path.ts). Upstream: `lenientAddressParsing` only loosens the
   * library's own parser; a `parseAddress(verb, line, session)` option would remove this.
   */
  override _parseAddressCommand(name: string, command: Buffer | string): ParsedAddress {
    const verb = name.trim().toUpperCase() === 'MAIL FROM' ? 'MAIL FROM' : 'RCPT TO';
    const text = command.toString();
    // bytes that are not UTF-8 would be rewritten to U+FFFD: never pass on a changed address
    if (Buffer.isBuffer(command) && !Buffer.from(text, 'utf8').equals(command)) return false;
    const parsed = parsePathCommand(verb, text);
    if ('error' in parsed) return false;
    // RFC 6531: a non-ASCII address only in a transaction that MAIL FROM opened with SMTPUTF8
    const mailFrom = this.session?.envelope?.mailFrom;
    const smtputf8 =
      verb === 'MAIL FROM'
        ? parsed.args !== false && parsed.args.SMTPUTF8 !== undefined
        : mailFrom !== undefined &&
          mailFrom !== false &&
          mailFrom.args !== false &&
          mailFrom.args?.SMTPUTF8 !== undefined;
    if (/[^\x00-\x7f]/.test(parsed.address) && !smtputf8) return false;
    // a parameter given twice (parsed.duplicate): smtp-server answers 501 5.5.4 itself
    return parsed as unknown as ParsedAddress;
  }

  /**
   * GreetingDelay instead of the fixed 100 ms and its 421 "You talk too soon"; replies to a
   * half-closed client. Upstream: none; it would take a `greetingDelay` option that holds early
   * input (no 421), and send() writing while the socket is writable rather than only 'open'.
   */
  override init(): void {
    replyToHalfClosed(this._socket);
    const proxy = (this._server as BoundaryServer).proxied.get(this._socket) ?? null;
    hooksOf(this).onInit(this.id, this, this._socket, proxy);
    this._setListeners(() => {
      const delay = hooksOf(this).greetingDelayMs();
      // after the banner: answer what an early talker sent meanwhile, in order
      const ready = (): void =>
        this.connectionReady(() => {
          const held = this.held;
          if (!held) return;
          this.held = undefined;
          this._onCommand(held.command, held.callback);
        });
      if (delay > 0) setTimeout(ready, delay).unref();
      else ready();
    });
  }

  /**
   * Each parser reports its input, its end and each message's end. Upstream: none; it would
   * take 'input' / 'messageEnd' / 'inputEnd' events on the connection.
   */
  override _createParser(): SMTPStream {
    const parser = super._createParser();
    const conn = this;
    const write = parser.write;
    parser.write = function (this: SMTPStream, chunk: unknown, ...rest: unknown[]): boolean {
      if (conn.proxyRefused) return true;
      // ProxyProtocol: a PROXY header as the session's first bytes comes from a peer that is not
      // listed (or from the client behind a listed one): the connection is closed
      if (Buffer.isBuffer(chunk) && !conn.firstInputSeen) {
        conn.firstInputSeen = true;
        if (hooksOf(conn).proxyPeers() !== null && startsWithProxyHeader(chunk)) {
          conn.proxyRefused = true;
          const sock = conn._socket;
          hooksOf(conn).onProxyRefused(conn.id, {
            peer: { ip: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 },
            reason: 'not-listed',
            detail: chunk[0] === 0x50 ? 'v1' : 'v2',
          });
          return true;
        }
      }
      if (Buffer.isBuffer(chunk) && !parser.isClosed && !conn._closing && !conn._closed) {
        abuseDetector(conn).input(chunk, parser._dataMode);
      }
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as SMTPStream['write'];
    // with allowHalfOpen the parser ends when the client's input does, once every command it sent
    // (and the message, if the dot came) was answered: the front end closes the connection then
    parser.once('finish', () => hooksOf(conn).onInputEnd(conn.id, parser._dataMode));
    const endDataMode = parser._endDataMode;
    parser._endDataMode = function (this: SMTPStream, chunk, remainder, callback) {
      if (!parser.isClosed) abuseDetector(conn).messageEnded(remainder);
      endDataMode.call(this, chunk, remainder, callback);
    };
    return parser;
  }

  /**
   * Early talkers held, our line checks, HTTP lines as abuse, MaxErrors instead of the fixed 10
   * unrecognized commands. Upstream: `maxCommandLength` closes the connection and the HTTP and
   * unrecognized-command limits are fixed; an `onCommand(line, session)` option that may answer
   * a line itself, and a `maxUnrecognizedCommands` option, would remove this.
   */
  override _onCommand(command: Buffer, callback?: () => void): void {
    // an early talker (GreetingDelay): hold the line, and the parser with it, until the banner
    if (!this._ready && !this._closing && !this._closed) {
      this.held = { command, callback };
      return;
    }
    // asmtpd counts bad commands itself (MaxErrors); disable the library's fixed limit of 10.
    this._unrecognizedCommands = 0;
    hooksOf(this).onCommand(this.id, command);
    if (this._ready) {
      const text = command.toString('latin1');
      abuseDetector(this).dispatched(this._nextHandler ? 'AUTH' : commandVerb(text));
      if (!this._nextHandler && isHttpRequestLine(text)) {
        // the fact first (session.post), then the 502, which counts toward MaxErrors
        abuseDetector(this).post(text);
        const r = REPLIES.httpRequest();
        this.send(r.code, `${r.enhanced} ${r.text}`);
        setImmediate(() => callback?.());
        return;
      }
    }
    if (this._ready && command.length > MAX_COMMAND_OCTETS) {
      const r = REPLIES.lineTooLong();
      this.send(r.code, `${r.enhanced} ${r.text}`);
      setImmediate(() => callback?.());
      return;
    }
    if (this._ready && (command.indexOf(0) >= 0 || command.indexOf(0x0d) >= 0)) {
      const r = REPLIES.badCommandBytes();
      this.send(r.code, `${r.enhanced} ${r.text}`);
      setImmediate(() => callback?.());
      return;
    }
    // never while a STARTTLS handshake runs: what was pipelined in clear is the library's to drop
    if (this._ready && !this._nextHandler && !this._closing && !this._upgrading) {
      const text = command.toString('latin1');
      const verb = commandVerb(text);
      const secure = (this as unknown as { secure: boolean }).secure === true;
      if (verb === 'EHLO') this.ehloOffer = hooksOf(this).ehloOffer(this.id, secure);
      if (hooksOf(this).onVerb(this.id, verb, text, secure, () => setImmediate(() => callback?.()))) return;
    }
    super._onCommand(command, callback);
  }
}

/**
 * ATRN (RFC 2645 §5.3): the roles reverse on this connection. The library lets go of the socket —
 * no more commands are read (its parser is unpiped and closed), its idle timeout is off, and the
 * server forgets the connection (its close() would send a 421 into what is now our client's
 * session) — and the socket is returned, paused (nothing the peer sends is read before the new
 * owner listens), for the SMTP client that takes it over and resumes it. Its 'close' still
 * reaches the library, so the session ends as any other (onClose). Upstream: none; a
 * `connection.detach()` returning the socket would remove it.
 */
export function handOver(conn: SmtpConnectionHandle): Socket | null {
  if (!(conn instanceof BoundaryConnection) || conn._closing || conn._closed) return null;
  const socket = conn._socket;
  const parser = conn._parser;
  if (parser) {
    socket.unpipe(parser);
    parser.isClosed = true;
  }
  socket.setTimeout(0);
  conn._server.connections.delete(conn);
  return socket;
}

/** The hooks of the server that created the connection (set before the constructor's parser). */
function hooksOf(conn: SMTPConnection): BoundaryHooks {
  return (conn._server as BoundaryServer).hooks;
}

function abuseDetector(conn: BoundaryConnection): AbuseDetector {
  if (!conn.abuse) conn.abuse = new AbuseDetector((kind, detail) => hooksOf(conn).onAbuse(conn.id, kind, detail));
  return conn.abuse;
}

/**
 * smtp-server writes a reply only while the socket's readyState is 'open'; a client that shut
 * down its sending side (readyState 'writeOnly', the server runs with allowHalfOpen) must still
 * get the reply to its message and to its QUIT (RFC 5321 §3.8; Exim does this after every
 * message). This socket, and only it, reports 'open' while it can still be written to.
 */
const READY_STATE = Object.getOwnPropertyDescriptor(Socket.prototype, 'readyState')!.get!;
export function replyToHalfClosed(socket: Socket): void {
  Object.defineProperty(socket, 'readyState', {
    configurable: true,
    get(this: Socket): string {
      const state = READY_STATE.call(this) as string;
      return state === 'writeOnly' ? 'open' : state;
    },
  });
}

/**
 * The 2xx Reply value that answers the MAIL or RCPT being handled: smtp-server's callback carries
 * only errors, and its own success text is a fixed "Accepted".
 */
export function answerSuccessWith(conn: SmtpConnectionHandle, r: Reply): void {
  if (conn instanceof BoundaryConnection) conn.successReply = r;
}

/** Send a Reply value on a raw connection (for replies outside a hook's callback). */
export function sendReply(conn: SmtpConnectionHandle, r: { code: number; enhanced: string; text: string }): void {
  conn.send(r.code, `${r.enhanced} ${r.text}`);
}
