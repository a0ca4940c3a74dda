import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { reply } from '../reply/reply.js';
import { listHeld, maildirName, readHeld, writeHeld } from './hold-queue.js';
import { makeTempDir, writeMessage } from '../testing/relay.js';

test('hold queue: Maildir name is time.M<usec>P<pid>Q<n>.<host>, unique, with / and : escaped', () => {
  const a = maildirName('mx.example.org');
  const b = maildirName('mx.example.org');
  assert.match(a, new RegExp(`^\\d{10}\\.M\\d{6}P${process.pid}Q\\d+\\.mx\\.example\\.org$`));
  assert.notEqual(a, b);
  assert.match(maildirName('a/b:c'), /\.a\\057b\\072c$/);
});

test('hold queue: file format, atomic tmp → new (0700 dirs, 0600 file), readHeld round trip', async () => {
  const dir = await makeTempDir('hold');
  const queue = join(dir, 'queue');
  const body = 'Subject: held\r\nX-Asmtpd-Envelope-To: <forged@evil>\r\n\r\nbody\r\n';
  const msg = await writeMessage(dir, {
    body,
    from: '',
    to: ['a@example.net', '"odd>name"@example.net'],
    smtputf8: true,
    eightBit: true,
  });
  const reason = reply(451, '4.4.1', 'downstream 127.0.0.1:25 unavailable: ECONNREFUSED');
  const r = await writeHeld(queue, msg, { hostname: 'mx.test', reason });
  assert.equal(r.kind, 'held');
  if (r.kind !== 'held') return;
  assert.equal(r.path.startsWith(join(queue, 'new') + '/'), true);
  assert.deepEqual(await readdir(join(queue, 'tmp')), []);
  for (const sub of ['tmp', 'new', 'cur']) assert.equal((await stat(join(queue, sub))).mode & 0o777, 0o700);
  assert.equal((await stat(r.path)).mode & 0o777, 0o600);

  const text = (await readFile(r.path)).toString('utf8');
  const lines = text.split('\r\n');
  assert.deepEqual(lines.slice(0, 3), [
    'X-Asmtpd-Envelope-From: <>',
    'X-Asmtpd-Envelope-To: <a@example.net>',
    'X-Asmtpd-Envelope-To: <"odd>name"@example.net>',
  ]);
  assert.equal(lines[3], `X-Asmtpd-Queue-Id: ${msg.id}`);
  assert.match(lines[4]!, /^X-Asmtpd-Queued: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000$/);
  assert.deepEqual(lines.slice(5, 8), [
    'X-Asmtpd-Mail-Params: SMTPUTF8 BODY=8BITMIME',
    'X-Asmtpd-Held-Reason: 451 4.4.1 downstream 127.0.0.1:25 unavailable: ECONNREFUSED',
    'X-Asmtpd-Envelope-End: ok',
  ]);

  const env = await readHeld(r.path);
  assert.equal(env.from, '');
  assert.deepEqual(
    env.to,
    ['a@example.net', '"odd>name"@example.net'],
    'X-Asmtpd lines inside the message are not envelope',
  );
  assert.equal(env.queueId, msg.id);
  assert.equal(env.smtputf8 && env.eightBit, true);
  assert.equal(env.heldReason, '451 4.4.1 downstream 127.0.0.1:25 unavailable: ECONNREFUSED');
  assert.ok(env.queuedAt && Math.abs(env.queuedAt.getTime() - Date.now()) < 5000);
  const file = await readFile(r.path);
  assert.ok(file.subarray(env.headerOffset).equals(Buffer.concat([msg.headerPrefix, Buffer.from(body)])));
  assert.equal(env.sizeBytes, file.length);

  const second = await writeHeld(queue, await writeMessage(dir, { body: 'x\r\n' }), { hostname: 'mx.test' });
  assert.equal(second.kind, 'held');
  const listed = await listHeld(queue);
  assert.deepEqual(listed.map((h) => h.path).sort(), [r.path, second.kind === 'held' ? second.path : ''].sort());
  assert.equal(listed.find((h) => h.path === r.path)?.name, r.path.split('/').pop());
  assert.deepEqual(await listHeld(join(dir, 'no-such-queue')), []);
  await assert.rejects(readHeld(msg.spoolPath), /not a held message/);
});

test('hold queue: disk full (ENOSPC on a tiny tmpfs) → 452 4.3.1, nothing left in tmp/ or new/', async (t) => {
  const dir = await makeTempDir('enospc');
  const mountPoint = join(dir, 'mnt');
  await mkdir(mountPoint);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mountPoint], { stdio: 'ignore' });
  } catch {
    await rmdir(mountPoint);
    // Reason: mounting a tmpfs needs root (CAP_SYS_ADMIN); without it there is no real full disk to write to.
    t.skip('cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): no real ENOSPC to test against');
    return;
  }
  try {
    const msg = await writeMessage(dir, { body: Buffer.alloc(256 * 1024, 'full disk\r\n') });
    const r = await writeHeld(join(mountPoint, 'queue'), msg, { hostname: 'mx.test' });
    assert.equal(r.kind, 'failed');
    if (r.kind === 'failed') {
      assert.deepEqual([r.reply.code, r.reply.enhanced, r.reason], [452, '4.3.1', 'ENOSPC']);
      assert.match(r.reply.text, /^insufficient system storage/);
    }
    assert.deepEqual(await readdir(join(mountPoint, 'queue', 'tmp')), []);
    assert.deepEqual(await readdir(join(mountPoint, 'queue', 'new')), []);
    // a message that fits still goes in afterwards
    const small = await writeHeld(join(mountPoint, 'queue'), await writeMessage(dir, { body: 'x\r\n' }), {
      hostname: 'mx.test',
    });
    assert.equal(small.kind, 'held');
  } finally {
    execFileSync('umount', [mountPoint]);
    await rmdir(mountPoint);
  }
});
