/**
 * blocklist.ts — dictionary-attack blocking over the state database (issue 19, seeds.md §B;
 * docs/decisions.md "Dictionary-attack blocking").
 *
 *   createBlocklist({ db, record, log }) -> Blocklist
 *     .start()            read the live blocks into memory; then every second compare the
 *                         database's blocks generation (bumped by a trigger on every change of
 *                         the blocks table) and re-read the set when another process changed
 *                         it (asmtpd --blocklist add/del); flush the client statistics every 2 s
 *     .guard(config)      the AbuseGuard of a Runtime (smtp/runtime.ts): blocked(ip) is one
 *                         in-memory lookup; unknown(ip, address, exempt) records the refusal,
 *                         counts the network's refusals within BlockUnknownRcpts' window (since
 *                         the end of its last block) and blocks it past the count: BlockTime,
 *                         doubled per remembered offence, up to BlockTimeMax
 *     .refresh()          re-read the set now if the database's changed (Workers N: another
 *                         worker added a block; the primary passes its `onChange` on)
 *     .close()            stop the timers, flush the statistics
 * With Workers N, deps.onChange is called when this process added a block or saw the set change,
 * and the primary asks every other worker to refresh(): a block holds on every worker at once.
 *
 * A failing database is logged (store.error) and ignored: a client is never refused because the
 * store failed, and blocks already in memory keep working.
 */
import type { Config } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { ClientStatsDelta, StateDb } from '../store/state-db.js';
import type { AbuseGuard } from '../smtp/runtime.js';
import { BlockSet, blockDurationMs, blockNetOf } from '../net/blocking.js';
import { metrics } from '../metrics/metrics.js';

const POLL_MS = 1000;
const FLUSH_MS = 2000;
const PURGE_EVERY_MS = 3_600_000;

export interface Blocklist {
  start(): void;
  refresh(): void;
  guard(config: Config): AbuseGuard;
  close(): void;
}

export interface BlocklistDeps {
  db(): StateDb;
  /** one row of unknown_rcpt (daemon/verifiers.ts, which also purges old rows) */
  record(ip: string, address: string, net: string): void;
  log: Logger;
  now?: () => number;
  /** the set changed: this process added a block, or re-read another's change (Workers N);
   *  the log line (block.added, block.reload) is written once the returned promise settles, so
   *  that it is true of every worker */
  onChange?: () => Promise<void> | void;
}

export function createBlocklist(deps: BlocklistDeps): Blocklist {
  const { log } = deps;
  const now = deps.now ?? Date.now;
  const set = new BlockSet();
  const stats = new Map<string, ClientStatsDelta>();
  let generation = -1;
  let timers: NodeJS.Timeout[] = [];
  let lastPurge = 0;

  const guarded = <T>(op: string, f: () => T): T | undefined => {
    try {
      return f();
    } catch (err) {
      log.warn('store.error', { op, error: err instanceof Error ? err.message : String(err) });
      return undefined;
    }
  };
  const reload = (why: 'start' | 'changed' | 'told'): void => {
    guarded('blocks.reload', () => {
      const db = deps.db();
      const g = db.blocks.generation();
      if (why !== 'start' && g === generation) return;
      set.replace(db.blocks.live(now()));
      generation = g;
      // logged when this process noticed another's change (not when a worker was told of it)
      if (why === 'changed') {
        const fields = { blocks: set.size, generation: g };
        void Promise.resolve(deps.onChange?.()).finally(() => log.info('block.reload', fields));
      }
    });
  };
  const flush = (): void => {
    if (stats.size === 0) return;
    const rows = [...stats.values()];
    stats.clear();
    guarded('client_stats.add', () => deps.db().clientStats.add(rows));
  };
  const seen = (ip: string, kind: 'connection' | 'blocked' | 'message' | 'unknown'): void => {
    const t = now();
    let d = stats.get(ip);
    if (!d) {
      d = { ip, connections: 0, blocked: 0, unknownRcpts: 0, messages: 0, first: t, at: t };
      stats.set(ip, d);
    }
    d.at = t;
    if (kind === 'connection') d.connections++;
    else if (kind === 'blocked') d.blocked++;
    else if (kind === 'message') d.messages++;
    else d.unknownRcpts++;
  };

  const maybeBlock = (config: Config, ip: string, net: string, t: number): void => {
    const rule = config.blockUnknownRcpts;
    if (!rule || set.find(ip, t)) return;
    guarded('blocks.count', () => {
      const db = deps.db();
      const prev = db.blocks.get(net);
      // refusals before the end of the last block were paid for by that block
      const since = Math.max(t - rule.windowMs, prev?.until ?? 0);
      const unknown = db.unknownRecipients.countNet(net, since);
      if (unknown < rule.count) return;
      const remembered = prev !== undefined && prev.until + config.blockTimeMaxMs > t;
      const offences = remembered ? prev.offences + 1 : 1;
      const durationMs = blockDurationMs(offences, config);
      const row = { net, until: t + durationMs, offences, since: t, reason: 'unknown-rcpts' };
      const before = db.blocks.generation();
      db.blocks.put(row);
      set.add(row);
      // our own change needs no reload; another process's change in between does
      if (before === generation) generation = db.blocks.generation();
      metrics.blockAdded('unknown-rcpts');
      const fields = { net, ip, unknown, offences, duration_ms: durationMs, until: new Date(row.until).toISOString() };
      if (deps.onChange) void Promise.resolve(deps.onChange()).finally(() => log.warn('block.added', fields));
      else log.warn('block.added', fields);
    });
  };

  return {
    start() {
      reload('start');
      timers = [setInterval(() => reload('changed'), POLL_MS), setInterval(flush, FLUSH_MS)];
      for (const timer of timers) timer.unref();
    },
    refresh: () => reload('told'),
    guard(config) {
      return {
        blocked: (ip) => set.find(ip, now()),
        unknown(ip, address, exempt) {
          const t = now();
          const net = blockNetOf(ip, config.blockNetmask) ?? ip;
          deps.record(ip, address, net);
          seen(ip, 'unknown');
          if (!exempt) maybeBlock(config, ip, net, t);
          // forget ended blocks older than this configuration's memory
          if (t - lastPurge > PURGE_EVERY_MS) {
            lastPurge = t;
            guarded('blocks.purge', () => deps.db().blocks.purgeBefore(t - config.blockTimeMaxMs));
          }
        },
        seen,
      };
    },
    close() {
      for (const timer of timers) clearInterval(timer);
      timers = [];
      flush();
    },
  };
}
