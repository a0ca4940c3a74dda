/**
 * catalogue.ts — every reply text asmtpd itself gives (downstream replies and script texts are
 * passed through, parsed by reply.ts parseReply and policy/outcome.ts). One place to read what a
 * client, a log or a script can get from us; test/structure/reply-catalogue.test.ts fails on a
 * reply built anywhere else.
 *
 *   REPLIES        the replies we send, as validated Reply values (a few carry a log detail)
 *   ANSWER_TEXTS   reply-shaped texts that are facts rather than replies: the bounce probe's
 *                  answers (SENDER_BOUNCERES, X-Avenger) and the DNSBL's MAIL_ERROR
 *   ReplyAsError   a Reply as the Error smtp-server turns into a reply
 */
import { reply, withDetail, type DetailedReply, type Reply } from './reply.js';

export const REPLIES = {
  // the connection
  tooManyClients: () => reply(421, '4.7.0', 'too many connections, try again later'),
  tooManyFromIp: () => reply(421, '4.7.0', 'too many connections from your address, try again later'),
  tooManyErrors: () => reply(421, '4.7.0', 'too many errors, closing connection'),
  timeout: () => reply(421, '4.4.2', 'timeout exceeded, closing connection'),
  shuttingDown: () => reply(421, '4.3.2', 'server shutting down, try again later'),
  // a blocked client (issue 19, BlockAtBanner): before any fact is looked up, then the close
  blockedTempfail: () =>
    reply(421, '4.7.1', 'too many unknown recipients from your network: blocked for a while, try again later'),
  blockedReject: () => reply(554, '5.7.1', 'too many unknown recipients from your network: connection refused'),
  // ProxyProtocol: a PROXY header from a peer that is not listed, as the session's first bytes
  proxyHeaderRefused: () => reply(421, '4.7.0', 'PROXY header not accepted from your address, closing connection'),

  // any command
  lineTooLong: () => reply(500, '5.5.2', 'line too long (more than 512 octets)'),
  badCommandBytes: () => reply(500, '5.5.2', 'command contains NUL or bare CR characters'),
  // a 50x: a bad command, counted toward MaxErrors (the header lines that follow are bad commands too)
  httpRequest: () => reply(502, '5.7.0', 'HTTP requests are not accepted: this is an SMTP server'),
  localError: () => reply(451, '4.3.0', 'local error in processing, try again later'),

  // AUTH (commands/auth.ts); the 235 of a success is smtp-server's own
  authFailed: () => reply(535, '5.7.8', 'authentication credentials invalid'),
  authTooManyFailures: () => reply(421, '4.7.0', 'too many authentication failures, closing connection'),
  // a mechanism the session may not use in clear (PLAIN, LOGIN before STARTTLS while CRAM-MD5 is offered): RFC 4954 §6
  authNeedsTls: () => reply(538, '5.7.11', 'encryption required for requested authentication mechanism'),

  // ETRN (commands/etrn.ts): RFC 1985 §5, the texts as the RFC writes them
  etrnStarted: (node: string, n: number) => reply(253, '2.0.0', `OK, ${n} pending messages for node ${node} started`),
  etrnNothingWaiting: (node: string) => reply(251, '2.0.0', `OK, no messages waiting for node ${node}`),
  etrnCannotQueue: (node: string) => reply(458, '4.3.0', `Unable to queue messages for node ${node}`),
  etrnNodeUnknown: (node: string) =>
    reply(459, '4.7.1', `Node ${node} not allowed: no mail is held here for it (not a HoldDomain)`),
  etrnClientNotAllowed: (node: string) =>
    reply(459, '4.7.1', `Node ${node} not allowed: ETRN is for RelayNet clients and authenticated users`),
  etrnSyntax: () => reply(501, '5.5.4', 'Syntax: ETRN [@|#]domain'),
  // ETRN and ATRN outside a transaction only (RFC 1985 §5, RFC 2645 §5.2)
  turnInTransaction: (verb: string) => reply(503, '5.5.1', `${verb} is not allowed inside a mail transaction`),

  // ATRN (commands/atrn.ts): RFC 2645 §5.2 and §7
  atrnReversing: () => reply(250, '2.0.0', 'OK now reversing the connection'),
  atrnRefused: (domain: string) => reply(450, '4.7.1', `ATRN request refused: ${domain} is not held for you`),
  atrnBusy: () =>
    reply(451, '4.3.0', 'Unable to process ATRN request now: the mail is being delivered, try again later'),
  atrnNoMail: () => reply(453, '4.2.0', 'You have no mail'),
  atrnAuthRequired: () => reply(530, '5.7.0', 'Authentication required'),
  atrnSyntax: () => reply(501, '5.5.4', 'Syntax: ATRN [domain[,domain...]]'),
  // the ODMR port takes EHLO, AUTH, ATRN and QUIT (RFC 2645 §5.4), and RSET, NOOP, STARTTLS
  odmrNotOffered: (verb: string) => reply(502, '5.5.1', `${verb} is not offered on the On-Demand Mail Relay port`),

  // MAIL
  senderOk: () => reply(250, '2.1.0', 'sender ok'),
  eightBitNotOffered: () =>
    reply(
      555,
      '5.6.3',
      'BODY=8BITMIME is not supported here: the mail store behind this server takes 7-bit messages only',
    ),
  smtputf8NotOffered: () =>
    reply(
      555,
      '5.6.7',
      'SMTPUTF8 is not supported here: the mail store behind this server cannot take internationalized mail',
    ),
  mailParamUnknown: (key: string) => reply(555, '5.5.4', `MAIL FROM parameter ${key} is not supported`),

  // RCPT: routing
  relayDenied: () => reply(550, '5.7.1', 'relaying denied'),
  routingChars: () =>
    reply(550, '5.7.1', 'relaying denied: source routes and %, ! or @ in local parts are not accepted'),
  noSuchUser: () => reply(550, '5.1.1', 'no such user here'),
  // RCPT: a relay domain's recipient that no backend could verify (RcptVerifyTempfail yes, relay/recipient-verifier.ts)
  recipientUnverifiable: (detail: string): DetailedReply =>
    withDetail(reply(451, '4.4.1', 'cannot verify the recipient now, try again later'), detail),
  rcptParamUnknown: (key: string) => reply(555, '5.5.4', `RCPT TO parameter ${key} is not supported`),
  // RCPT: the policy (a script's own text replaces the default text of accept, reject and defer)
  recipientOk: (text?: string | null) => reply(250, '2.1.5', text ?? 'recipient ok'),
  rejectedByPolicy: () => reply(550, '5.7.1', 'rejected by policy'),
  deferredByPolicy: () => reply(451, '4.7.1', 'deferred by policy, try again later'),
  policyError: () => reply(451, '4.3.0', 'local policy error, try again later'),
  sendSeparately: () => reply(452, '4.5.3', 'send to this recipient separately'),
  // RCPT: the system default (MAIL_ERROR), from the client's facts
  spfFail: (explanation: string) => reply(550, '5.7.23', `SPF: ${explanation}`),
  spfNotPermitted: (domain: string, clientIp: string) =>
    reply(550, '5.7.23', `SPF: ${domain} does not designate ${clientIp} as permitted sender`),
  bouncesRefused: (sender: string, probeAnswer: string) =>
    reply(550, '5.1.8', `bounces to <${sender}> are refused: ${probeAnswer}`),
  dynamicName: (name: string) =>
    reply(451, '4.7.1', `client host name ${name} looks dynamic: send through your provider's mail server`),
  dnsTempfailReverse: (clientIp: string) => reply(451, '4.4.3', `temporary DNS failure: reverse lookup of ${clientIp}`),
  dnsTempfailSpf: (domain: string) => reply(451, '4.4.3', `temporary DNS failure: SPF check of ${domain}`),

  // DATA
  messageTooBig: (maxBytes: number) => reply(552, '5.3.4', `message exceeds the maximum size of ${maxBytes} bytes`),
  bareLineEnding: () => reply(554, '5.6.0', 'message contains a bare CR or LF; lines must end with CRLF'),
  nulInData: () => reply(554, '5.6.0', 'message contains NUL characters'),
  dataTimeout: () => reply(421, '4.4.2', 'timeout while receiving the message, closing connection'),
  spoolFailed: () => reply(452, '4.3.1', 'insufficient system storage, try again later'),
  accepted: (id: string) => reply(250, '2.0.0', `Ok: queued as ${id}`),
  // DATA: the body test (a command's own output replaces the default text of exit 100 and 111)
  bodyTestError: () => reply(451, '4.3.0', 'local error in body test, try again later'),
  bodyTestTimeout: () => reply(451, '4.3.0', 'body test timed out, try again later'),
  bodyTestRefused: (text: string) => reply(554, '5.7.1', text || 'message refused by body test'),
  bodyTestDeferred: (text: string) => reply(451, '4.7.1', text || 'message deferred by body test, try again later'),

  // the relay: generic texts for the client, the particulars in the detail (the log only)
  downstreamUnavailable: (detail: string): DetailedReply =>
    withDetail(reply(451, '4.4.1', 'mail system temporarily unavailable, try again later'), detail),
  downstreamLost: (detail: string): DetailedReply =>
    withDetail(reply(451, '4.4.2', 'connection to the mail system lost, try again later'), detail),
  localFailure: (detail: string): DetailedReply =>
    withDetail(reply(451, '4.3.0', 'local error in processing, try again later'), detail),
  insufficientStorage: (detail: string): DetailedReply =>
    withDetail(reply(452, '4.3.1', 'insufficient system storage, try again later'), detail),
  // the relay: what the downstream said or could not take
  unexpectedDownstreamReply: (line: string) => reply(451, '4.3.0', `unexpected downstream reply: ${line}`),
  downstreamTooBig: (downstream: string) =>
    reply(552, '5.3.4', `message size exceeds the limit of downstream ${downstream}`),
  downstreamNoSmtputf8: (downstream: string) =>
    reply(550, '5.6.7', `downstream ${downstream} does not support SMTPUTF8, which this message needs (RFC 6531)`),
  sendmailDashedRecipient: () =>
    reply(553, '5.1.3', 'recipient address starting with "-" cannot be passed to the Sendmail command'),
  sendmailTempfail: (command: string, detail: string) =>
    reply(451, '4.3.0', `${command} temporary failure (exit 75)${detail}`),
  sendmailFailed: (command: string, status: number, detail: string) =>
    reply(554, '5.3.0', `${command} failed (exit ${status})${detail}`),
  heldEnvelopeLineBreak: () => reply(451, '4.3.0', 'envelope contains a line break'),
  // the hold queue's deliveries (relay/hold-flush.ts, hold-routes.ts)
  heldExpired: (age: string) =>
    reply(451, '4.4.7', `delivery time expired: held for ${age}, longer than HoldMaxAge; not tried again`),
  heldNoRoute: () =>
    reply(
      451,
      '4.4.0',
      'no route for this recipient yet (no RelayHost, Sendmail or RelayDomain; HoldDomain: not flushed)',
    ),
  mxNullMx: (domain: string) => reply(556, '5.1.10', `domain ${domain} accepts no mail (null MX, RFC 7505)`),
  mxNoDomain: (domain: string) => reply(550, '5.1.2', `domain ${domain} does not exist`),
  mxNoAddress: (domain: string) => reply(550, '5.4.4', `no mail exchanger of ${domain} has an address (A or AAAA)`),
  mxLookupFailed: (domain: string, detail: string): DetailedReply =>
    withDetail(reply(451, '4.4.3', `cannot look up the mail exchangers of ${domain}, try again later`), detail),

  // --avenge
  noDeliveryInAvenge: () => reply(451, '4.3.0', 'no delivery in --avenge'),
} as const satisfies Record<string, (...args: never[]) => Reply>;

