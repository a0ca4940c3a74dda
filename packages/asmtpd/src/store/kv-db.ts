/**
 * store/kv-db — the expiring key-value file of the `dbutil` utility (docs/man/dbutil.1.md): one
 * SQLite file per database, written by many scripts at once.
 *
 *   openKvDb(path) -> KvDb        create the file (mode 0600, less the umask) or open it; WAL
 *                                 journal, busy timeout, schema; throws KvDbError naming the path
 *   KvDb.get(key, now)                          the record, unless absent or expired
 *   KvDb.put(key, value, expires, now, {ifAbsent}) -> written?   ifAbsent: only when absent or expired
 *   KvDb.touch(key, expires, now)               a live record's new expiry (-q --expire)
 *   KvDb.add(key, delta, expires, now) -> new value   the integer value plus delta, atomically
 *   KvDb.remove(key, now) -> removed a live record?
 *   KvDb.live(now) -> KvRecord[]                every record not expired, by key
 *
 * Times are milliseconds since the epoch; a record lives while `now < expires` (expires null:
 * forever). Every write is one BEGIN IMMEDIATE transaction (the write lock is taken first, so a
 * read-modify-write such as add() can never lose another writer's update) and purges the expired
 * records. Other writers are waited for up to BUSY_TIMEOUT_MS; readers never wait (WAL).
 *
 * The file is created here with O_EXCL and mode 0600 (so a greylisting database of correspondents'
 * addresses is private), never re-moded when it exists: an owner who wants to share it chmods it,
 * and SQLite gives its -wal and -shm files the database's mode.
 */
import { closeSync, constants, openSync } from 'node:fs';
import Database from 'better-sqlite3';

/** How long a writer waits for the others (50 scripts at once, each holding the lock ~1 ms). */
export const BUSY_TIMEOUT_MS = 15_000;

export const KV_SCHEMA_VERSION = 1;

export interface KvRecord {
  key: string;
  value: string;
  /** milliseconds since the epoch; null: never expires */
  expires: number | null;
}

export interface KvDb {
  readonly path: string;
  get(key: string, now: number): KvRecord | undefined;
  put(key: string, value: string, expires: number | null, now: number, o?: { ifAbsent?: boolean }): boolean;
  touch(key: string, expires: number | null, now: number): KvRecord | undefined;
  add(key: string, delta: number, expires: number | null | 'keep', now: number): number;
  remove(key: string, now: number): boolean;
  live(now: number): KvRecord[];
  close(): void;
}

export class KvDbError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'KvDbError';
  }
}

export function openKvDb(path: string): KvDb {
  createPrivately(path);
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new KvDbError(path, errorText(err));
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    migrate(db, path);
    return recordsOn(db, path);
  } catch (err) {
    db.close();
    throw err instanceof KvDbError ? err : new KvDbError(path, errorText(err));
  }
}

/** Create the file 0600 (umask applies) if it is not there; an existing file is left as it is. */
function createPrivately(path: string): void {
  try {
    closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new KvDbError(path, errorText(err));
  }
}

function migrate(db: Database.Database, path: string): void {
  const version = (): number => db.pragma('user_version', { simple: true }) as number;
  if (version() === KV_SCHEMA_VERSION) return;
  db.transaction(() => {
    const v = version();
    if (v > KV_SCHEMA_VERSION) throw new KvDbError(path, `made by a newer dbutil (schema ${v})`);
    if (v === KV_SCHEMA_VERSION) return; // another process was first
    const tables = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get();
    if (tables && tables.n > 0) throw new KvDbError(path, 'is an SQLite database of something else, not of dbutil');
    db.exec(`CREATE TABLE records (
               key TEXT PRIMARY KEY,
               value TEXT NOT NULL,
               expires INTEGER
             ) WITHOUT ROWID;
             CREATE INDEX records_expires ON records (expires) WHERE expires IS NOT NULL;`);
    db.pragma(`user_version = ${KV_SCHEMA_VERSION}`);
  }).immediate();
}

type Row = { key: string; value: string; expires: number | null };

function recordsOn(db: Database.Database, path: string): KvDb {
  const LIVE = '(expires IS NULL OR expires > ?)';
  const select = db.prepare<[string, number], Row>(`SELECT key, value, expires FROM records WHERE key = ? AND ${LIVE}`);
  const all = db.prepare<[number], Row>(`SELECT key, value, expires FROM records WHERE ${LIVE} ORDER BY key`);
  const purge = db.prepare<[number]>('DELETE FROM records WHERE expires IS NOT NULL AND expires <= ?');
  const upsert = db.prepare<[string, string, number | null]>(
    `INSERT INTO records (key, value, expires) VALUES (?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires`,
  );
  const setExpiry = db.prepare<[number | null, string]>('UPDATE records SET expires = ? WHERE key = ?');
  const del = db.prepare<[string]>('DELETE FROM records WHERE key = ?');

  /** One write: the lock first, the expired records gone, then fn. */
  const write = <T>(now: number, fn: () => T): T =>
    db
      .transaction(() => {
        purge.run(now);
        return fn();
      })
      .immediate();

  return {
    path,
    get: (key, now) => select.get(key, now),
    put: (key, value, expires, now, o = {}) =>
      write(now, () => {
        if (o.ifAbsent && select.get(key, now)) return false;
        upsert.run(key, value, expires);
        return true;
      }),
    touch: (key, expires, now) =>
      write(now, () => {
        const row = select.get(key, now);
        if (!row) return undefined;
        setExpiry.run(expires, key);
        return { ...row, expires };
      }),
    add: (key, delta, expires, now) =>
      write(now, () => {
        const row = select.get(key, now);
        const current = row ? row.value.trim() : '0';
        if (!/^-?\d{1,16}$/.test(current))
          throw new KvDbError(path, `the value of ${JSON.stringify(key.slice(0, 64))} is not an integer`);
        const next = Number(current) + delta;
        if (!Number.isSafeInteger(next)) throw new KvDbError(path, 'the sum is too large');
        upsert.run(key, String(next), expires === 'keep' ? (row?.expires ?? null) : expires);
        return next;
      }),
    // the expired records are purged first: a delete that finds one finds a live one
    remove: (key, now) => write(now, () => del.run(key).changes > 0),
    live: (now) => all.all(now),
    close: () => {
      if (db.open) db.close();
    },
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
