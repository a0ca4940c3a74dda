/**
 * facts/bounce-probe — the bounce probe (SMTPCB; spec asmtpd.md §4, docs/facts.md "Bounce probe"):
 * would the sender's domain accept a bounce to the sender? Feeds SENDER_BOUNCERES.
 *
 *   createBounceProber({ hostname, timeoutMs, cacheTtlMs, db, resolver, port?, log, now? }) -> BounceProber
 *   BounceProber.probe(sender) -> BounceResult        never rejects
 *
 * A probe: the exchangers of the sender's domain (bounce-route: MX by preference, implicit MX,
 * null MX, NXDOMAIN), then at most MAX_ADDRESSES addresses in that order until one greets
 * (bounce-session: EHLO, MAIL FROM:<>, RCPT TO:<sender>, QUIT). The whole probe is bounded by
 * timeoutMs: then the conversation is aborted and the answer is `451 4.4.2 bounce probe timed
 * out`. Temporary failures are never refusals.
 *
 * Cache (StateDb.bounceCache), keys:
 *   `domain:DOMAIN`           a refusal before RCPT (greeting, EHLO/HELO, MAIL, NXDOMAIN, null MX,
 *                             no address): answers every sender of the domain; looked up first
 *   `address:LOCAL@DOMAIN`    the RCPT answer, or a temporary failure, for this sender (the local
 *                             part as given, the domain in lower case)
 * accepted/refused live cacheTtlMs, tempfail min(cacheTtlMs, 10 min); expired entries are deleted
 * at most once an hour, by a probe not answered from the cache. A cache that fails is logged (`store.error`) and
 * the probe goes on without it. Concurrent probes of one address share one run.
 * One `probe.done` line per probe (info; warn for a temporary failure).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log/logger.js';
import { splitAddress } from '../recipients/address.js';
import type { StateDb } from '../store/state-db.js';
import { guardedCache } from './bounce-cache.js';
import { addressesOf, dnsTempfail, exchangersOf } from './bounce-route.js';
import { probeAddress } from './bounce-session.js';
import {
  isPlainAddress,
  refused,
  tempfail,
  type BounceResult,
  type ProbeOutcome,
  type ProbeResolver,
} from './bounce-types.js';
import { withDeadline } from './deadline.js';
import { ANSWER_TEXTS } from '../reply/catalogue.js';

export type { ProbeResolver } from './bounce-types.js';

export interface BounceProber {
  probe(sender: string): Promise<BounceResult>;
}

export interface BounceProberOptions {
  /** our name in EHLO/HELO */
  hostname: string;
  /** the whole probe (SMTPCBTimeout) */
  timeoutMs: number;
  /** SMTPCBCacheTTL */
  cacheTtlMs: number;
  db: StateDb;
  resolver: ProbeResolver;
  /** default 25 (tests use another) */
  port?: number;
  log: Logger;
  /** clock of the cache (ms since the epoch) */
  now?: () => number;
}

/** Addresses tried per probe, over all exchangers. */
export const MAX_ADDRESSES = 5;
export const TEMPFAIL_TTL_MS = 10 * 60 * 1000;
export const TIMED_OUT_REPLY = ANSWER_TEXTS.probeTimedOut();
/** Expired cache entries are deleted by the first probe after this interval. */
export const PURGE_INTERVAL_MS = 60 * 60 * 1000;

interface Sender {
  address: string;
  domain: string;
  addressKey: string;
  domainKey: string;
}

interface Finished {
  outcome: ProbeOutcome;
  /** the exchanger that answered */
  mx?: string;
  ip?: string;
}

