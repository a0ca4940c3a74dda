/**
 * session.ts — the state of one SMTP connection (Session) and of one message (Transaction).
 * A Session lives from accept to close; a Transaction from MAIL FROM to the end of DATA or RSET.
 */
import type { Logger } from '../log/logger.js';
import type { Route } from '../recipients/route.js';
import type { RecipientDecision } from '../policy/decide.js';
import type { BodyGroup } from '../policy/body-test.js';
import type { ClientFacts, FactValues } from '../facts/client-facts.js';
import type { RelayTransaction } from '../relay/types.js';
import type { ProxyOrigin } from './boundary.js';

export type { Endpoint } from '../policy/connection-view.js';
import type { Endpoint, TlsFacts } from '../policy/connection-view.js';

export interface Transaction {
  /** queue id: in the Received header, the 250 reply and every log line of the message */
  id: string;
  /** envelope sender as written by the client; '' for the null sender */
  from: string;
  smtputf8: boolean;
  eightBit: boolean;
  /** accepted recipients in order, with their routes and policy decisions */
  /** verify: RCPT_VERIFY of a relay-domain recipient (X-Avenger's rcpt-verify) */
  rcpts: { address: string; route: Route; decision: RecipientDecision; verify?: string }[];
  /** the body-test group of the accepted recipients (undefined until the first is accepted) */
  group: BodyGroup | null | undefined;
  /** the facts as the last policy decision saw them (X-Avenger, Received-SPF); null before */
  facts: FactValues | null;
  /** SIZE= the client declared at MAIL */
  declaredSize?: number;
  /**
   * the downstream side (the before-queue proxy, relay/proxy-transaction.ts): opened at the first
   * accepted RCPT; 'unverified' when the relay has no RCPT-time verdict for this transaction (no
   * proxy: Sendmail, hold queue; all RelayConnections busy; downstream down with HoldOnFailure)
   */
  downstream?: RelayTransaction | 'unverified';
  log: Logger;
}

export interface Session {
  id: string;
  /** the client: with ProxyProtocol, the one the PROXY header named, not the TCP peer */
  client: Endpoint;
  local: Endpoint;
  /** the load balancer that sent the PROXY header (ProxyProtocol); null: the TCP peer is the client */
  proxy: ProxyOrigin | null;
  startedAt: number;
  helo: string | null;
  /** 'SMTP' after HELO, 'ESMTP' after EHLO */
  proto: 'SMTP' | 'ESMTP' | null;
  tls: TlsFacts | null;
  /** the client may relay to any domain (RelayNet); an authenticated client may too (authUser) */
  mayRelay: boolean;
  /** the name the client authenticated as (SMTP AUTH, commands/auth.ts); null before or without */
  authUser: string | null;
  /** failed AUTH attempts on this connection (AuthMaxFailures) */
  authFailures: number;
  tx: Transaction | null;
  /** protocol abuse seen so far: data before the banner, or pipelining where it was not offered */
  pipelining: 'pre-greeting' | 'unadvertised' | null;
  /** the client sent an HTTP verb (POST, GET, CONNECT, HEAD) as a command */
  post: boolean;
  /** reverse DNS, DNSBL, SPF, bounce probe (started at connect and MAIL, awaited at RCPT) */
  facts: ClientFacts;
  /** RCPT decisions per (sender, recipient), so a repeated RCPT does not re-run the script */
  decisions: Map<string, RecipientDecision>;
  counts: { messages: number; rcpts: number; rejected: number; errors: number };
  log: Logger;
}
