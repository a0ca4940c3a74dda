/**
 * trace-fields.ts — the header fields asmtpd prepends to every message it relays: Received-SPF
 * (when SPF ran), Received (RFC 5321 §4.4) and X-Avenger (the client's facts), in that order.
 *
 *   traceFields(version, runtime, session, transaction, recipient | null) -> string (CRLF lines)
 */
import { receivedSpf } from '@asmtpd/spf';
import { receivedHeader } from '../message/received.js';
import { xAvengerHeader } from '../message/x-avenger.js';
import { routersOf } from '../facts/client-facts.js';
import type { Session, Transaction } from './session.js';
import type { Runtime } from './runtime.js';

export function traceFields(
  version: string,
  rt: Runtime,
  s: Session,
  tx: Transaction,
  recipient: string | null,
): string {
  const f = tx.facts;
  const clientName = f?.reverse?.name ?? null;
  const spfField = f?.spf
    ? `${receivedSpf(f.spf, { ip: s.client.ip, envelopeFrom: tx.from, ...(s.helo ? { helo: s.helo } : {}), receiver: rt.config.hostname }, { foldWidth: 78 })}\r\n`
    : '';
  const received = receivedHeader({
    helo: s.helo,
    clientName,
    clientIp: s.client.ip,
    hostname: rt.config.hostname,
    version,
    proto: s.proto ?? 'ESMTP',
    tls: s.tls,
    authenticated: s.authUser !== null,
    smtputf8: tx.smtputf8,
    id: tx.id,
    recipient,
    date: new Date(),
  });
  const xav = xAvengerHeader({
    version,
    receiver: rt.config.hostname,
    clientIp: s.client.ip,
    clientPort: s.client.port,
    ...(clientName ? { clientDns: clientName } : {}),
    ...(f?.reverse?.dynamic ? { dynamic: true } : {}),
    ...(f?.bounce && f.bounce.kind !== 'accepted' ? { bounceRes: f.bounce.reply } : {}),
    ...(f?.syn ? { synFp: f.syn.fp, ...(f.syn.os ? { synOs: f.syn.os } : {}) } : {}),
    ...(s.tls ? { tls: `${s.tls.version}:${s.tls.cipher}` } : {}),
    ...(s.pipelining ? { pipelining: s.pipelining } : {}),
    ...(s.post ? { post: true } : {}),
    ...(f?.route ? routeTokens(routersOf(f.route, s.client.ip)) : f?.syn ? { hops: f.syn.hops } : {}),
    ...(f?.spf ? { spf: f.spf.result } : {}),
    ...(f?.rbl?.listed.length ? { rbl: f.rbl.listed.map((l) => l.zone) } : {}),
    ...verifyTokens(tx),
  });
  return spfField + received + xav;
}

function verifyTokens(tx: Transaction): { rcptVerify?: string[] } {
  const seen = [...new Set(tx.rcpts.flatMap((r) => (r.verify ? [r.verify] : [])))];
  return seen.length ? { rcptVerify: seen } : {};
}

function routeTokens(routers: string[]): { hops: number; path: string[] } {
  return { hops: routers.length, path: routers };
}
