/**
 * relay/hold-flush — delivering the hold queue: one pass over the held messages, each claimed
 * (queue-store.ts: one attempt per message at a time across processes), delivered per route
 * (hold-routes.ts), and settled: delivered → gone; refused (5xx) or older than HoldMaxAge →
 * failed/ with a DSN to the sender; deferred → stays, with its attempt counted and its next retry.
 *
 * Public:
 *   flushHeld(opts) → FlushReport              all held mail, or only the recipients in opts.domain;
 *                                              to their routes, or every one to opts.target
 *   countHeldFor(dir, domain) → number         held messages with a recipient in domain still to
 *                                              deliver (ETRN's 251/253; claimed ones count, admin-held not)
 *   deliverHeldOver(socket, opts) → FlushReport    ATRN (RFC 2645): domain's mail over a connection on
 *                                              which we are now the client (the peer greets, we EHLO)
 *   retryDelayMs(attempts, backoff)            HoldRetry: min · 2^(attempts-1), at most max
 *   queueNow()                                 the queue's clock: Date.now(), plus ASMTPD_TEST_CLOCK_OFFSET_MS
 *                                              when that variable is set (tests only: HoldMaxAge
 *                                              expiry and due retries without waiting days)
 *
 * Recipients, not messages, are the unit (as Postfix's queue file marks each recipient done):
 * a message's recipients are grouped by route and each group is one SMTP transaction; the
 * recipients a downstream took are written to the message's record (fsynced) before anything
 * else, so a later pass never sends them again; the others stay. A flush of one DOMAIN (ETRN,
 * ATRN, --flush DOMAIN) sends only that domain's recipients and leaves the rest held. The message
 * file leaves the queue when no recipient is left: unlinked when all were delivered, moved to
 * failed/ when some were refused for good. The retry pass (dueOnly) never sends HoldDomain
 * recipients (they wait for a flush or ATRN) but does expire them.
 *
 * DSNs (message/dsn.ts, RFC 3464, the original's header section as text/rfc822-headers): for the
 * recipients refused or expired in this attempt, from <> to a non-null sender, written to the
 * hold queue itself (fsynced) before the original's record says "failed", and delivered at the end
 * of the same pass along the configured routes (never to a flush's target or ATRN peer); if that
 * fails it stays queued like any other message.
 *
 * Crash window (kill -9 at any point): a message is always in exactly one of new/, work/, failed/
 * (or gone after delivery). The one duplicate that cannot be avoided: the downstream answered 250
 * to the final dot and we died before the record (or the unlink) — the claim is recovered and the
 * recipients sent again; at most one per message in flight at the crash (≤ concurrency). A crash
 * between a DSN's write and the original's record may queue a second DSN for the same recipients.
 */
import { unlink, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Config } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { buildDsn, originalHeaderLines } from '../message/dsn.js';
import { metrics } from '../metrics/metrics.js';
import { REPLIES } from '../reply/catalogue.js';
import type { Reply } from '../reply/reply.js';
import { readHeld, writeHeld, type HeldEnvelope } from './hold-queue.js';
import { createHoldRoutes, domainOf, type HoldRoutes, type MxResolver } from './hold-routes.js';
import { messageChunks } from './message-body.js';
import {
  claim,
  ensureQueueDirs,
  listEntries,
  listEntriesSettled,
  readRecord,
  recoverClaims,
  writeRecord,
  type Claim,
  type FailedRecipientRecord,
  type QueueEntry,
  type QueueRecord,
} from './queue-store.js';
import { replyForLog } from './relay-replies.js';
import { createSmtpRelay } from './smtp-relay.js';
import { resultsPerRecipient, type OutgoingMessage, type Relay } from './types.js';

export interface FlushReport {
  /** messages whose flushed recipients were all delivered */
  delivered: number;
  /** messages with a recipient deferred (still queued) */
  deferred: number;
  /** messages with a recipient refused for good or expired (DSN queued) */
  failed: number;
  /** messages another attempt held (locked) */
  busy: number;
}

export type FlushBy = 'retry' | 'flush' | 'etrn' | 'atrn';

