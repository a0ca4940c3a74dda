import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './dotlock.js';
import { lockMailbox } from './mailbox-lock.js';
import { fakeIo } from '../testing/tool-io-fake.js';

let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'dotlock-test-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]) {
  const f = fakeIo();
  return { code: await main(args, f.io), stderr: f.stderr(), stdout: f.stdout().toString() };
}

test('runs the command holding MBOX.lock and the flock; its exit status is dotlock’s; the lock is gone after', async () => {
  const mbox = join(dir, 'mbox');
  writeFileSync(mbox, '');
  const seen = join(dir, 'seen');
  // inside, MBOX.lock exists and flock(1) cannot get the flock without waiting
  const r = await run([
    mbox,
    'sh',
    '-c',
    `cat "$0.lock" > ${seen}; flock -n "$0" true; echo "flock=$?" >> ${seen}; exit 7`,
    mbox,
  ]);
  assert.equal(r.code, 7, r.stderr);
  assert.match(readFileSync(seen, 'utf8'), /^\d+\nflock=1\n$/);
  assert.equal(existsSync(`${mbox}.lock`), false);
});

test('-L: the lock file alone (the command can take the flock itself)', async () => {
  const mbox = join(dir, 'mbox-l');
  writeFileSync(mbox, '');
  const r = await run(['-L', mbox, 'sh', '-c', 'test -e "$0.lock" && flock -n "$0" true', mbox]);
  assert.equal(r.code, 0, r.stderr);
});

test('75 when the lock is not had within --timeout; 127/126 for a command that cannot run; 64 usage', async () => {
  const mbox = join(dir, 'busy');
  const holder = await lockMailbox(mbox, { open: 'append', flock: true, timeoutMs: 1000 });
  try {
    const r = await run(['--timeout=0.3', mbox, 'true']);
    assert.equal(r.code, 75);
    assert.match(r.stderr, /^dotlock: .*busy: timed out/);
  } finally {
    holder.release();
  }
  assert.equal((await run([mbox, 'no-such-command-xyz'])).code, 127);
  assert.equal(existsSync(`${mbox}.lock`), false, 'released after a failed start too');
  assert.equal((await run([mbox, dir])).code, 126);
  for (const args of [[], [mbox], ['--bogus', mbox, 'true'], ['--timeout=x', mbox, 'true'], ['-P', mbox, 'true']]) {
    const r = await run(args);
    assert.equal(r.code, 64, args.join(' '));
    assert.match(r.stderr, /usage: dotlock/);
  }
  assert.match((await run(['--help'])).stdout, /^usage: dotlock/);
});
