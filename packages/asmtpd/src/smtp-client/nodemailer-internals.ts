/**
 * smtp-client/nodemailer-internals — the only importer of nodemailer in asmtpd, and the only module that
 * reads or replaces its private members (nodemailer 10.6, pinned; the tripwire test
 * nodemailer-internals.test.ts fails when an upgrade changes any of them).
 *
 *   createNodemailerConnection(options)       nodemailer's SMTP client connection (SMTPConnection)
 *   announcedExtensions(c)                    the EHLO keywords it recorded (SMTPUTF8, 8BITMIME, PIPELINING, SIZE, DSN…)
 *   announcedSizeLimit(c)                     the SIZE it recorded (0: none)
 *   envelopeSoFar(c)                          recipients accepted and refused so far in send()'s transaction
 *   setDataEnvelope(c, accepted)              the recipients the replies to the data belong to (LMTP: one each)
 *   sendCommandLine(c, line, onReply)         one command line, and the handler of its reply
 *   rewriteCommandLines(c, rewrite)           every command line nodemailer sends passes through `rewrite`
 *   openDataStream(c, callback)               the data sink (dot-stuffing, final dot), replies to `callback`
 *
 * Users: relay/downstream-connection.ts (the relay's downstream sessions) and
 * facts/bounce-session.ts (the bounce probe's MAIL/RCPT without DATA). This module imports
 * nothing of asmtpd, so neither depends on the other through it.
 *
 * nodemailer's public API is send() (a whole transaction: every recipient up front, then the data)
 * and reset(), quit(), close(). Each function below says which private member it uses and what
 * upstream option or call would make it unnecessary. Each connection is changed on its own
 * instance: nodemailer's class is never patched.
 */
import SMTPConnection from 'nodemailer/lib/smtp-connection';

/** nodemailer's SMTP client connection: its public API (connect, send, reset, quit, close, events). */
export type NodemailerConnection = SMTPConnection;
export type NodemailerConnectionOptions = SMTPConnection.Options;

/** What nodemailer's errors carry (see _formatError in nodemailer/lib/smtp-connection). */
export interface NodemailerFailure {
  message: string;
  code?: string;
  originalCode?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  timeoutType?: string;
  rejectedErrors?: NodemailerFailure[];
}

/** The private members used below (nodemailer 10.6). */
interface Internals {
  _envelope: false | { accepted?: string[]; rejected?: string[]; rejectedErrors?: NodemailerFailure[] };
  _supportedExtensions: string[];
  _maxAllowedSize: number;
  _responseActions: ((line: string) => void)[];
  _sendCommand(str: string, logStr?: string): void;
  _createSendStream(callback: (err: NodemailerFailure | null, line?: string) => void): NodeJS.WritableStream;
}

function internals(c: NodemailerConnection): Internals {
  return c as unknown as Internals;
}

export function createNodemailerConnection(options: NodemailerConnectionOptions): NodemailerConnection {
  return new SMTPConnection(options);
}

/**
 * `_supportedExtensions`. Upstream: none public (only custom AUTH handlers see `extensions`);
 * a public `supportedExtensions` (or the keywords in connect()'s callback) would remove it.
 */
export function announcedExtensions(c: NodemailerConnection): readonly string[] {
  return internals(c)._supportedExtensions;
}

/**
 * `_maxAllowedSize`. Upstream: none public (only custom AUTH handlers see `maxAllowedSize`);
 * a public `maxAllowedSize` would remove it.
 */
export function announcedSizeLimit(c: NodemailerConnection): number {
  return internals(c)._maxAllowedSize || 0;
}

/**
 * `_envelope` during send(): the recipients accepted and refused so far (read when the data is
 * about to go out). Upstream: none; a per-recipient event or a hook before the data (with the
 * envelope's accepted and rejectedErrors) in send() would remove it.
 */
export function envelopeSoFar(c: NodemailerConnection): { accepted: string[]; rejectedErrors: NodemailerFailure[] } {
  const env = internals(c)._envelope;
  return { accepted: [...(env ? (env.accepted ?? []) : [])], rejectedErrors: env ? (env.rejectedErrors ?? []) : [] };
}

/**
 * `_envelope` set for openDataStream(): LMTP's replies after the data are matched to these
 * recipients, and refused ones are collected in its rejectedErrors (envelopeSoFar). Upstream:
 * none; a step-by-step transaction API (mail, rcpt, data) would remove it.
 */
export function setDataEnvelope(c: NodemailerConnection, accepted: readonly string[]): void {
  internals(c)._envelope = { accepted: [...accepted], rejected: [], rejectedErrors: [] };
}

/**
 * `_responseActions` + `_sendCommand`: one command and its reply, with nodemailer's reply parsing
 * (multi-line replies) and timeouts; the same primitive its own reset() and quit() use. The line
 * goes through rewriteCommandLines(). Upstream: none; a public `command(line, callback)` would
 * remove it.
 */
export function sendCommandLine(c: NodemailerConnection, line: string, onReply: (reply: string) => void): void {
  const i = internals(c);
  i._responseActions.push(onReply);
  i._sendCommand(line);
}

/**
 * `_sendCommand` replaced on this connection only: every command line nodemailer writes (its own
 * MAIL FROM in send() too) passes through `rewrite`. Used to add SMTPUTF8 to MAIL FROM when the
 * client used it but the addresses are ASCII: nodemailer adds it only for non-ASCII addresses.
 * Upstream: none; an envelope option like `use8BitMime` for SMTPUTF8 would remove it.
 */
export function rewriteCommandLines(c: NodemailerConnection, rewrite: (line: string) => string): void {
  const i = internals(c);
  const sendCommand = i._sendCommand.bind(c);
  i._sendCommand = (str: string, logStr?: string) => sendCommand(rewrite(str), logStr);
}

/**
 * `_createSendStream`: after a 354 to DATA, the stream that dot-stuffs the body and ends it with
 * the final dot; `callback` gets the reply (SMTP) or the last of the replies (LMTP, one per
 * recipient of setDataEnvelope). Upstream: none; a public data step would remove it.
 */
export function openDataStream(
  c: NodemailerConnection,
  callback: (err: NodemailerFailure | null, line?: string) => void,
): NodeJS.WritableStream {
  return internals(c)._createSendStream(callback);
}