export interface FlushOptions {
  /** HoldQueue */
  dir: string;
  /** routes, HoldMaxAge, HoldRetry, Hostname, RelayTimeout, RelayConnections */
  config: Config;
  /** only the recipients in this domain */
  domain?: string;
  /** every recipient to this SMTP host instead of its route (DSNs still go their own way) */
  target?: { host: string; port: number };
  /** routes given by the caller (deliverHeldOver); not closed here */
  routes?: HoldRoutes;
  /** for HoldDomains without a site: their MX and its addresses (the daemon's resolver) */
  resolver?: MxResolver;
  /** messages delivered at once (default RelayConnections) */
  concurrency?: number;
  /** the retry scheduler: only messages whose retry is due, never HoldDomain recipients */
  dueOnly?: boolean;
  /** for logs (queue.* by) */
  by?: FlushBy;
  log?: Logger;
}

export function queueNow(): number {
  const offset = Number(process.env.ASMTPD_TEST_CLOCK_OFFSET_MS ?? 0);
  return Date.now() + (Number.isFinite(offset) ? offset : 0);
}

export function retryDelayMs(attempts: number, backoff: { minMs: number; maxMs: number }): number {
  return Math.min(backoff.maxMs, backoff.minMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
}

const NO_LOG: Pick<Logger, 'info' | 'warn' | 'error'> = { info: () => {}, warn: () => {}, error: () => {} };

function pendingOf(env: HeldEnvelope, rec: QueueRecord): string[] {
  const settled = new Set([...rec.done, ...rec.failed.map((f) => f.to)].map((a) => a.toLowerCase()));
  return env.to.filter((a) => !settled.has(a.toLowerCase()));
}

function heldMessage(env: HeldEnvelope, path: string, to: string[]): OutgoingMessage {
  return {
    id: env.queueId,
    from: env.from,
    to,
    smtputf8: env.smtputf8,
    eightBit: env.eightBit,
    headerPrefix: Buffer.alloc(0),
    spoolPath: path,
    spoolOffset: env.headerOffset,
    size: env.sizeBytes - env.headerOffset,
  };
}

function ageText(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 48 ? `${Math.floor(h / 24)}d` : h >= 1 ? `${Math.floor(h)}h` : `${Math.max(0, Math.floor(ms / 60_000))}m`;
}

type Outcome = 'delivered' | 'deferred' | 'failed' | 'busy' | 'skipped';

interface PassContext {
  opts: FlushOptions;
  routes: HoldRoutes;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** DSNs queued in this pass (their entries), delivered at its end */
  dsns: QueueEntry[];
}

export async function flushHeld(opts: FlushOptions): Promise<FlushReport> {
  const started = Date.now();
  const log = opts.log ?? NO_LOG;
  await ensureQueueDirs(opts.dir);
  const recovered = await recoverClaims(opts.dir);
  if (recovered > 0) log.warn('queue.recovered', { count: recovered });
  const ownRoutes = opts.routes
    ? null
    : createHoldRoutes(opts.config, {
        ...(opts.target ? { target: opts.target } : {}),
        ...(opts.resolver ? { resolver: opts.resolver } : {}),
      });
  const ctx: PassContext = { opts, routes: opts.routes ?? ownRoutes!, log, dsns: [] };
  const report: FlushReport = { delivered: 0, deferred: 0, failed: 0, busy: 0 };
  const count = (o: Outcome): void => {
    if (o === 'skipped') return;
    report[o]++;
    metrics.heldAttempt(o);
  };
  try {
    await runAll(await listEntries(opts.dir, ['queued']), opts.concurrency ?? opts.config.relayConnections, ctx, count);
  } finally {
    await ownRoutes?.close();
  }
  if (ctx.dsns.length > 0) {
    // the DSNs of this pass go their configured way (not to a flush's target or an ATRN peer)
    const dsnRoutes = createHoldRoutes(opts.config, opts.resolver ? { resolver: opts.resolver } : {});
    try {
      const dsnCtx: PassContext = { opts: { ...opts, dueOnly: false }, routes: dsnRoutes, log, dsns: [] };
      delete dsnCtx.opts.domain;
      await runAll(ctx.dsns, opts.concurrency ?? opts.config.relayConnections, dsnCtx, () => {});
    } finally {
      await dsnRoutes.close();
    }
  }
  if (!opts.dueOnly || report.delivered + report.deferred + report.failed + report.busy > 0)
    log.info('queue.flush', {
      by: opts.by ?? 'flush',
      ...(opts.domain ? { domain: opts.domain } : {}),
      ...report,
      ms: Date.now() - started,
    });
  return report;
}

async function runAll(
  entries: QueueEntry[],
  concurrency: number,
  ctx: PassContext,
  count: (o: Outcome) => void,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < entries.length) {
      const e = entries[next++]!;
      try {
        count(await attemptEntry(e, ctx));
      } catch (err) {
        ctx.log.error('queue.deferred', { id: e.id, error: (err as Error).message });
        count('deferred');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, entries.length)) }, worker));
}

