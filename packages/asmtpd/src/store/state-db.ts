/**
 * store/state-db — the daemon's SQLite state database (DBDir/state.sqlite, spec asmtpd.md §3
 * `DBDir`; docs/facts.md "Bounce probe"). It and kv-db.ts (dbutil's files) are the only modules
 * that import better-sqlite3.
 *
 *   openStateDb(path) -> StateDb     open or create the file, WAL journal, busy timeout, schema
 *                                    migrations; throws StateDbError naming the path
 *   StateDb.bounceCache.get(key, now) -> CachedBounce | undefined   an entry not yet expired
 *   StateDb.bounceCache.put(key, value, expiresAt)                  insert or replace
 *   StateDb.bounceCache.purgeExpired(now) -> number                 entries removed
 *   StateDb.rcptVerifyCache.get(address, now) -> CachedVerification | undefined   (recipient verification)
 *   StateDb.rcptVerifyCache.put(address, value, expiresAt) / .delete(address) / .purgeExpired(now)
 *   StateDb.unknownRecipients.record(ip, address, at)     a recipient refused as unknown, per client
 *   StateDb.unknownRecipients.count(ip, since) -> number  (what dictionary-attack blocking reads)
 *   StateDb.unknownRecipients.purgeBefore(at) -> number
 *   StateDb.unknownRecipients.countNet(net, since) -> number   the same per BlockNetmask network
 *   StateDb.blocks.live(now) / .all() / .get(net) / .put(row) / .delete(net) / .purgeBefore(at)
 *   StateDb.blocks.generation() -> number   bumped by every change of the blocks table: the
 *                                           daemon re-reads its in-memory set when it moves
 *   StateDb.clientStats.add(rows) / .get(ip) / .all()   per client: connections, blocked
 *                                           connections, unknown recipients, messages, first/last seen
 *   StateDb.schemaVersion / path / close()
 *
 * Times are milliseconds since the epoch; an entry lives while `now < expires`. Statements are
 * prepared once per connection. The version of the schema is the one row of `schema_version`;
 * each migration runs in its own IMMEDIATE transaction with the version bump, and a file from a
 * newer asmtpd (a version this one does not know) is refused rather than written to.
 * The daemon opens the file after giving up root, so the database, its -wal and -shm files
 * belong to the daemon's user.
 */
import Database from 'better-sqlite3';

/** How long a writer waits for another connection's lock before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

export type BounceCacheKind = 'accepted' | 'refused' | 'tempfail';

export interface CachedBounce {
  kind: BounceCacheKind;
  /** '' when accepted, else the reply with its code */
  reply: string;
}

export interface BounceCache {
  get(key: string, now: number): CachedBounce | undefined;
  put(key: string, value: CachedBounce, expiresAt: number): void;
  purgeExpired(now: number): number;
}

/** A remembered answer of a relay domain's backend (relay/recipient-verifier.ts). */
export interface CachedVerification {
  valid: boolean;
  /** '' when valid, else the backend's refusal as one line ("550 5.1.1 …") */
  reply: string;
  /** ms since the epoch */
  expires: number;
}

export interface RcptVerifyCache {
  get(address: string, now: number): CachedVerification | undefined;
  put(address: string, value: { valid: boolean; reply: string }, expiresAt: number): void;
  delete(address: string): void;
  purgeExpired(now: number): number;
}

/** Recipients refused as unknown, one row each, by client IP (the input of dictionary-attack blocking). */
export interface UnknownRecipients {
  /** net: the client's BlockNetmask network (default: the address itself) */
  record(ip: string, address: string, at: number, net?: string): void;
  count(ip: string, since: number): number;
  countNet(net: string, since: number): number;
  purgeBefore(at: number): number;
}

/** A block of a network (issue 19); kept after its end until BlockTimeMax, for the doubling. */
export interface BlockRow {
  /** canonical `address/prefix` (net/blocking.ts) */
  net: string;
  /** ms since the epoch: the block runs while now < until */
  until: number;
  /** 1 for a first block, 2 for the next… */
  offences: number;
  /** when this block began */
  since: number;
  /** 'unknown-rcpts' (counted) or 'admin' (asmtpd --blocklist add) */
  reason: string;
}

