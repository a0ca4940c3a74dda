/** dbutil's file: creation mode, expiry, put -n, add, touch, remove, a foreign file refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { KV_SCHEMA_VERSION, KvDbError, openKvDb } from './kv-db.js';

function tempPath(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-kv-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'test.db');
}

test('a new file is 0600 (less the umask), WAL, schema version set; an existing file keeps its mode', (t) => {
  const path = tempPath(t);
  const old = process.umask(0o022);
  try {
    openKvDb(path).close();
  } finally {
    process.umask(old);
  }
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const raw = new Database(path, { readonly: true });
  assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(raw.pragma('user_version', { simple: true }), KV_SCHEMA_VERSION);
  raw.close();
  const shared = tempPath(t);
  writeFileSync(shared, '', { mode: 0o640 });
  openKvDb(shared).close();
  assert.equal(statSync(shared).mode & 0o777, 0o640);
});

test('records live until their expiry; put -n writes only when absent or expired', (t) => {
  const db = openKvDb(tempPath(t));
  t.after(() => db.close());
  assert.equal(db.get('k', 1000), undefined);
  assert.equal(db.put('k', 'v1', 2000, 1000), true);
  assert.deepEqual(db.get('k', 1999), { key: 'k', value: 'v1', expires: 2000 });
  assert.equal(db.get('k', 2000), undefined, 'gone at its expiry');
  assert.equal(db.put('k', 'v2', null, 1500, { ifAbsent: true }), false, 'present: not written');
  assert.equal(db.get('k', 1500)?.value, 'v1');
  assert.equal(db.put('k', 'v3', null, 2500, { ifAbsent: true }), true, 'expired counts as absent');
  assert.deepEqual(db.get('k', 10 ** 12), { key: 'k', value: 'v3', expires: null });
});

test("touch changes a live record's expiry only; remove; live lists by key without the expired", (t) => {
  const db = openKvDb(tempPath(t));
  t.after(() => db.close());
  db.put('b', '2', 5000, 0);
  db.put('a', '1', null, 0);
  db.put('c', '3', 100, 0);
  assert.deepEqual(db.touch('b', 9000, 1000)?.expires, 9000);
  assert.equal(db.touch('c', 9000, 1000), undefined, 'an expired record is not revived');
  assert.deepEqual(
    db.live(1000).map((r) => [r.key, r.value, r.expires]),
    [
      ['a', '1', null],
      ['b', '2', 9000],
    ],
  );
  assert.equal(db.remove('a', 1000), true);
  assert.equal(db.remove('a', 1000), false);
  assert.equal(db.remove('c', 1000), false, 'an expired record is not there to remove');
});

test('add counts from 0, keeps or sets the expiry, refuses a value that is not an integer', (t) => {
  const db = openKvDb(tempPath(t));
  t.after(() => db.close());
  assert.equal(db.add('n', 1, 'keep', 0), 1);
  assert.equal(db.add('n', 41, 'keep', 0), 42);
  assert.equal(db.get('n', 0)?.expires, null);
  assert.equal(db.add('n', -2, 3000, 0), 40);
  assert.equal(db.add('n', 1, 'keep', 1000), 41);
  assert.equal(db.get('n', 1000)?.expires, 3000);
  assert.equal(db.add('n', 1, 'keep', 3000), 1, 'expired: counts from 0 again');
  db.put('s', 'text', null, 0);
  assert.throws(() => db.add('s', 1, 'keep', 0), KvDbError);
  assert.equal(db.get('s', 0)?.value, 'text', 'unchanged');
});

test('an SQLite file of something else, or not SQLite at all, is refused and left alone', (t) => {
  const other = tempPath(t);
  const raw = new Database(other);
  raw.exec('CREATE TABLE mine (x)');
  raw.close();
  assert.throws(() => openKvDb(other), /something else/);
  const text = tempPath(t);
  writeFileSync(text, 'not a database at all, just text that is long enough to have a header\n'.repeat(10));
  assert.throws(() => openKvDb(text), KvDbError);
  assert.throws(() => openKvDb('/nonexistent-dir/x.db'), KvDbError);
});
