/**
 * queue.ts — the hold queue from the command line (issue 20; seeds.md §C), as the owner of
 * HoldQueue (the daemon's DaemonUser, like --blocklist):
 *
 *   runQueue(config, cmd, out) → exit code
 *     --queue [DOMAIN] [--json]   every message (DOMAIN: with a recipient there): id, state (queued,
 *                                 held, active, failed), age, sender, recipients (those still to go;
 *                                 done and failed ones marked), size, attempts, next retry, last error
 *     --queue --delete ID         remove a queued, held or failed message (not one being delivered)
 *     --hold ID / --release ID    hold/ ⇄ new/: a held message is never tried; a released one is due now
 *     --release ID (failed)       failed/ → new/, due now (Postfix's postsuper -r): its failed recipients
 *                                 are pending again (their replies kept in the record's history,
 *                                 shown by --queue), the delivered ones stay done, attempts from 0
 *     --flush [DOMAIN] [--to HOST:PORT]   one pass of relay/hold-flush.ts now; prints the counts
 * Exit codes: 0 done, 1 not found / being delivered / failed, 2 bad arguments.
 */
import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/types.js';
import { createDnsResolver } from '../dns/resolver.js';
import { createLogger } from '../log/logger.js';
import { flushHeld, queueNow } from '../relay/hold-flush.js';
import { readHeld } from '../relay/hold-queue.js';
import { domainOf } from '../relay/hold-routes.js';
import {
  claim,
  listEntries,
  listEntriesSettled,
  moveEntry,
  readRecord,
  requeueFailed,
  writeRecord,
  type QueueEntry,
  type QueueState,
} from '../relay/queue-store.js';
import type { CliCommand } from './args.js';
import { becomeOwnerOf } from './verify.js';

type QueueCommand = Extract<CliCommand, { mode: 'queue' | 'hold' | 'release' | 'flush' }>;

const ALL: QueueState[] = ['queued', 'active', 'held', 'failed'];

export interface QueueListing {
  id: string;
  state: QueueState;
  queueId: string;
  queuedAt: string | null;
  ageSeconds: number | null;
  from: string;
  /** recipients still to deliver */
  to: string[];
  done: string[];
  failed: { to: string; reply: string }[];
  size: number;
  attempts: number;
  lastError: string | null;
  nextRetry: string | null;
  /** each --release out of failed/: when, the attempts before, and the recipients that had failed */
  requeued: { at: string; attempts: number; failed: { to: string; reply: string }[] }[];
}

const replyText = (f: { code: number; enhanced: string; text: string }): string => `${f.code} ${f.enhanced} ${f.text}`;

export async function listQueue(dir: string, domain: string | null, now = queueNow()): Promise<QueueListing[]> {
  const out: QueueListing[] = [];
  for (const e of await listEntriesSettled(dir, ALL)) {
    let env;
    try {
      env = await readHeld(e.path);
    } catch {
      // moved since: where to?
      const now = (await listEntries(dir, ALL)).find((x) => x.id === e.id);
      if (!now) continue;
      try {
        env = await readHeld(now.path);
        Object.assign(e, now);
      } catch {
        continue;
      }
    }
    if (domain && !env.to.some((a) => domainOf(a) === domain)) continue;
    const rec = await readRecord(dir, e.id);
    const settled = new Set([...rec.done, ...rec.failed.map((f) => f.to)]);
    out.push({
      id: e.id,
      state: e.state,
      queueId: env.queueId,
      queuedAt: env.queuedAt?.toISOString() ?? null,
      ageSeconds: env.queuedAt ? Math.max(0, Math.round((now - env.queuedAt.getTime()) / 1000)) : null,
      from: env.from,
      to: env.to.filter((a) => !settled.has(a)),
      done: rec.done,
      failed: rec.failed.map((f) => ({ to: f.to, reply: replyText(f) })),
      size: env.sizeBytes - env.headerOffset,
      attempts: rec.attempts,
      // why it was held applies until its first attempt; after a requeue the history says more
      lastError: rec.lastError ?? (rec.requeued?.length ? null : env.heldReason) ?? null,
      nextRetry: rec.nextRetry !== undefined && e.state === 'queued' ? new Date(rec.nextRetry).toISOString() : null,
      requeued: (rec.requeued ?? []).map((r) => ({
        at: new Date(r.at).toISOString(),
        attempts: r.attempts,
        failed: r.failed.map((f) => ({ to: f.to, reply: replyText(f) })),
      })),
    });
  }
  return out.sort((a, b) => (a.queuedAt ?? '').localeCompare(b.queuedAt ?? '') || a.id.localeCompare(b.id));
}

