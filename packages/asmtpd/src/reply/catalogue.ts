/**
 * catalogue.ts — the catalogue of replies asmtpd itself gives (downstream replies are passed through).
 * One place to read every text a client can get from us; each is a validated Reply value.
 */
import { reply, type Reply } from './reply.js';

export const REPLIES = {
  tooManyClients: () => reply(421, '4.7.0', 'too many connections, try again later'),
  tooManyFromIp: () => reply(421, '4.7.0', 'too many connections from your address, try again later'),
  tooManyErrors: () => reply(421, '4.7.0', 'too many errors, closing connection'),
  timeout: () => reply(421, '4.4.2', 'timeout exceeded, closing connection'),
  lineTooLong: () => reply(500, '5.5.2', 'line too long (more than 512 octets)'),
  badCommandBytes: () => reply(500, '5.5.2', 'command contains NUL or bare CR characters'),
  // a 50x: a bad command, counted toward MaxErrors (the header lines that follow are bad commands too)
  httpRequest: () => reply(502, '5.7.0', 'HTTP requests are not accepted: this is an SMTP server'),
  senderOk: () => reply(250, '2.1.0', 'sender ok'),
  relayDenied: () => reply(550, '5.7.1', 'relaying denied'),
  routingChars: () => reply(550, '5.7.1', 'relaying denied: source routes and %, ! or @ in local parts are not accepted'),
  noSuchUser: () => reply(550, '5.1.1', 'no such user here'),
  recipientOk: () => reply(250, '2.1.5', 'recipient ok'),
  messageTooBig: (maxBytes: number) => reply(552, '5.3.4', `message exceeds the maximum size of ${maxBytes} bytes`),
  bareLineEnding: () => reply(554, '5.6.0', 'message contains a bare CR or LF; lines must end with CRLF'),
  nulInData: () => reply(554, '5.6.0', 'message contains NUL characters'),
  dataTimeout: () => reply(421, '4.4.2', 'timeout while receiving the message, closing connection'),
  spoolFailed: () => reply(452, '4.3.1', 'insufficient system storage, try again later'),
  localError: () => reply(451, '4.3.0', 'local error in processing, try again later'),
  accepted: (id: string) => reply(250, '2.0.0', `Ok: queued as ${id}`),
  shuttingDown: () => reply(421, '4.3.2', 'server shutting down, try again later'),
} as const satisfies Record<string, (...args: never[]) => Reply>;

/** An Error that smtp-server turns into a reply: message "X.Y.Z text", responseCode = code. */
export class ReplyAsError extends Error {
  readonly responseCode: number;
  constructor(readonly reply: Reply) {
    super(`${reply.enhanced} ${reply.text}`);
    this.responseCode = reply.code;
  }
}
