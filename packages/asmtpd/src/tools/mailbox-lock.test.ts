import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockMailbox, LockTimeout } from './mailbox-lock.js';

let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'mailbox-lock-test-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a lock: MBOX.lock with our pid while held, removed on release; the mbox created for append', async () => {
  const mbox = join(dir, 'a');
  const lock = await lockMailbox(mbox, { open: 'append', flock: true, timeoutMs: 2000 });
  assert.equal(readFileSync(`${mbox}.lock`, 'utf8'), `${process.pid}\n`);
  assert.ok(existsSync(mbox));
  lock.release();
  lock.release();
  assert.equal(existsSync(`${mbox}.lock`), false);
});

test('the flock excludes a second holder (another open file description) until released', async () => {
  const mbox = join(dir, 'b');
  const first = await lockMailbox(mbox, { open: 'append', flock: true, timeoutMs: 2000 });
  await assert.rejects(lockMailbox(mbox, { open: 'append', flock: true, timeoutMs: 300 }), LockTimeout);
  assert.ok(existsSync(`${mbox}.lock`), "the loser's failure leaves the holder's lock file alone");
  const waiting = lockMailbox(mbox, { open: 'append', flock: true, timeoutMs: 5000 });
  await sleep(100);
  first.release();
  (await waiting).release();
});

test('a lock file nobody touched for the stale period is broken; a fresh one is waited for', async () => {
  const mbox = join(dir, 'c');
  writeFileSync(mbox, '');
  writeFileSync(`${mbox}.lock`, '99999\n');
  const old = new Date(Date.now() - 60_000);
  utimesSync(`${mbox}.lock`, old, old);
  utimesSync(mbox, old, old);
  const lock = await lockMailbox(mbox, { open: 'read', flock: false, timeoutMs: 1000, staleMs: 30_000 });
  assert.equal(readFileSync(`${mbox}.lock`, 'utf8'), `${process.pid}\n`, 'ours now');
  lock.release();

  writeFileSync(`${mbox}.lock`, '99999\n');
  utimesSync(`${mbox}.lock`, old, old); // the lock file is old, but the mbox changed just now
  writeFileSync(mbox, 'x');
  await assert.rejects(
    lockMailbox(mbox, { open: 'read', flock: false, timeoutMs: 300, staleMs: 30_000 }),
    /timed out waiting for .*c\.lock/,
  );
  rmSync(`${mbox}.lock`);
});

test("a holder's lock file is refreshed, so a slow holder is never taken for a dead one", async () => {
  const mbox = join(dir, 'd');
  const lock = await lockMailbox(mbox, { open: 'append', flock: false, timeoutMs: 1000, refreshMs: 50 });
  const old = new Date(Date.now() - 60_000);
  utimesSync(`${mbox}.lock`, old, old);
  await sleep(200);
  assert.ok(Date.now() - statSync(`${mbox}.lock`).mtimeMs < 1000, 'mtime refreshed');
  lock.release();
});

test("'read' of a missing mbox: the dot-lock alone, no file created", async () => {
  const mbox = join(dir, 'missing');
  const lock = await lockMailbox(mbox, { open: 'read', flock: true, timeoutMs: 1000 });
  assert.equal(lock.fd, null);
  assert.ok(existsSync(`${mbox}.lock`));
  lock.release();
  assert.equal(existsSync(mbox), false);
});

test('a lock file that cannot be created is an error at once, not a wait', async () => {
  const t0 = Date.now();
  await assert.rejects(
    lockMailbox(join(dir, 'no-such-dir', 'mbox'), { open: 'read', flock: true, timeoutMs: 5000 }),
    /cannot create .*no-such-dir\/mbox\.lock/,
  );
  assert.ok(Date.now() - t0 < 2000);
});
