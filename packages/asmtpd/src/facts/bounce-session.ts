/**
 * facts/bounce-session — one bounce-probe conversation with one mail exchanger address:
 * greeting, EHLO (HELO when EHLO is refused), STARTTLS when offered (opportunistic, certificate
 * not checked, as for a bounce), `MAIL FROM:<>`, `RCPT TO:<sender>`, `QUIT`; never DATA.
 *
 *   probeAddress(target, options) -> SessionResult
 *     { kind: 'answered', outcome }   the server greeted: its verdict (or a tempfail) is final
 *     { kind: 'unreachable', reply }  no session (connect failed, closed or 4xx before greeting):
 *                                     try the next address; `reply` is the 451 to give if none answers
 *   oneLineReply(raw) -> string        "550 5.1.1 text…" from a (multi-line) SMTP reply
 *
 * Verdicts: 2xx to RCPT → accepted; 5xx to RCPT → refused for the address; 5xx to the greeting,
 * EHLO/HELO or MAIL FROM:<> → refused for the domain; 4xx, timeouts and broken connections →
 * tempfail. `signal` aborts the conversation (socket destroyed).
 *
 * nodemailer (10.x) has no public call for MAIL/RCPT without DATA (send() always goes on to DATA),
 * so the commands go through the primitive its own reset() and quit() use (sendCommandLine), and
 * announcedExtensions tells whether SMTPUTF8 was announced: both from smtp-client/nodemailer-internals.ts,
 * the one module that reaches into nodemailer. The tests cover them (bounce-probe.test.ts).
 */
import net from 'node:net';
import {
  announcedExtensions,
  createNodemailerConnection,
  sendCommandLine,
  type NodemailerConnection,
  type NodemailerFailure,
} from '../smtp-client/nodemailer-internals.js';
import { accepted, isPlainAddress, refused, tempfail, type ProbeOutcome } from './bounce-types.js';
import { ANSWER_TEXTS } from '../reply/catalogue.js';

export interface ProbeTarget {
  /** exchanger name (for SNI and messages) */
  host: string;
  ip: string;
}

export interface SessionOptions {
  port: number;
  /** our name for EHLO/HELO (Hostname) */
  hostname: string;
  /** the sender being probed (RCPT TO) */
  address: string;
  connectTimeoutMs: number;
  /** bound of each step once connected (the caller's deadline aborts sooner) */
  sessionTimeoutMs: number;
  signal: AbortSignal;
}

export type SessionResult = { kind: 'answered'; outcome: ProbeOutcome } | { kind: 'unreachable'; reply: string };

export async function probeAddress(target: ProbeTarget, o: SessionOptions): Promise<SessionResult> {
  const where = `${target.host} [${target.ip}]`;
  const socket = await connectSocket(target.ip, o.port, o.connectTimeoutMs, o.signal);
  if (typeof socket === 'string') return { kind: 'unreachable', reply: ANSWER_TEXTS.probeNoAnswer(where, socket) };
  const smtp = createNodemailerConnection({
    connection: socket,
    host: target.ip,
    port: o.port,
    name: o.hostname,
    opportunisticTLS: true,
    tls: { rejectUnauthorized: false, ...(net.isIP(target.host) ? {} : { servername: target.host }) },
    connectionTimeout: o.sessionTimeoutMs,
    greetingTimeout: o.sessionTimeoutMs,
    socketTimeout: o.sessionTimeoutMs,
    socketCloseTimeout: 0,
    logger: false,
  });
  const session = new Session(smtp, o.signal);
  try {
    const failure = await session.open();
    if (failure) return setupResult(failure, where);
    return { kind: 'answered', outcome: await dialogue(session, o.address, where) };
  } catch (err) {
    return { kind: 'answered', outcome: lostOutcome(err as NodemailerFailure, where) };
  } finally {
    session.finish();
  }
}

async function dialogue(session: Session, address: string, where: string): Promise<ProbeOutcome> {
  const utf8 = /[^\x00-\x7f]/.test(address);
  if (!isPlainAddress(address)) return tempfail(ANSWER_TEXTS.probeSenderUnfit());
  if (utf8 && !session.supports('SMTPUTF8')) return tempfail(ANSWER_TEXTS.probeNoSmtputf8(where));
  const mail = await session.command(`MAIL FROM:<>${utf8 ? ' SMTPUTF8' : ''}`);
  if (!mail.startsWith('2'))
    return mail.startsWith('5') ? refused(oneLineReply(mail), 'domain') : temporary(mail, 'MAIL FROM:<>', where);
  const rcpt = await session.command(`RCPT TO:<${address}>`);
  if (rcpt.startsWith('2')) return accepted();
  return rcpt.startsWith('5') ? refused(oneLineReply(rcpt), 'address') : temporary(rcpt, 'RCPT TO', where);
}