/** Would this message be worked on? (read without the claim: the envelope never changes) */
function wanted(env: HeldEnvelope, rec: QueueRecord, ctx: PassContext, now: number): boolean {
  const { opts } = ctx;
  const pending = pendingOf(env, rec);
  if (pending.length === 0) return true; // left over by a crash: settle it
  if (expired(env, rec, opts.config, now)) return !opts.domain || pending.some((a) => domainOf(a) === opts.domain);
  const candidates = opts.domain ? pending.filter((a) => domainOf(a) === opts.domain) : pending;
  if (!opts.dueOnly) return candidates.length > 0;
  const due = (rec.nextRetry ?? (env.queuedAt?.getTime() ?? 0) + opts.config.holdRetry.minMs) <= now;
  return due && candidates.some((a) => ctx.routes.routeOf(a)?.holdDomain === false);
}

/** Older than HoldMaxAge, counted from the queued date, or from an admin's last requeue out of failed/. */
function expired(env: HeldEnvelope, rec: QueueRecord, config: Config, now: number): boolean {
  if (env.queuedAt === null) return false;
  const since = Math.max(env.queuedAt.getTime(), rec.requeued?.at(-1)?.at ?? 0);
  return now - since > config.holdMaxAgeMs;
}

async function attemptEntry(entry: QueueEntry, ctx: PassContext): Promise<Outcome> {
  const { opts } = ctx;
  let env: HeldEnvelope;
  try {
    env = await readHeld(entry.path);
  } catch {
    return 'skipped'; // delivered meanwhile, or not a held message
  }
  if (!wanted(env, await readRecord(opts.dir, entry.id), ctx, queueNow())) return 'skipped';
  const c = await claim(opts.dir, entry);
  if (c === 'gone') return 'skipped';
  if (c === 'busy') return 'busy';
  let settled = false;
  try {
    const outcome = await attemptClaimed(c, env, ctx);
    settled = true;
    return outcome;
  } finally {
    if (!settled) await c.release().catch(() => {});
  }
}

