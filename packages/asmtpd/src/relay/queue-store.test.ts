import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  claim,
  ensureQueueDirs,
  idOf,
  listEntries,
  ownerAlive,
  ownerToken,
  readRecord,
  recoverClaims,
  requeueFailed,
  writeRecord,
} from './queue-store.js';
import { retryDelayMs } from './hold-flush.js';

function queue(): string {
  const dir = mkdtempSync(join(tmpdir(), 'queue-store-'));
  return dir;
}

test('idOf strips a Maildir info suffix and a claim owner', () => {
  assert.equal(idOf('1.M2P3Q4.mx.example'), '1.M2P3Q4.mx.example');
  assert.equal(idOf('1.M2P3Q4.mx.example:2,S'), '1.M2P3Q4.mx.example');
  assert.equal(idOf('1.M2P3Q4.mx.example~123-456'), '1.M2P3Q4.mx.example');
});

test('a claim is one rename: of two at once exactly one gets the message, the other is told busy', async () => {
  const dir = queue();
  try {
    await ensureQueueDirs(dir);
    writeFileSync(join(dir, 'new', 'm1'), 'x');
    const [entry] = await listEntries(dir, ['queued']);
    const results = await Promise.all([claim(dir, entry!), claim(dir, entry!)]);
    const claims = results.filter((r) => typeof r === 'object');
    assert.equal(claims.length, 1);
    assert.ok(results.includes('busy'));
    const c = claims[0]!;
    assert.ok(typeof c === 'object');
    assert.equal(c.path, join(dir, 'work', `m1~${ownerToken()}`));
    assert.deepEqual(
      (await listEntries(dir, ['active'])).map((e) => e.owner),
      [ownerToken()],
    );
    await c.release();
    assert.deepEqual(readdirSync(join(dir, 'new')), ['m1']);
    assert.equal(await claim(dir, { id: 'gone', state: 'queued', path: join(dir, 'new', 'gone') }), 'gone');
    const again = await claim(dir, entry!);
    assert.ok(typeof again === 'object');
    await again.fail();
    assert.deepEqual(readdirSync(join(dir, 'failed')), ['m1']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the claims of a dead process go back to new/; a live owner keeps its claims', async () => {
  const dir = queue();
  try {
    await ensureQueueDirs(dir);
    writeFileSync(join(dir, 'work', 'dead~999999999-1'), 'x');
    writeFileSync(join(dir, 'work', `mine~${ownerToken()}`), 'x');
    // our own pid with another start time: a reused pid, so dead
    writeFileSync(join(dir, 'work', `reused~${process.pid}-1`), 'x');
    assert.equal(ownerAlive(ownerToken()), true);
    assert.equal(ownerAlive('999999999-1'), false);
    assert.equal(ownerAlive('garbage'), false);
    assert.equal(await recoverClaims(dir), 2);
    assert.deepEqual(readdirSync(join(dir, 'new')).sort(), ['dead', 'reused']);
    assert.deepEqual(readdirSync(join(dir, 'work')), [`mine~${ownerToken()}`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('records: absent → empty; written atomically; remove() takes the record along', async () => {
  const dir = queue();
  try {
    await ensureQueueDirs(dir);
    assert.deepEqual(await readRecord(dir, 'm'), { attempts: 0, done: [], failed: [] });
    const rec = { attempts: 2, lastError: '451 4.4.1 x', nextRetry: 5, done: ['a@b'], failed: [] };
    await writeRecord(dir, 'm', rec, { durable: true });
    assert.deepEqual(await readRecord(dir, 'm'), rec);
    assert.deepEqual(readdirSync(join(dir, 'meta')), ['m'], 'no temporary file left');
    writeFileSync(join(dir, 'new', 'm'), 'x');
    const c = await claim(dir, { id: 'm', state: 'queued', path: join(dir, 'new', 'm') });
    assert.ok(typeof c === 'object');
    await c.remove();
    assert.equal(existsSync(join(dir, 'meta', 'm')), false);
    assert.deepEqual(readdirSync(join(dir, 'work')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('HoldRetry backoff: the first interval, doubling, at most the longest', () => {
  const b = { minMs: 300_000, maxMs: 14_400_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 50].map((n) => retryDelayMs(n, b) / 60_000),
    [5, 10, 20, 40, 80, 160, 240, 240],
  );
});

test('requeueFailed: failed/ → new/, failed recipients pending again with their replies kept, done ones stay, attempts 0, due now', async () => {
  const dir = queue();
  try {
    await ensureQueueDirs(dir);
    writeFileSync(join(dir, 'failed', 'm1'), 'x');
    const f1 = { to: 'typo@r.test', code: 550, enhanced: '5.1.1', text: 'no such user' };
    await writeRecord(
      dir,
      'm1',
      {
        attempts: 3,
        lastAttempt: 5,
        lastError: '550 5.1.1 no such user',
        nextRetry: 9,
        done: ['ok@r.test'],
        failed: [f1],
      },
      { durable: false },
    );
    const [entry] = await listEntries(dir, ['failed']);
    const r = await requeueFailed(dir, entry!, 1000);
    assert.deepEqual(r, { at: 1000, attempts: 3, failed: [f1] });
    assert.deepEqual(readdirSync(join(dir, 'new')), ['m1']);
    assert.deepEqual(readdirSync(join(dir, 'failed')), []);
    assert.deepEqual(readdirSync(join(dir, 'work')), []);
    assert.deepEqual(await readRecord(dir, 'm1'), {
      attempts: 0,
      nextRetry: 1000,
      done: ['ok@r.test'],
      failed: [],
      requeued: [{ at: 1000, attempts: 3, failed: [f1] }],
    });
    // a second requeue (after it failed again) keeps the first in the history
    const again = await claim(dir, (await listEntries(dir, ['queued']))[0]!);
    assert.ok(typeof again === 'object');
    const rec = await readRecord(dir, 'm1');
    await writeRecord(dir, 'm1', { ...rec, attempts: 1, failed: [f1] }, { durable: false });
    await again.fail();
    await requeueFailed(dir, (await listEntries(dir, ['failed']))[0]!, 2000);
    assert.deepEqual(
      (await readRecord(dir, 'm1')).requeued?.map((q) => [q.at, q.attempts]),
      [
        [1000, 3],
        [2000, 1],
      ],
    );
    assert.equal(
      await requeueFailed(dir, { id: 'gone', state: 'failed', path: join(dir, 'failed', 'gone') }, 3),
      'gone',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