/** Reply-shaped texts that are facts (a probe's answer, a DNSBL's MAIL_ERROR), not replies we send. */
export const ANSWER_TEXTS = {
  rblListed: (zones: string, reasons: string) => `550 5.7.1 listed by ${zones}: ${reasons}`,
  // the bounce probe (facts/bounce-*.ts): what the sender's domain would do with a bounce
  probeTimedOut: () => '451 4.4.2 bounce probe timed out',
  probeFailed: () => '451 4.3.0 bounce probe failed',
  probeSenderUnfit: () => '451 4.1.7 the sender address cannot be probed',
  probeNoExchanger: (what: string) => `550 5.4.4 ${what}`,
  probeNoSuchDomain: (domain: string) => `550 5.1.2 ${domain}: no such domain`,
  probeNullMx: (domain: string) => `556 5.1.10 ${domain} accepts no mail (null MX)`,
  probeBadLiteral: (domain: string) => `550 5.1.2 ${domain}: not an address literal`,
  probeDnsTempfail: (name: string, code: string) => `451 4.4.3 temporary DNS failure looking up ${name} (${code})`,
  probeNoAnswer: (where: string, reason: string) => `451 4.4.1 no answer from ${where}: ${reason}`,
  probeNoSmtputf8: (where: string) => `451 4.6.7 ${where} does not announce SMTPUTF8`,
  probeUnexpected: (where: string, command: string, answer: string) =>
    `451 4.5.0 unexpected reply from ${where} to ${command}: ${answer}`,
  probeTimedOutAt: (where: string) => `451 4.4.2 bounce probe timed out waiting for ${where}`,
  probeConnectionLost: (where: string, reason: string) => `451 4.4.2 connection to ${where} lost: ${reason}`,
} as const satisfies Record<string, (...args: never[]) => string>;

/** An Error that smtp-server turns into a reply: message "X.Y.Z text", responseCode = code. */
export class ReplyAsError extends Error {
  readonly responseCode: number;
  constructor(readonly reply: Reply) {
    super(`${reply.enhanced} ${reply.text}`);
    this.responseCode = reply.code;
  }
}
