/**
 * relay/downstream-connection — one SMTP or LMTP client session to the downstream MTA, on
 * nodemailer's SMTP client (through smtp-client/nodemailer-internals.ts, the only importer of nodemailer).
 *
 * Public:
 *   openDownstream(options)        connect (TCP host:port or a unix socket), read the greeting, EHLO/LHLO
 *                                  with our hostname → { kind: 'open', connection } | { kind: 'failed', failure }
 *   DownstreamConnection.send(envelope, body, decide)
 *                                  one transaction (MAIL, RCPT…, DATA, body, end of data) → SendOutcome
 *   DownstreamConnection.command(line) / data(body, accepted, beforeDot, timeout)
 *                                  the same one step at a time (relay/proxy-transaction.ts)
 *   DownstreamConnection.reset() / quit() / destroy() / supports(ext) / sizeLimit / alive / messagesSent
 *   DownstreamFailure              what went wrong, classified for the relay (unreachable, timeout, lost,
 *                                  reply, recipients-refused, …; defined in downstream-failures.ts)
 *
 * RFCs: 5321 (SMTP), 2033 (LMTP: one reply per accepted recipient after the data), 2920 (PIPELINING,
 * nodemailer uses it when offered), 6152 (BODY=8BITMIME), 6531 (SMTPUTF8), 1870 (SIZE).
 *
 * Notes:
 * - The socket is opened here (net.connect, bounded by timeoutMs) and handed to nodemailer's
 *   SMTPConnection as an open `connection`, so "could not connect" is told apart from "the session
 *   broke". STARTTLS is not used: the downstream is the site's own MTA, normally on loopback.
 * - The body is a lazy stream: nodemailer pulls it only after the downstream's 354, so `bodyStarted`
 *   says exactly whether any message byte may have reached the downstream. Before the first byte,
 *   `decide` sees which recipients the downstream accepted and refused and may abort; aborting
 *   destroys the connection in the DATA phase, which makes the downstream discard the transaction
 *   (RFC 5321 §3.3: no final "." was sent).
 * - What nodemailer does not offer publicly comes from smtp-client/nodemailer-internals.ts: the EHLO
 *   keywords and SIZE it recorded, the recipients accepted and refused so far, and its command
 *   lines rewritten to add the SMTPUTF8 parameter when the client used it but the addresses are
 *   ASCII (nodemailer only adds it for non-ASCII addresses, and RFC 6531 headers need it too).
 * - The step-by-step transaction of the before-queue proxy (command(), data()): nodemailer's
 *   send() needs every recipient up front, so one command at a time goes through its command
 *   primitive (sendCommandLine: its reply parsing and timeouts), and the data through its data
 *   stream (openDataStream: its dot-stuffing and final dot; the LMTP replies matched to the
 *   recipients of setDataEnvelope). data() asks `beforeDot` after the last body byte: false
 *   drops the connection before the final dot.
 * - nodemailer dot-stuffs outward and ends the data with CRLF.CRLF; the body must already be CRLF.
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import {
  classifySendError,
  classifySetupError,
  connectionReason,
  refusedFrom,
  type DownstreamFailure,
  type RefusedRecipient,
} from './downstream-failures.js';
import {
  announcedExtensions,
  announcedSizeLimit,
  createNodemailerConnection,
  envelopeSoFar,
  openDataStream,
  rewriteCommandLines,
  sendCommandLine,
  setDataEnvelope,
  type NodemailerConnection,
  type NodemailerFailure,
} from '../smtp-client/nodemailer-internals.js';

export type { DownstreamFailure, RefusedRecipient };

/** thrown by the body when `beforeDot` refuses: the connection is dropped before the final dot */
class AbortBeforeDot extends Error {}

export type DownstreamEndpoint =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string }
  /** a connection that is already open (ATRN, RFC 2645: the roles reversed on the client's socket) */
  | { kind: 'socket'; socket: net.Socket; host: string; port: number };

export interface DownstreamOptions {
  endpoint: DownstreamEndpoint;
  lmtp: boolean;
  /** the name we give in EHLO/LHLO (config.hostname) */
  clientName: string;
  /** connect, greeting, each reply (socket inactivity) */
  timeoutMs: number;
}