async function attemptClaimed(c: Claim, env: HeldEnvelope, ctx: PassContext): Promise<Outcome> {
  const { opts, log } = ctx;
  const rec = await readRecord(opts.dir, c.id); // again, now that it is ours
  const now = queueNow();
  const pending = pendingOf(env, rec);
  const base = { id: c.id, queue_id: env.queueId, by: opts.by ?? 'flush' };
  const newlyFailed: (FailedRecipientRecord & { relay: string })[] = [];
  let deferredReply: Reply | null = null;
  let deferredTo: string[] = [];
  let relayName = '';
  let tried = false;
  let doneNow: string[] = [];
  let noRoute = false;

  if (pending.length > 0 && expired(env, rec, opts.config, now)) {
    const inScope = opts.domain ? pending.filter((a) => domainOf(a) === opts.domain) : pending;
    const r = REPLIES.heldExpired(ageText(now - env.queuedAt!.getTime()));
    for (const to of inScope) newlyFailed.push({ to, ...replyFields(r), relay: '' });
  } else if (pending.length > 0) {
    const groups = new Map<string, { relay: Relay; to: string[] }>();
    for (const a of pending) {
      if (opts.domain && domainOf(a) !== opts.domain) continue;
      const route = ctx.routes.routeOf(a);
      if (!route) noRoute = true;
      if (!route || (opts.dueOnly && route.holdDomain)) continue;
      const g = groups.get(route.key);
      if (g) g.to.push(a);
      else groups.set(route.key, { relay: route.relay, to: [a] });
    }
    const results = await Promise.all(
      [...groups.values()].map(async (g) => ({
        relay: g.relay.describe(),
        outcomes: resultsPerRecipient(g.to, await g.relay.deliver(heldMessage(env, c.path, g.to), childLog(log, base))),
      })),
    );
    tried = results.length > 0;
    for (const { relay, outcomes } of results) {
      relayName ||= relay;
      for (const o of outcomes) {
        if (o.kind === 'accepted') doneNow.push(o.to);
        else if (o.kind === 'rejected') newlyFailed.push({ to: o.to, ...replyFields(o.reply), relay });
        else {
          deferredReply ??= o.reply;
          deferredTo.push(o.to);
          relayName = relay;
        }
      }
    }
  }
  doneNow = doneNow.filter((a, i) => doneNow.indexOf(a) === i);
  if (doneNow.length > 0) {
    log.info('queue.delivered', {
      ...base,
      to: doneNow,
      relay: relayName,
      attempts: rec.attempts + 1,
    });
  }

  // what the downstream took is written down first (the crash window is only the time until here)
  rec.done.push(...doneNow);
  let dsnPath: string | null = null;
  if (newlyFailed.length > 0) {
    dsnPath = await queueDsn(env, c.path, newlyFailed, ctx);
    rec.failed.push(...newlyFailed.map(({ relay: _relay, ...f }) => f));
    log.warn('queue.failed', {
      ...base,
      to: newlyFailed.map((f) => f.to),
      reply: `${newlyFailed[0]!.code} ${newlyFailed[0]!.enhanced} ${newlyFailed[0]!.text}`,
      dsn: dsnPath ?? 'none',
    });
  }
  if (tried) {
    rec.attempts++;
    rec.lastAttempt = now;
  }
  if (deferredReply) {
    rec.lastError = replyForLog(deferredReply);
    rec.nextRetry = now + retryDelayMs(rec.attempts, opts.config.holdRetry);
    log.info('queue.deferred', {
      ...base,
      to: deferredTo,
      relay: relayName,
      reply: rec.lastError,
      attempts: rec.attempts,
      next_retry: new Date(rec.nextRetry).toISOString(),
    });
  } else if (newlyFailed.length > 0)
    rec.lastError = `${newlyFailed[0]!.code} ${newlyFailed[0]!.enhanced} ${newlyFailed[0]!.text}`;
  let noted = false;
  if (!tried && noRoute && rec.lastError === undefined) {
    // nowhere to send it (no RelayHost, Sendmail or RelayDomain): said, not counted as an attempt
    rec.lastError = replyForLog(REPLIES.heldNoRoute());
    noted = true;
  }

  const left = pendingOf(env, rec);
  if (left.length === 0) {
    if (rec.failed.length > 0) {
      await writeRecord(opts.dir, c.id, rec, { durable: true });
      await c.fail();
    } else await c.remove();
  } else {
    if (doneNow.length > 0 || newlyFailed.length > 0 || tried || noted)
      await writeRecord(opts.dir, c.id, rec, { durable: doneNow.length > 0 || newlyFailed.length > 0 });
    await c.release();
  }
  if (newlyFailed.length > 0) return 'failed';
  if (deferredReply) return 'deferred';
  if (doneNow.length > 0 || left.length === 0) return 'delivered';
  return 'skipped';
}

function replyFields(r: Reply): { code: number; enhanced: string; text: string } {
  return { code: r.code, enhanced: r.enhanced, text: r.text };
}