function age(s: number | null): string {
  if (s === null) return '?';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d`;
}

export function formatListing(items: readonly QueueListing[]): string {
  const lines: string[] = [];
  for (const m of items) {
    lines.push(
      `${m.id} ${m.state} age ${age(m.ageSeconds)} size ${m.size} attempts ${m.attempts}${m.nextRetry ? ` next ${m.nextRetry}` : ''} queue-id ${m.queueId}`,
    );
    lines.push(`  from <${m.from}>`);
    for (const t of m.to) lines.push(`  to <${t}>`);
    for (const t of m.done) lines.push(`  to <${t}> delivered`);
    for (const f of m.failed) lines.push(`  to <${f.to}> failed: ${f.reply}`);
    if (m.lastError) lines.push(`  last error: ${m.lastError}`);
    for (const r of m.requeued)
      for (const f of r.failed)
        lines.push(`  released from failed/ ${r.at} after ${r.attempts} attempts: <${f.to}> had failed: ${f.reply}`);
  }
  const n = (s: QueueState): number => items.filter((m) => m.state === s).length;
  lines.push(
    `${items.length} message${items.length === 1 ? '' : 's'}: ${n('queued')} queued, ${n('active')} active, ${n('held')} held, ${n('failed')} failed`,
  );
  return lines.join('\n') + '\n';
}

async function find(dir: string, id: string): Promise<QueueEntry | null> {
  return (await listEntries(dir, ALL)).find((e) => e.id === id) ?? null;
}

export async function runQueue(config: Config, cmd: QueueCommand, out: NodeJS.WritableStream): Promise<number> {
  const dir = config.holdQueue;
  const fail = (line: string, code = 1): number => {
    process.stderr.write(`asmtpd --${cmd.mode}: ${line}\n`);
    return code;
  };
  if (!existsSync(dir)) {
    if (cmd.mode === 'queue' && cmd.delete === null) {
      out.write(cmd.json ? '[]\n' : formatListing([]));
      return 0;
    }
    return fail(`${dir} does not exist (nothing was ever held)`);
  }
  try {
    becomeOwnerOf(dir);
  } catch (err) {
    return fail(`cannot become the owner of ${dir}: ${(err as Error).message}`);
  }
  switch (cmd.mode) {
    case 'queue': {
      if (cmd.delete !== null) return deleteMessage(dir, cmd.delete, out, fail);
      const items = await listQueue(dir, cmd.domain);
      out.write(cmd.json ? JSON.stringify(items, null, 2) + '\n' : formatListing(items));
      return 0;
    }
    case 'hold':
    case 'release': {
      const e = await find(dir, cmd.id);
      if (!e) return fail(`no message ${cmd.id}`);
      if (e.state === 'active') return fail(`${cmd.id} is being delivered right now; try again`);
      if (cmd.mode === 'release' && e.state === 'failed') return requeue(dir, e, out, fail);
      const from: QueueState = cmd.mode === 'hold' ? 'queued' : 'held';
      if (e.state !== from) return fail(`${cmd.id} is ${e.state}, not ${from}`);
      if (cmd.mode === 'release') {
        const rec = await readRecord(dir, e.id);
        delete rec.nextRetry;
        await writeRecord(dir, e.id, rec, { durable: true });
      }
      if (!(await moveEntry(dir, e, cmd.mode === 'hold' ? 'hold' : 'new')))
        return fail(`${cmd.id} moved meanwhile (being delivered?); try again`);
      out.write(`${cmd.mode === 'hold' ? 'held' : 'released'} ${cmd.id}\n`);
      return 0;
    }
    case 'flush': {
      const dns = createDnsResolver({
        kind: config.dnsResolver,
        servers: config.dnsServers,
        protocol: config.dnsProtocol,
        timeoutMs: config.dnsTimeoutMs,
      });
      const log = createLogger({ level: 'warn', fd: 2 });
      try {
        const r = await flushHeld({
          dir,
          config,
          ...(cmd.domain ? { domain: cmd.domain } : {}),
          ...(cmd.to ? { target: cmd.to } : {}),
          resolver: dns,
          by: 'flush',
          log,
        });
        out.write(`delivered ${r.delivered} deferred ${r.deferred} failed ${r.failed} busy ${r.busy}\n`);
        return 0;
      } finally {
        log.flush();
      }
    }
  }
}

/** --release of a failed message: back to the queue, its failed recipients to be tried again now. */
async function requeue(
  dir: string,
  e: QueueEntry,
  out: NodeJS.WritableStream,
  fail: (line: string) => number,
): Promise<number> {
  const r = await requeueFailed(dir, e, queueNow());
  if (r === 'busy') return fail(`${e.id} is being worked on right now; try again`);
  if (r === 'gone') return fail(`${e.id} left failed/ meanwhile`);
  out.write(`released ${e.id} from failed/: due now\n`);
  for (const f of r.failed) out.write(`  to <${f.to}> again (had failed: ${replyText(f)})\n`);
  return 0;
}

async function deleteMessage(
  dir: string,
  id: string,
  out: NodeJS.WritableStream,
  fail: (line: string) => number,
): Promise<number> {
  const e = await find(dir, id);
  if (!e) return fail(`no message ${id}`);
  if (e.state === 'active') return fail(`${id} is being delivered right now; try again`);
  if (e.state === 'failed') {
    await unlink(e.path);
  } else {
    const c = await claim(dir, e);
    if (c === 'busy') return fail(`${id} is being delivered right now; try again`);
    if (c === 'gone') return fail(`${id} left the queue meanwhile`);
    await unlink(c.path);
  }
  await unlink(join(dir, 'meta', id)).catch(() => {});
  out.write(`deleted ${id}\n`);
  return 0;
}