export type SendOutcome =
  /** end of data answered 2xx (SMTP), or every LMTP reply is in: `refused` holds the LMTP failures */
  | { kind: 'sent'; response: string; accepted: string[]; refused: RefusedRecipient[] }
  /** `decide` said abort before the first body byte */
  | { kind: 'aborted'; accepted: string[]; refused: RefusedRecipient[] }
  | { kind: 'failed'; failure: DownstreamFailure; bodyStarted: boolean };

export interface DownstreamEnvelope {
  from: string;
  to: string[];
  sizeBytes: number;
  eightBit: boolean;
  /** send the SMTPUTF8 parameter (only when the downstream supports it) */
  smtputf8: boolean;
}

/** A reply to one step of a step-by-step transaction, or why there was none. */
export type StepResult = { kind: 'reply'; line: string } | { kind: 'failed'; failure: DownstreamFailure };

/** The end of a step-by-step transaction's data. */
export type DataOutcome =
  /** SMTP: the one reply to the final dot; LMTP: one reply per recipient (RFC 2033 §4.2) */
  | { kind: 'replied'; line: string; refused: RefusedRecipient[] }
  /** the DATA command itself was refused (no body was sent) */
  | { kind: 'refused'; line: string }
  /** `beforeDot` said no: the connection was dropped before the final dot (nothing delivered) */
  | { kind: 'aborted' }
  | { kind: 'failed'; failure: DownstreamFailure; bodyStarted: boolean; dotSent: boolean };

export type OpenResult =
  | { kind: 'open'; connection: DownstreamConnection }
  | { kind: 'failed'; failure: DownstreamFailure };

/** Connect and set up the session (greeting, EHLO or LHLO). Never throws. */
export async function openDownstream(options: DownstreamOptions): Promise<OpenResult> {
  const endpoint = options.endpoint;
  const closed: DownstreamFailure = { kind: 'unreachable', reason: 'the connection is closed' };
  const socket: { socket: net.Socket } | { failure: DownstreamFailure } =
    endpoint.kind === 'socket'
      ? endpoint.socket.destroyed
        ? { failure: closed }
        : { socket: endpoint.socket }
      : await connectSocket(endpoint, options.timeoutMs);
  if ('failure' in socket) return { kind: 'failed', failure: socket.failure };
  const smtp = createNodemailerConnection({
    connection: socket.socket,
    host: endpoint.kind === 'unix' ? 'localhost' : endpoint.host,
    port: endpoint.kind === 'unix' ? 0 : endpoint.port,
    lmtp: options.lmtp,
    name: options.clientName,
    ignoreTLS: true,
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    socketCloseTimeout: 0,
    logger: false,
  });
  const connection = new DownstreamConnection(smtp);
  return new Promise<OpenResult>((resolve) => {
    let settled = false;
    const fail = (err: NodemailerFailure): void => {
      if (settled) return;
      settled = true;
      connection.destroy();
      resolve({ kind: 'failed', failure: classifySetupError(err) });
    };
    smtp.once('error', fail);
    smtp.once('end', () => fail({ message: 'connection closed during the greeting', code: 'ECONNECTION' }));
    smtp.connect((err) => {
      if (err) return fail(err);
      if (settled) return;
      settled = true;
      resolve({ kind: 'open', connection });
    });
  });
}

function connectSocket(
  endpoint: Exclude<DownstreamEndpoint, { kind: 'socket' }>,
  timeoutMs: number,
): Promise<{ socket: net.Socket } | { failure: DownstreamFailure }> {
  return new Promise((resolve) => {
    const socket =
      endpoint.kind === 'tcp'
        ? net.connect({ host: endpoint.host, port: endpoint.port })
        : net.connect({ path: endpoint.path });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ failure: { kind: 'timeout', stage: 'connect' } });
    }, timeoutMs);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ failure: { kind: 'unreachable', reason: err.code ?? err.message } });
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve({ socket });
    });
  });
}

/** One open session. Not shared between concurrent transactions (the pool hands it out). */
export class DownstreamConnection {
  private dead = false;
  /** messages this session carried (end of data answered) */
  messagesSent = 0;
  private forceSmtpUtf8 = false;
  /** pending step-by-step commands, told when the connection breaks */
  private readonly onBroken = new Set<(failure: DownstreamFailure) => void>();