function temporary(reply: string, command: string, where: string): ProbeOutcome {
  if (reply.startsWith('4')) return tempfail(oneLineReply(reply));
  return tempfail(ANSWER_TEXTS.probeUnexpected(where, command, oneLineReply(reply)));
}

/** What went wrong before the session was set up (greeting, EHLO/HELO, STARTTLS). */
function setupResult(err: NodemailerFailure, where: string): SessionResult {
  const reply = err.response ?? '';
  const greeting = err.command === 'CONN';
  if (/^5\d\d/.test(reply)) return { kind: 'answered', outcome: refused(oneLineReply(reply), 'domain') };
  if (greeting && /^4\d\d/.test(reply)) return { kind: 'unreachable', reply: oneLineReply(reply) };
  if (/^4\d\d/.test(reply)) return { kind: 'answered', outcome: tempfail(oneLineReply(reply)) };
  if (greeting && err.code !== 'ETIMEDOUT')
    return { kind: 'unreachable', reply: ANSWER_TEXTS.probeNoAnswer(where, reason(err)) };
  return { kind: 'answered', outcome: lostOutcome(err, where) };
}

function lostOutcome(err: NodemailerFailure, where: string): ProbeOutcome {
  if (err.code === 'ETIMEDOUT') return tempfail(ANSWER_TEXTS.probeTimedOutAt(where));
  return tempfail(ANSWER_TEXTS.probeConnectionLost(where, reason(err)));
}

function reason(err: NodemailerFailure): string {
  return err.originalCode ?? err.message.split(':')[0] ?? 'error';
}

/** "550-5.1.1 a\n550 5.1.1 b" → "550 5.1.1 a b": the code, the enhanced code once, every line's text. */
export function oneLineReply(raw: string): string {
  const lines = raw.split(/\r?\n/).filter((l) => l.trim() !== '');
  const first = /^(\d{3})(?:[ -](\d\.\d{1,3}\.\d{1,3})(?=\s|$))?/.exec(lines[0] ?? '');
  if (!first) return raw;
  const [, code, enhanced] = first;
  const texts = lines.map((l) => {
    const text = l.replace(/^\d{3}[ -]?/, '').trim();
    return enhanced && text.startsWith(`${enhanced} `)
      ? text.slice(enhanced.length + 1).trim()
      : text === enhanced
        ? ''
        : text;
  });
  return [code, enhanced, ...texts].filter((t) => t).join(' ');
}

/** The nodemailer session: setup, one command at a time, and teardown. */
class Session {
  private pending: ((err: NodemailerFailure) => void) | null = null;
  private broken: NodemailerFailure | null = null;
  private readonly onAbort = (): void => this.smtp.close();

  constructor(
    private readonly smtp: NodemailerConnection,
    private readonly signal: AbortSignal,
  ) {
    // an 'error' without a listener would throw; errors after QUIT are of no interest
    smtp.on('error', (err: NodemailerFailure) => this.fail(err));
    smtp.on('end', () => this.fail({ message: 'connection closed', code: 'ECONNECTION', command: 'CONN' }));
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  /** greeting and EHLO/HELO (and STARTTLS); resolves with the failure, or null once ready */
  open(): Promise<NodemailerFailure | null> {
    return new Promise((resolve) => {
      this.pending = resolve;
      this.smtp.connect((err) => {
        this.pending = null;
        resolve(err ? (err as NodemailerFailure) : this.broken);
      });
    });
  }

  supports(keyword: string): boolean {
    return announcedExtensions(this.smtp).includes(keyword);
  }

  /** send one command; resolves with its reply, rejects when the connection breaks first */
  command(line: string): Promise<string> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.pending = reject;
      sendCommandLine(this.smtp, line, (reply: string) => {
        this.pending = null;
        resolve(reply);
      });
    });
  }

  /** QUIT when the session is healthy (the socket closes after the 221), else close now */
  finish(): void {
    this.signal.removeEventListener('abort', this.onAbort);
    if (this.broken || this.smtp.destroyed) return this.smtp.close();
    this.broken = { message: 'session finished', code: 'ECONNECTION' };
    this.smtp.quit();
    const timer = setTimeout(() => this.smtp.close(), 2000);
    timer.unref();
    this.smtp.once('end', () => clearTimeout(timer));
  }

  private fail(err: NodemailerFailure): void {
    if (!this.broken) this.broken = err;
    const pending = this.pending;
    this.pending = null;
    pending?.(err);
  }
}

/** TCP connect bounded by timeoutMs and the abort signal: the socket, or why not. */
function connectSocket(ip: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<net.Socket | string> {
  if (signal.aborted) return Promise.resolve('aborted');
  return new Promise((resolve) => {
    const socket = net.connect({ host: ip, port });
    const done = (result: net.Socket | string): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      if (typeof result === 'string') socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => done('aborted');
    const timer = setTimeout(() => done('connect timeout'), timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
    socket.once('connect', () => done(socket));
  });
}