export interface Blocks {
  live(now: number): BlockRow[];
  all(): BlockRow[];
  get(net: string): BlockRow | undefined;
  put(row: BlockRow): void;
  delete(net: string): boolean;
  /** forget blocks that ended before `at` (their offences no longer double) */
  purgeBefore(at: number): number;
  generation(): number;
}

/** Counts to add for one client (a batch flushed by the daemon). */
export interface ClientStatsDelta {
  ip: string;
  connections: number;
  blocked: number;
  unknownRcpts: number;
  messages: number;
  /** the first and the last event of the batch */
  first: number;
  at: number;
}

export interface ClientStatsRow {
  ip: string;
  connections: number;
  blocked: number;
  unknownRcpts: number;
  messages: number;
  firstSeen: number;
  lastSeen: number;
}

export interface ClientStats {
  add(deltas: readonly ClientStatsDelta[]): void;
  get(ip: string): ClientStatsRow | undefined;
  all(): ClientStatsRow[];
}

export interface StateDb {
  readonly path: string;
  readonly schemaVersion: number;
  readonly bounceCache: BounceCache;
  readonly rcptVerifyCache: RcptVerifyCache;
  readonly unknownRecipients: UnknownRecipients;
  readonly blocks: Blocks;
  readonly clientStats: ClientStats;
  /** idempotent; any later use throws */
  close(): void;
}

export class StateDbError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`state database ${path}: ${reason}`);
    this.name = 'StateDbError';
  }
}

/** Schema migrations: MIGRATIONS[i] brings the schema from version i to i + 1. Append only. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE bounce_cache (
     key TEXT PRIMARY KEY,
     kind TEXT NOT NULL CHECK (kind IN ('accepted', 'refused', 'tempfail')),
     reply TEXT NOT NULL,
     expires INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX bounce_cache_expires ON bounce_cache (expires);`,
  // issue 18: recipient verification against a relay domain's backend, and the unknown-recipient events
  `CREATE TABLE rcpt_verify_cache (
     address TEXT PRIMARY KEY,
     valid INTEGER NOT NULL CHECK (valid IN (0, 1)),
     reply TEXT NOT NULL,
     expires INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX rcpt_verify_cache_expires ON rcpt_verify_cache (expires);
   CREATE TABLE unknown_rcpt (
     ip TEXT NOT NULL,
     address TEXT NOT NULL,
     at INTEGER NOT NULL
   );
   CREATE INDEX unknown_rcpt_ip_at ON unknown_rcpt (ip, at);
   CREATE INDEX unknown_rcpt_at ON unknown_rcpt (at);`,
  // issue 19: dictionary-attack blocking — counts per BlockNetmask network, blocks, per-client statistics
  `ALTER TABLE unknown_rcpt ADD COLUMN net TEXT NOT NULL DEFAULT '';
   UPDATE unknown_rcpt SET net = ip;
   CREATE INDEX unknown_rcpt_net_at ON unknown_rcpt (net, at);
   CREATE TABLE blocks (
     net TEXT PRIMARY KEY,
     until INTEGER NOT NULL,
     offences INTEGER NOT NULL,
     since INTEGER NOT NULL,
     reason TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX blocks_until ON blocks (until);
   CREATE TABLE blocks_generation (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
   INSERT INTO blocks_generation (id, generation) VALUES (1, 0);
   CREATE TRIGGER blocks_ins AFTER INSERT ON blocks BEGIN UPDATE blocks_generation SET generation = generation + 1; END;
   CREATE TRIGGER blocks_upd AFTER UPDATE ON blocks BEGIN UPDATE blocks_generation SET generation = generation + 1; END;
   CREATE TRIGGER blocks_del AFTER DELETE ON blocks BEGIN UPDATE blocks_generation SET generation = generation + 1; END;
   CREATE TABLE client_stats (
     ip TEXT PRIMARY KEY,
     connections INTEGER NOT NULL,
     blocked INTEGER NOT NULL,
     unknown_rcpts INTEGER NOT NULL,
     messages INTEGER NOT NULL,
     first_seen INTEGER NOT NULL,
     last_seen INTEGER NOT NULL
   ) WITHOUT ROWID;`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

const KINDS: ReadonlySet<string> = new Set<BounceCacheKind>(['accepted', 'refused', 'tempfail']);

export function openStateDb(path: string): StateDb {
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new StateDbError(path, errorText(err));
  }
  try {
    configure(db);
    const schemaVersion = migrate(db, path);
    return {
      path,
      schemaVersion,
      bounceCache: bounceCacheOn(db),
      rcptVerifyCache: rcptVerifyCacheOn(db),
      unknownRecipients: unknownRecipientsOn(db),
      blocks: blocksOn(db),
      clientStats: clientStatsOn(db),
      close: () => {
        if (db.open) db.close();
      },
    };
  } catch (err) {
    db.close();
    throw err instanceof StateDbError ? err : new StateDbError(path, errorText(err));
  }
}

function configure(db: Database.Database): void {
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  db.pragma('journal_mode = WAL');
  // with WAL, NORMAL loses at most the last transactions on a power failure, never consistency
  db.pragma('synchronous = NORMAL');
}

function migrate(db: Database.Database, path: string): number {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const read = db.prepare<[], { version: number }>('SELECT version FROM schema_version');
  const update = db.prepare<[number]>('UPDATE schema_version SET version = ?');
  const insert = db.prepare<[number]>('INSERT INTO schema_version (version) VALUES (?)');
  const step = db.transaction((): boolean => {
    const row = read.get();
    const current = row?.version ?? 0;
    if (current > MIGRATIONS.length) {
      throw new StateDbError(path, `schema version ${current} is newer than this asmtpd knows (${MIGRATIONS.length})`);
    }
    const migration = MIGRATIONS[current];
    if (migration === undefined) return false;
    db.exec(migration);
    (row ? update : insert).run(current + 1);
    return true;
  });
  while (step.immediate()) {
    /* one migration per transaction */
  }
  return read.get()?.version ?? 0;
}