  constructor(private readonly smtp: NodemailerConnection) {
    rewriteCommandLines(smtp, (str) =>
      this.forceSmtpUtf8 && str.startsWith('MAIL FROM:') && !/ SMTPUTF8(\s|$)/.test(str) ? str + ' SMTPUTF8' : str,
    );
    // an 'error' without a listener would throw; errors in a transaction reach send()'s callback too
    smtp.on('error', (err: NodemailerFailure) => {
      this.dead = true;
      this.broke(
        err.code === 'ETIMEDOUT'
          ? { kind: 'timeout', stage: err.command ?? 'reply' }
          : { kind: 'lost', reason: connectionReason(err) },
      );
    });
    smtp.on('end', () => {
      this.dead = true;
      this.broke({ kind: 'lost', reason: 'connection closed by the downstream' });
    });
  }

  private broke(failure: DownstreamFailure): void {
    for (const f of [...this.onBroken]) f(failure);
  }

  get alive(): boolean {
    return !this.dead && !this.smtp.destroyed;
  }

  /** EHLO keyword support as nodemailer recorded it (SMTPUTF8, 8BITMIME, PIPELINING, SIZE, DSN) */
  supports(keyword: string): boolean {
    return announcedExtensions(this.smtp).includes(keyword);
  }

  /**
   * One transaction. `body` is called once, when the downstream is ready for the data;
   * `decide` sees the recipients accepted and refused so far and may abort before the first byte.
   * The whole transaction must end within transferTimeoutMs (else: timeout, connection destroyed).
   */
  send(
    envelope: DownstreamEnvelope,
    body: () => AsyncIterable<Buffer>,
    decide: (view: { accepted: string[]; refused: RefusedRecipient[] }) => 'send' | 'abort',
    transferTimeoutMs: number,
  ): Promise<SendOutcome> {
    return new Promise<SendOutcome>((resolve) => {
      let bodyStarted = false;
      let settled = false;
      // the whole transaction is bounded too, not only each reply (a downstream reading slowly)
      const deadline = setTimeout(() => {
        settle({ kind: 'failed', failure: { kind: 'timeout', stage: 'transfer' }, bodyStarted });
        this.destroy();
      }, transferTimeoutMs);
      const settle = (outcome: SendOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        this.forceSmtpUtf8 = false;
        if (outcome.kind === 'failed' && bodyStarted && outcome.failure.kind !== 'reply') this.destroy();
        resolve(outcome);
      };
      const view = (): { accepted: string[]; refused: RefusedRecipient[] } => {
        const env = envelopeSoFar(this.smtp);
        return { accepted: env.accepted, refused: env.rejectedErrors.map(refusedFrom) };
      };
      const connection = this;
      const stream = Readable.from(
        (async function* () {
          bodyStarted = true;
          const soFar = view();
          if (decide(soFar) === 'abort') {
            settle({ kind: 'aborted', ...soFar });
            connection.destroy();
            throw new Error('transaction aborted before the data');
          }
          yield* body();
        })(),
        { objectMode: false },
      );
      stream.on('error', () => {}); // reported through nodemailer's callback (ESTREAM) or already settled
      this.forceSmtpUtf8 = envelope.smtputf8 && this.supports('SMTPUTF8');
      this.smtp.send(
        { from: envelope.from, to: envelope.to, size: envelope.sizeBytes, use8BitMime: envelope.eightBit },
        stream,
        (err, info) => {
          if (err) return settle({ kind: 'failed', failure: classifySendError(err as NodemailerFailure), bodyStarted });
          this.messagesSent++;
          const rejected = (info.rejectedErrors ?? []) as NodemailerFailure[];
          settle({
            kind: 'sent',
            response: info.response,
            accepted: [...info.accepted],
            refused: rejected.map(refusedFrom),
          });
        },
      );
    });
  }

  /** The SIZE limit the downstream announced (0: none or not announced). */
  get sizeLimit(): number {
    return announcedSizeLimit(this.smtp);
  }

  /**
   * Step-by-step transaction (the before-queue proxy, relay/proxy-transaction.ts): one command
   * and its reply. nodemailer has no public API for a transaction whose recipients arrive one by
   * one, so this uses its command primitive (sendCommandLine: reply parsing, multi-line replies,
   * timeouts stay nodemailer's). A broken connection resolves as `failed`.
   */
  command(line: string): Promise<StepResult> {
    if (!this.alive)
      return Promise.resolve({ kind: 'failed', failure: { kind: 'lost', reason: 'connection already closed' } });
    return new Promise<StepResult>((resolve) => {
      let done = false;
      const finish = (r: StepResult): void => {
        if (done) return;
        done = true;
        this.onBroken.delete(broken);
        resolve(r);
      };
      const broken = (failure: DownstreamFailure): void => finish({ kind: 'failed', failure });
      this.onBroken.add(broken);
      sendCommandLine(this.smtp, line, (reply) => finish({ kind: 'reply', line: reply }));
    });
  }

