/** The state database: file setup (WAL, schema version, migrations), the bounce cache, the busy timeout. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { BUSY_TIMEOUT_MS, openStateDb, SCHEMA_VERSION, StateDbError } from './state-db.js';

function tempPath(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'state.sqlite');
}

test('a new file gets the WAL journal, the schema version and the bounce_cache table', (t) => {
  const path = tempPath(t);
  const db = openStateDb(path);
  assert.equal(db.path, path);
  assert.equal(db.schemaVersion, SCHEMA_VERSION);
  assert.ok(SCHEMA_VERSION >= 1);
  db.close();
  const raw = new Database(path, { readonly: true });
  try {
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    assert.deepEqual(raw.prepare('SELECT version FROM schema_version').all(), [{ version: SCHEMA_VERSION }]);
    const columns = raw.prepare("SELECT name FROM pragma_table_info('bounce_cache') ORDER BY cid").all();
    assert.deepEqual(columns, [{ name: 'key' }, { name: 'kind' }, { name: 'reply' }, { name: 'expires' }]);
  } finally {
    raw.close();
  }
});

test('get answers an entry until it expires; put replaces; purgeExpired removes only expired entries', (t) => {
  const db = openStateDb(tempPath(t));
  t.after(() => db.close());
  const cache = db.bounceCache;
  assert.equal(cache.get('address:a@x.test', 1000), undefined);
  cache.put('address:a@x.test', { kind: 'refused', reply: '550 5.1.1 unknown user' }, 2000);
  assert.deepEqual(cache.get('address:a@x.test', 1999), { kind: 'refused', reply: '550 5.1.1 unknown user' });
  assert.equal(cache.get('address:a@x.test', 2000), undefined, 'expired at its expiry time');
  cache.put('address:a@x.test', { kind: 'accepted', reply: '' }, 5000);
  assert.deepEqual(cache.get('address:a@x.test', 2500), { kind: 'accepted', reply: '' });
  cache.put('domain:x.test', { kind: 'tempfail', reply: '451 4.4.1 no answer' }, 3000);
  cache.put('domain:y.test', { kind: 'refused', reply: '556 5.1.10 null MX' }, 9000);
  assert.equal(cache.purgeExpired(4000), 1);
  assert.equal(cache.get('domain:x.test', 0), undefined, 'purged');
  assert.deepEqual(cache.get('address:a@x.test', 4000), { kind: 'accepted', reply: '' });
  assert.deepEqual(cache.get('domain:y.test', 4000), { kind: 'refused', reply: '556 5.1.10 null MX' });
  assert.equal(cache.purgeExpired(4000), 0);
});

test('entries survive closing and reopening; the schema is not migrated twice', (t) => {
  const path = tempPath(t);
  const first = openStateDb(path);
  first.bounceCache.put('domain:z.test', { kind: 'refused', reply: '550 5.1.2 z.test: no such domain' }, 10_000);
  first.close();
  first.close(); // idempotent
  assert.throws(() => first.bounceCache.get('domain:z.test', 0), 'a closed database is not used');
  const second = openStateDb(path);
  t.after(() => second.close());
  assert.equal(second.schemaVersion, SCHEMA_VERSION);
  assert.deepEqual(second.bounceCache.get('domain:z.test', 5000), {
    kind: 'refused',
    reply: '550 5.1.2 z.test: no such domain',
  });
});

test('a file from a newer asmtpd is refused, naming the path, and left as it was', (t) => {
  const path = tempPath(t);
  openStateDb(path).close();
  const raw = new Database(path);
  raw.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION + 5);
  raw.close();
  assert.throws(
    () => openStateDb(path),
    (err: unknown) => {
      assert.ok(err instanceof StateDbError);
      assert.match(
        err.message,
        new RegExp(`${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: schema version ${SCHEMA_VERSION + 5} is newer`),
      );
      return true;
    },
  );
  const check = new Database(path, { readonly: true });
  assert.deepEqual(check.prepare('SELECT version FROM schema_version').all(), [{ version: SCHEMA_VERSION + 5 }]);
  check.close();
});

test('a directory that does not exist is an error naming the path', () => {
  const path = join(tmpdir(), `asmtpd-missing-${process.pid}-${Date.now()}`, 'state.sqlite');
  assert.throws(
    () => openStateDb(path),
    (err: unknown) => err instanceof StateDbError && err.message.startsWith(`state database ${path}: `),
  );
});

test('a writer waits for another process holding the write lock (busy timeout) instead of failing', async (t) => {
  const path = tempPath(t);
  const db = openStateDb(path);
  t.after(() => db.close());
  const holdMs = 600;
  assert.ok(holdMs < BUSY_TIMEOUT_MS);
  // another process takes the write lock, says so, keeps it holdMs, then commits
  const script = `
    import Database from 'better-sqlite3';
    import { writeSync } from 'node:fs';
    const db = new Database(${JSON.stringify(path)});
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT INTO bounce_cache (key, kind, reply, expires) VALUES ('address:other@x.test', 'accepted', '', 99999)").run();
    writeSync(1, 'locked\\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${holdMs});
    db.exec('COMMIT');
    db.close();`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('../..', import.meta.url),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => (d.toString().includes('locked') ? resolve() : undefined));
    child.once('exit', (code) => reject(new Error(`locker exited early (${code})`)));
  });
  const started = Date.now();
  db.bounceCache.put('address:me@x.test', { kind: 'accepted', reply: '' }, 99999);
  const waited = Date.now() - started;
  assert.equal(await exited, 0);
  assert.ok(waited >= holdMs / 2, `put waited ${waited} ms for the lock`);
  assert.deepEqual(db.bounceCache.get('address:me@x.test', 0), { kind: 'accepted', reply: '' });
  assert.deepEqual(db.bounceCache.get('address:other@x.test', 0), { kind: 'accepted', reply: '' });
});