function bounceCacheOn(db: Database.Database): BounceCache {
  const select = db.prepare<[string, number], { kind: string; reply: string }>(
    'SELECT kind, reply FROM bounce_cache WHERE key = ? AND expires > ?',
  );
  const upsert = db.prepare<[string, string, string, number]>(
    `INSERT INTO bounce_cache (key, kind, reply, expires) VALUES (?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, reply = excluded.reply, expires = excluded.expires`,
  );
  const purge = db.prepare<[number]>('DELETE FROM bounce_cache WHERE expires <= ?');
  return {
    get(key, now) {
      const row = select.get(key, now);
      if (!row || !KINDS.has(row.kind)) return undefined;
      return { kind: row.kind as BounceCacheKind, reply: row.reply };
    },
    put(key, value, expiresAt) {
      upsert.run(key, value.kind, value.reply, Math.floor(expiresAt));
    },
    purgeExpired(now) {
      return purge.run(now).changes;
    },
  };
}

function rcptVerifyCacheOn(db: Database.Database): RcptVerifyCache {
  const select = db.prepare<[string, number], { valid: number; reply: string; expires: number }>(
    'SELECT valid, reply, expires FROM rcpt_verify_cache WHERE address = ? AND expires > ?',
  );
  const upsert = db.prepare<[string, number, string, number]>(
    `INSERT INTO rcpt_verify_cache (address, valid, reply, expires) VALUES (?, ?, ?, ?)
     ON CONFLICT (address) DO UPDATE SET valid = excluded.valid, reply = excluded.reply, expires = excluded.expires`,
  );
  const remove = db.prepare<[string]>('DELETE FROM rcpt_verify_cache WHERE address = ?');
  const purge = db.prepare<[number]>('DELETE FROM rcpt_verify_cache WHERE expires <= ?');
  return {
    get(address, now) {
      const row = select.get(address, now);
      return row ? { valid: row.valid === 1, reply: row.reply, expires: row.expires } : undefined;
    },
    put(address, value, expiresAt) {
      upsert.run(address, value.valid ? 1 : 0, value.reply, Math.floor(expiresAt));
    },
    delete(address) {
      remove.run(address);
    },
    purgeExpired(now) {
      return purge.run(now).changes;
    },
  };
}

