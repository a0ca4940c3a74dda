/**
 * connect.ts — a new connection, before the banner: the blocklist first (issue 19: a blocked
 * client — not RelayNet, not WhiteList — hears 421 4.7.1 or 554 5.7.1 as BlockAtBanner says and
 * is closed; one in-memory lookup, before any fact, any process, any limit), then the limits
 * (MaxClients, MaxClientsPerIP) and shutdown are checked, the Session is made, and the connect-time facts start (reverse DNS,
 * DNSBLs, SYN and route). A refusal is a 421 from the catalogue, logged as session.refused.
 * With ProxyProtocol, smtp-server's session already names the client of the PROXY header
 * (boundary.ts): the limits, RelayNet and the facts are about it; the SYN and the route are not
 * taken (they would describe the load balancer, the TCP peer), and session.connect names the peer.
 *
 *   onConnect(deps, session, callback)      logs session.connect
 */
import type { SMTPServerSession } from 'smtp-server';
import { REPLIES, ReplyAsError } from '../../reply/catalogue.js';
import { formatReply } from '../../reply/reply.js';
import type { Logger } from '../../log/logger.js';
import type { AdmitVerdict, ConnectionTable, ConnState } from '../connections.js';
import type { Session } from '../session.js';
import type { Runtime } from '../runtime.js';
import { metrics } from '../../metrics/metrics.js';

export interface ConnectDeps {
  runtime(): Runtime;
  log: Logger;
  /** Workers N: this worker's number (session.connect names it) */
  worker?: number;
  table: ConnectionTable;
  shuttingDown(): boolean;
  /** protocol abuse seen before the Session existed (an early talker during GreetingDelay) */
  replayEarlyAbuse(st: ConnState, s: Session): void;
  /** SMTPTimeout passed without a command */
  onIdle(st: ConnState): void;
}

export function onConnect(d: ConnectDeps, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
  const { table, log } = d;
  const st = table.get(session.id);
  const rt = d.runtime();
  if (!st) return callback(new ReplyAsError(REPLIES.localError()));
  if (d.shuttingDown()) {
    metrics.connectionRefused('shutting-down');
    return callback(new ReplyAsError(REPLIES.shuttingDown()));
  }
  const ip = session.remoteAddress;
  const block = rt.neverBlocked(ip) ? null : rt.abuse.blocked(ip);
  if (block) {
    const r = rt.config.blockAtBanner === 'reject' ? REPLIES.blockedReject() : REPLIES.blockedTempfail();
    metrics.connectionRefused('blocked');
    rt.abuse.seen(ip, 'blocked');
    log.info('session.blocked', {
      sid: session.id,
      ip,
      net: block.net,
      until: new Date(block.until).toISOString(),
      reply: formatReply(r),
      at: 'banner',
    });
    return callback(new ReplyAsError(r));
  }
  const admitted = table.admit(st, session.remoteAddress, rt.config.maxClients, rt.config.maxClientsPerIp);
  if (typeof admitted === 'string') return afterAdmission(d, session, st, admitted, callback);
  admitted.then(
    (verdict) => afterAdmission(d, session, st, verdict, callback),
    () => callback(new ReplyAsError(REPLIES.localError())),
  );
}

/** The limits answered (at once, or from the primary across the workers): refuse, or start the session. */
function afterAdmission(
  d: ConnectDeps,
  session: SMTPServerSession,
  st: ConnState,
  verdict: AdmitVerdict,
  callback: (err?: Error | null) => void,
): void {
  const { table, log } = d;
  const rt = d.runtime();
  if (verdict !== 'ok') {
    metrics.connectionRefused(verdict);
    log.warn('session.refused', { ip: session.remoteAddress, port: session.remotePort, limit: verdict });
    return callback(new ReplyAsError(verdict === 'max-clients' ? REPLIES.tooManyClients() : REPLIES.tooManyFromIp()));
  }
  // the client went away while the primary counted it (Workers N), or before its address was known
  // (a reset right after the SYN: smtp-server then has no remoteAddress): no session, no facts
  if (table.get(session.id) !== st || st.gone || !session.remoteAddress)
    return callback(new ReplyAsError(REPLIES.localError()));
  const sessionLog = log.child({ sid: session.id });
  const s: Session = {
    id: session.id,
    client: { ip: session.remoteAddress, port: session.remotePort },
    local: { ip: session.localAddress, port: session.localPort },
    startedAt: Date.now(),
    helo: null,
    proto: null,
    tls: null,
    proxy: st.proxy,
    mayRelay: rt.relayNets.has(session.remoteAddress),
    authUser: null,
    authFailures: 0,
    tx: null,
    pipelining: null,
    post: false,
    facts: rt.facts(session.remoteAddress, sessionLog),
    decisions: new Map(),
    counts: { messages: 0, rcpts: 0, rejected: 0, errors: 0 },
    log: sessionLog,
  };
  st.session = s;
  rt.abuse.seen(s.client.ip, 'connection');
  s.facts.connected(session.remotePort, { tcpPeer: s.proxy === null });
  s.log.info('session.connect', {
    ip: s.client.ip,
    port: s.client.port,
    local_ip: s.local.ip,
    local_port: s.local.port,
    relay_net: s.mayRelay,
    ...(d.worker ? { worker: d.worker } : {}),
    ...(s.proxy ? { proxy: s.proxy.peer.ip, proxy_port: s.proxy.peer.port, proxy_version: s.proxy.version } : {}),
  });
  d.replayEarlyAbuse(st, s);
  table.armDeadline(st, rt.config.smtpTimeoutMs, () => d.onIdle(st));
  callback();
}