function childLog(log: Pick<Logger, 'info' | 'warn' | 'error'>, fields: Record<string, unknown>): Logger {
  const l = log as Logger;
  if (typeof l.child === 'function') return l.child(fields);
  const quiet = (): void => {};
  const nl: Logger = {
    log: quiet,
    info: quiet,
    warn: quiet,
    error: quiet,
    debug: quiet,
    child: () => nl,
    setLevel: quiet,
    flush: quiet,
  };
  return nl;
}

/** The DSN for `failed` of this message, written to the hold queue; its file, or null (null sender). */
async function queueDsn(
  env: HeldEnvelope,
  path: string,
  failed: (FailedRecipientRecord & { relay: string })[],
  ctx: PassContext,
): Promise<string | null> {
  if (env.from === '') return null;
  const { opts } = ctx;
  const body = buildDsn({
    hostname: opts.config.hostname,
    sender: env.from,
    queueId: env.queueId,
    arrival: env.queuedAt ?? new Date(queueNow()),
    remoteMta: failed[0]!.relay,
    failed,
    originalHeaders: await originalHeaderLines(messageChunks(heldMessage(env, path, env.to))),
    smtputf8: env.smtputf8,
    now: new Date(queueNow()),
  });
  const spoolPath = join(opts.dir, 'tmp', `dsn.${process.pid}.${env.queueId}.${Date.now()}`);
  await writeFile(spoolPath, body, { mode: 0o600 });
  try {
    const written = await writeHeld(
      opts.dir,
      {
        id: `${env.queueId}.DSN`,
        from: '',
        to: [env.from],
        smtputf8: env.smtputf8,
        eightBit: body.some((b) => b > 0x7f),
        headerPrefix: Buffer.alloc(0),
        spoolPath,
        size: body.length,
      },
      { hostname: opts.config.hostname, now: new Date(queueNow()) },
    );
    if (written.kind !== 'held') throw new Error(`the DSN could not be queued: ${replyForLog(written.reply)}`);
    const name = written.path.slice(written.path.lastIndexOf('/') + 1);
    ctx.dsns.push({ id: name, state: 'queued', path: written.path });
    return name;
  } finally {
    await unlink(spoolPath).catch(() => {});
  }
}

/** How many held messages still have a recipient in `domain` to deliver (queued or being delivered). */
export async function countHeldFor(dir: string, domain: string): Promise<number> {
  const d = domain.toLowerCase();
  let n = 0;
  for (const e of await listEntriesSettled(dir, ['queued', 'active'])) {
    try {
      const env = await readHeld(e.path);
      if (!env.to.some((a) => domainOf(a) === d)) continue;
      if (pendingOf(env, await readRecord(dir, e.id)).some((a) => domainOf(a) === d)) n++;
    } catch {
      // moved between the listing and the read: it is counted where it went, or it is gone
    }
  }
  return n;
}

/**
 * ATRN (RFC 2645): `domain`'s held mail over `socket`, on which the peer now acts as the server
 * (it sends its 220 greeting; we send EHLO with opts.hostname). One session, one message at a time;
 * QUIT at the end. The socket is the caller's: it is not ended here beyond the QUIT.
 */
export async function deliverHeldOver(
  socket: Socket,
  opts: { dir: string; domain: string; hostname: string; config: Config; log?: Logger; timeoutMs?: number },
): Promise<FlushReport> {
  const relay = createSmtpRelay({
    target: { kind: 'smtp', host: socket.remoteAddress ?? 'atrn-peer', port: socket.remotePort ?? 0 },
    clientName: opts.hostname,
    timeoutMs: opts.timeoutMs ?? opts.config.relayTimeoutMs,
    pool: { maxConnections: 1 },
    socket,
  });
  const routes: HoldRoutes = {
    routeOf: () => ({ key: 'atrn', relay, holdDomain: true }),
    close: () => relay.close(),
  };
  try {
    return await flushHeld({
      dir: opts.dir,
      config: { ...opts.config, hostname: opts.hostname },
      domain: opts.domain.toLowerCase(),
      routes,
      concurrency: 1,
      by: 'atrn',
      ...(opts.log ? { log: opts.log } : {}),
    });
  } finally {
    await relay.close();
  }
}