function unknownRecipientsOn(db: Database.Database): UnknownRecipients {
  const insert = db.prepare<[string, string, number, string]>(
    'INSERT INTO unknown_rcpt (ip, address, at, net) VALUES (?, ?, ?, ?)',
  );
  const count = db.prepare<[string, number], { n: number }>(
    'SELECT count(*) AS n FROM unknown_rcpt WHERE ip = ? AND at >= ?',
  );
  const countNet = db.prepare<[string, number], { n: number }>(
    'SELECT count(*) AS n FROM unknown_rcpt WHERE net = ? AND at >= ?',
  );
  const purge = db.prepare<[number]>('DELETE FROM unknown_rcpt WHERE at < ?');
  return {
    record(ip, address, at, net = ip) {
      insert.run(ip, address, Math.floor(at), net);
    },
    count(ip, since) {
      return count.get(ip, since)?.n ?? 0;
    },
    countNet(net, since) {
      return countNet.get(net, since)?.n ?? 0;
    },
    purgeBefore(at) {
      return purge.run(at).changes;
    },
  };
}

function blocksOn(db: Database.Database): Blocks {
  const cols = 'net, until, offences, since, reason';
  const live = db.prepare<[number], BlockRow>(`SELECT ${cols} FROM blocks WHERE until > ? ORDER BY net`);
  const all = db.prepare<[], BlockRow>(`SELECT ${cols} FROM blocks ORDER BY net`);
  const one = db.prepare<[string], BlockRow>(`SELECT ${cols} FROM blocks WHERE net = ?`);
  const upsert = db.prepare<[string, number, number, number, string]>(
    `INSERT INTO blocks (${cols}) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (net) DO UPDATE SET until = excluded.until, offences = excluded.offences,
       since = excluded.since, reason = excluded.reason`,
  );
  const remove = db.prepare<[string]>('DELETE FROM blocks WHERE net = ?');
  const purge = db.prepare<[number]>('DELETE FROM blocks WHERE until < ?');
  const generation = db.prepare<[], { generation: number }>('SELECT generation FROM blocks_generation');
  return {
    live: (now) => live.all(now),
    all: () => all.all(),
    get: (net) => one.get(net),
    put(r) {
      upsert.run(r.net, Math.floor(r.until), r.offences, Math.floor(r.since), r.reason);
    },
    delete: (net) => remove.run(net).changes > 0,
    purgeBefore: (at) => purge.run(at).changes,
    generation: () => generation.get()?.generation ?? 0,
  };
}

function clientStatsOn(db: Database.Database): ClientStats {
  const upsert = db.prepare<[string, number, number, number, number, number, number]>(
    `INSERT INTO client_stats (ip, connections, blocked, unknown_rcpts, messages, first_seen, last_seen)
     VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (ip) DO UPDATE SET connections = connections + excluded.connections,
       blocked = blocked + excluded.blocked, unknown_rcpts = unknown_rcpts + excluded.unknown_rcpts,
       messages = messages + excluded.messages, last_seen = max(last_seen, excluded.last_seen)`,
  );
  const cols =
    'ip, connections, blocked, unknown_rcpts AS unknownRcpts, messages, first_seen AS firstSeen, last_seen AS lastSeen';
  const one = db.prepare<[string], ClientStatsRow>(`SELECT ${cols} FROM client_stats WHERE ip = ?`);
  const all = db.prepare<[], ClientStatsRow>(`SELECT ${cols} FROM client_stats ORDER BY last_seen DESC`);
  const addAll = db.transaction((deltas: readonly ClientStatsDelta[]) => {
    for (const d of deltas) {
      upsert.run(d.ip, d.connections, d.blocked, d.unknownRcpts, d.messages, Math.floor(d.first), Math.floor(d.at));
    }
  });
  return {
    add: (deltas) => {
      if (deltas.length) addAll.immediate(deltas);
    },
    get: (ip) => one.get(ip),
    all: () => all.all(),
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