export function createBounceProber(o: BounceProberOptions): BounceProber {
  const now = o.now ?? Date.now;
  const port = o.port ?? 25;
  const inflight = new Map<string, Promise<BounceResult>>();
  const cache = guardedCache(o.db.bounceCache, o.log);
  let nextPurge = 0;

  const run = async (sender: Sender): Promise<BounceResult> => {
    const started = performance.now();
    const controller = new AbortController();
    const finished = await withDeadline<Finished>(
      attempt(sender, controller.signal, started + o.timeoutMs),
      o.timeoutMs,
      () => {
        controller.abort();
        return { outcome: tempfail(TIMED_OUT_REPLY) };
      },
    );
    const { outcome } = finished;
    if (now() >= nextPurge) {
      nextPurge = now() + PURGE_INTERVAL_MS;
      cache.purge(now());
    }
    const ttl = outcome.kind === 'tempfail' ? Math.min(o.cacheTtlMs, TEMPFAIL_TTL_MS) : o.cacheTtlMs;
    if (ttl > 0) cache.put(outcome.scope === 'domain' ? sender.domainKey : sender.addressKey, outcome, now() + ttl);
    const result: BounceResult = { ...outcome, cached: false };
    report(o.log, sender.address, result, started, { mx: finished.mx, ip: finished.ip });
    return result;
  };

  const attempt = async (sender: Sender, signal: AbortSignal, deadline: number): Promise<Finished> => {
    try {
      return await talk(sender, signal, deadline);
    } catch (err) {
      o.log.error('daemon.error', { where: 'bounce probe', sender: sender.address, error: String(err) });
      return { outcome: tempfail(ANSWER_TEXTS.probeFailed()) };
    }
  };

  const talk = async (sender: Sender, signal: AbortSignal, deadline: number): Promise<Finished> => {
    const route = await exchangersOf(sender.domain, o.resolver);
    if (route.kind === 'final') return { outcome: route.outcome };
    let tried = 0;
    let unreachable: string | null = null;
    let dnsFailure: ProbeOutcome | null = null;
    for (const host of route.hosts) {
      if (tried >= MAX_ADDRESSES || signal.aborted) break;
      const found = await addressesOf(host, o.resolver);
      if (found.kind === 'failed') dnsFailure ??= dnsTempfail(host, found.code);
      if (found.kind !== 'found') continue;
      for (const ip of found.ips.slice(0, MAX_ADDRESSES - tried)) {
        if (signal.aborted) break;
        tried++;
        const remaining = Math.max(deadline - performance.now(), 1);
        const connectTimeoutMs = Math.min(remaining, Math.max(o.timeoutMs / MAX_ADDRESSES, 500));
        const options = {
          port,
          hostname: o.hostname,
          address: sender.address,
          connectTimeoutMs,
          sessionTimeoutMs: remaining,
          signal,
        };
        const r = await probeAddress({ host, ip }, options);
        if (r.kind === 'answered') return { outcome: r.outcome, mx: host, ip };
        unreachable = r.reply;
      }
    }
    if (unreachable !== null) return { outcome: tempfail(unreachable) };
    if (dnsFailure) return { outcome: dnsFailure };
    const what = route.implicit
      ? `${sender.domain} has no mail exchanger and no address`
      : `no address for the mail exchangers of ${sender.domain}`;
    return { outcome: refused(ANSWER_TEXTS.probeNoExchanger(what), 'domain') };
  };

  return {
    probe(text: string): Promise<BounceResult> {
      const started = performance.now();
      const sender = parseSender(text);
      if (!sender) {
        const result: BounceResult = { kind: 'tempfail', reply: ANSWER_TEXTS.probeSenderUnfit(), cached: false };
        report(o.log, text, result, started, {});
        return Promise.resolve(result);
      }
      const hit = cache.get(sender.domainKey, now(), 'domain') ?? cache.get(sender.addressKey, now(), 'address');
      if (hit) {
        report(o.log, sender.address, hit, started, {});
        return Promise.resolve(hit);
      }
      const running = inflight.get(sender.addressKey);
      if (running) return running;
      const p = run(sender).finally(() => inflight.delete(sender.addressKey));
      inflight.set(sender.addressKey, p);
      return p;
    },
  };
}

function parseSender(text: string): Sender | null {
  const { local, domain } = splitAddress(text.trim());
  if (!local || !domain || !isPlainAddress(text)) return null;
  const address = `${local}@${domain}`;
  return { address, domain, addressKey: `address:${address}`, domainKey: `domain:${domain}` };
}

function report(
  log: Logger,
  sender: string,
  r: BounceResult,
  started: number,
  where: { mx?: string | undefined; ip?: string | undefined },
): void {
  const fields: Record<string, unknown> = {
    sender,
    result: r.kind,
    reply: r.reply,
    cached: r.cached,
    ms: Math.round(performance.now() - started),
  };
  if (r.scope) fields.scope = r.scope;
  if (where.mx) fields.mx = where.mx;
  if (where.ip) fields.ip = where.ip;
  log.log(r.kind === 'tempfail' ? 'warn' : 'info', 'probe.done', fields);
}
