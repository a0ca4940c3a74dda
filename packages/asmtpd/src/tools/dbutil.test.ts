/** dbutil's options and exit codes (main called directly, a clock of the test's choosing). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTool } from '../testing/tool-io.js';
import { main } from './dbutil.js';

let clock = 1_700_000_000_000;
const dbutil = (...argv: string[]) => runTool((a, io) => main(a, io, () => clock), argv);

function tempDb(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-dbutil-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'x.db');
}

test('-u then -q: the value; absent → 1; -u without a value stores ""', async (t) => {
  const db = tempDb(t);
  assert.deepEqual(await dbutil('-q', db, 'k'), { code: 1, stdout: '', stderr: '' });
  assert.equal((await dbutil('-u', db, 'k', 'hello world')).code, 0);
  assert.deepEqual(await dbutil('--query', db, 'k'), { code: 0, stdout: 'hello world\n', stderr: '' });
  assert.equal((await dbutil('--update', db, 'empty')).code, 0);
  assert.deepEqual(await dbutil('-q', db, 'empty'), { code: 0, stdout: '\n', stderr: '' });
  // a value starting with "-" is a value (options end at the first operand)
  assert.equal((await dbutil('-u', db, 'neg', '-5')).code, 0);
  assert.equal((await dbutil('-q', db, 'neg')).stdout, '-5\n');
});

test('--expire: the record is gone after it; -q -t prints the expiry; -q --expire moves it', async (t) => {
  const db = tempDb(t);
  clock = 1_700_000_000_000;
  assert.equal((await dbutil('-u', '--expire=+1h', db, 'k', 'v')).code, 0);
  assert.equal((await dbutil('-qt', db, 'k')).stdout, `${1_700_000_000 + 3600}\n`);
  clock += 3_599_000;
  assert.equal((await dbutil('-q', db, 'k')).code, 0);
  assert.equal((await dbutil('-q', '--expire=+1d', db, 'k')).code, 0, 'touched before it expired');
  clock += 3_600_000;
  assert.equal((await dbutil('-q', db, 'k')).stdout, 'v\n', 'alive: its expiry moved');
  clock += 86_400_000;
  assert.equal((await dbutil('-q', db, 'k')).code, 1, 'expired');
  assert.equal((await dbutil('-u', db, 'forever', 'x')).code, 0);
  assert.equal((await dbutil('-q', '-t', db, 'forever')).stdout, '\n', 'no expiry: an empty line');
});

test('-u -n: 0 when it wrote, 1 (value unchanged) when the key was there', async (t) => {
  const db = tempDb(t);
  assert.equal((await dbutil('-u', '-n', db, 'k', 'first')).code, 0);
  assert.equal((await dbutil('-un', db, 'k', 'second')).code, 1);
  assert.equal((await dbutil('-q', db, 'k')).stdout, 'first\n');
});

test('-x deletes (1 when absent); -d dumps the live records, expiry in epoch seconds', async (t) => {
  const db = tempDb(t);
  clock = 1_700_000_000_000;
  await dbutil('-u', db, 'b', 'two words');
  await dbutil('-u', '--expire=1767225600', db, 'a', '1');
  await dbutil('-u', '--expire=-1s', db, 'old', 'gone');
  assert.deepEqual(await dbutil('-d', db), { code: 0, stdout: 'a 1 (1767225600)\nb two words\n', stderr: '' });
  assert.equal((await dbutil('-x', db, 'b')).code, 0);
  assert.equal((await dbutil('--delete', db, 'b')).code, 1);
  assert.equal((await dbutil('--dump', db)).stdout, 'a 1 (1767225600)\n');
});

test('--add: counts, prints the sum, keeps the expiry unless given; a text value is exit 2', async (t) => {
  const db = tempDb(t);
  assert.deepEqual(await dbutil('--add=1', db, 'n'), { code: 0, stdout: '1\n', stderr: '' });
  assert.equal((await dbutil('--add=10', '--expire=+1h', db, 'n')).stdout, '11\n');
  assert.equal((await dbutil('--add', '-3', db, 'n')).stdout, '8\n');
  assert.equal((await dbutil('-qt', db, 'n')).stdout, `${Math.ceil(clock / 1000) + 3600}\n`);
  await dbutil('-u', db, 's', 'abc');
  const r = await dbutil('--add=1', db, 's');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^dbutil: .*not an integer/);
  assert.equal((await dbutil('--add=x', db, 'n')).code, 2);
});

test('-t prints epoch seconds of now, of an interval (also negative) and of a date', async () => {
  clock = 1_700_000_000_500;
  assert.equal((await dbutil('-t')).stdout, '1700000000\n');
  assert.equal((await dbutil('-t', '+1d')).stdout, '1700086400\n');
  assert.equal((await dbutil('-t', '-2h')).stdout, '1699992800\n');
  assert.equal((await dbutil('-t', '2026-01-01')).stdout, '1767225600\n');
  assert.equal((await dbutil('--time', '--', '-1s')).stdout, '1699999999\n');
  assert.equal((await dbutil('-t', 'soon')).code, 2);
  assert.equal((await dbutil('-t', '+1d', 'extra')).code, 2);
});

test('usage errors, bad keys and unusable files are exit 2 with a message; --help is 0', async (t) => {
  const db = tempDb(t);
  for (const argv of [
    [],
    ['-q', db],
    ['-q', '-u', db, 'k'],
    ['-x', '--expire=+1d', db, 'k'],
    ['-n', '-q', db, 'k'],
    ['-u', db, 'k', 'v', 'extra'],
    ['-u', db, '', 'v'],
    ['-u', db, 'line\nbreak', 'v'],
    ['-u', db, 'k', 'a\rb'],
    ['-u', db, 'k'.repeat(20_000), 'v'],
    ['-u', '--expire=whenever', db, 'k'],
    ['--bogus', db, 'k'],
    ['-q', '/nonexistent-dir/x.db', 'k'],
    ['-q', '/etc/passwd', 'k'],
  ]) {
    const r = await dbutil(...argv);
    assert.equal(r.code, 2, `${JSON.stringify(argv).slice(0, 80)}: ${r.stderr}`);
    assert.match(r.stderr, /^dbutil: /);
  }
  const help = await dbutil('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: dbutil -q/);
});