  /**
   * DATA, then the body (nodemailer dot-stuffs it and adds the final dot), then the reply or
   * replies. `beforeDot` is asked once the whole body was read and before the final dot goes out:
   * false drops the connection instead (the downstream discards a transaction without its dot).
   * `accepted` are the recipients the downstream took at RCPT (LMTP answers once for each).
   */
  data(
    body: () => AsyncIterable<Buffer>,
    accepted: string[],
    beforeDot: () => boolean,
    transferTimeoutMs: number,
  ): Promise<DataOutcome> {
    return this.command('DATA').then((dataReply) => {
      if (dataReply.kind === 'failed')
        return { kind: 'failed', failure: dataReply.failure, bodyStarted: false, dotSent: false };
      if (!/^3/.test(dataReply.line)) return { kind: 'refused', line: dataReply.line };
      return this.streamBody(body, accepted, beforeDot, transferTimeoutMs);
    });
  }

  private streamBody(
    body: () => AsyncIterable<Buffer>,
    accepted: string[],
    beforeDot: () => boolean,
    transferTimeoutMs: number,
  ): Promise<DataOutcome> {
    return new Promise<DataOutcome>((resolve) => {
      let settled = false;
      let dotSent = false;
      const settle = (o: DataOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        this.onBroken.delete(broken);
        resolve(o);
      };
      const deadline = setTimeout(() => {
        settle({ kind: 'failed', failure: { kind: 'timeout', stage: 'transfer' }, bodyStarted: true, dotSent });
        this.destroy();
      }, transferTimeoutMs);
      const broken = (failure: DownstreamFailure): void =>
        settle({ kind: 'failed', failure, bodyStarted: true, dotSent });
      this.onBroken.add(broken);
      // the LMTP replies are matched to the accepted recipients through nodemailer's envelope
      setDataEnvelope(this.smtp, accepted);
      const sink = openDataStream(this.smtp, (err, line) => {
        if (err) {
          if (err.response && /^[45]\d\d/.test(err.response))
            return settle({ kind: 'replied', line: err.response, refused: [] });
          return settle({ kind: 'failed', failure: classifySendError(err), bodyStarted: true, dotSent });
        }
        this.messagesSent++;
        const refused = envelopeSoFar(this.smtp).rejectedErrors.map(refusedFrom);
        settle({ kind: 'replied', line: line ?? '', refused });
      });
      const source = Readable.from(
        (async function* () {
          yield* body();
          if (!beforeDot()) throw new AbortBeforeDot();
          dotSent = true;
        })(),
        { objectMode: false },
      );
      source.on('error', (err) => {
        // no final dot went out: dropping the connection makes the downstream discard the message
        if (err instanceof AbortBeforeDot) settle({ kind: 'aborted' });
        else
          settle({
            kind: 'failed',
            failure: { kind: 'spool', reason: (err as NodeJS.ErrnoException).code ?? err.message },
            bodyStarted: true,
            dotSent: false,
          });
        this.destroy();
      });
      source.pipe(sink as unknown as NodeJS.WritableStream);
    });
  }

  /** RSET; true when the session is clean and may carry another message */
  reset(): Promise<boolean> {
    if (!this.alive) return Promise.resolve(false);
    return new Promise((resolve) => this.smtp.reset((err) => resolve(!err && this.alive)));
  }

  /** polite close: QUIT, then the socket closes after the 221 */
  quit(): void {
    if (!this.alive) return this.destroy();
    this.dead = true;
    this.smtp.quit();
  }

  /** immediate close (in the DATA phase this aborts the transaction) */
  destroy(): void {
    this.dead = true;
    this.smtp.close();
    this.broke({ kind: 'lost', reason: 'connection closed' });
  }

  /** resolves once the socket is gone */
  ended(): Promise<void> {
    if (this.smtp.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.smtp.once('end', () => resolve()));
  }
}
