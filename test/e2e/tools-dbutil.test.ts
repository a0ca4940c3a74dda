/**
 * dbutil, the installed command (packages/asmtpd/tools/dbutil), run as a real non-root user:
 * every option and exit code; the file it creates (the user's, 0600); 50 processes adding to one
 * key at once end at exactly 50, each seeing a different count; 50 racing `-u -n` have exactly
 * one winner; an expiry is honoured by the clock (a record set to live 5 s is there at once, and
 * gone when queried again no sooner than 5 s later). Needs root (a test account, setpriv).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { canCreateUsers, createUser, removeUser, type TestUser } from '../support/users.js';
import { shAs, tool } from '../support/tool-runs.js';

const unavailable = canCreateUsers();
if (unavailable && process.env.CI) throw new Error(`CI runs as root: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let u: TestUser;
before(() => {
  if (!unavailable) u = createUser('dbutil');
});
after(() => {
  if (u) removeUser(u);
});

const dbutil = (...args: string[]) => tool(u, 'dbutil', args);

test('options and exit codes of the installed dbutil, run as the user', { skip }, async () => {
  const db = join(u.home, 'options.db');
  assert.deepEqual(await dbutil('-q', db, 'k'), { status: 1, stdout: '', stderr: '' });
  const st = statSync(db);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [u.uid, u.gid, 0o600], "the user's file, mode 0600");
  assert.equal((await dbutil('-u', db, 'k', 'v 1')).status, 0);
  assert.deepEqual(await dbutil('-q', db, 'k'), { status: 0, stdout: 'v 1\n', stderr: '' });
  assert.equal((await dbutil('-u', '-n', db, 'k', 'other')).status, 1, '-n: present');
  assert.equal((await dbutil('-u', '-n', db, 'new', 'x')).status, 0, '-n: absent');
  assert.equal((await dbutil('-u', '--expire=2030-01-01', db, 'e', 'x')).status, 0);
  assert.deepEqual(await dbutil('-q', '-t', db, 'e'), { status: 0, stdout: '1893456000\n', stderr: '' });
  assert.deepEqual(await dbutil('--add=5', db, 'n'), { status: 0, stdout: '5\n', stderr: '' });
  assert.deepEqual(await dbutil('-d', db), {
    status: 0,
    stdout: 'e x (1893456000)\nk v 1\nn 5\nnew x\n',
    stderr: '',
  });
  assert.equal((await dbutil('-x', db, 'k')).status, 0);
  assert.equal((await dbutil('-x', db, 'k')).status, 1);
  assert.deepEqual(await dbutil('-t', '2026-01-01T00:00:00Z'), { status: 0, stdout: '1767225600\n', stderr: '' });
  const now = Number((await dbutil('-t')).stdout);
  assert.ok(Math.abs(now - Date.now() / 1000) < 60, `-t is now: ${now}`);
  const ago = Number((await dbutil('-t', '-2h')).stdout) - (now - 7200);
  assert.ok(ago >= 0 && ago < 60, `-t -2h is two hours before now (${ago} s later: the time between the runs)`);
  for (const bad of [
    ['-q'],
    ['-z', db, 'k'],
    ['--add=x', db, 'k'],
    ['-q', '/root/x.db', 'k'],
    ['-q', '/etc/passwd', 'k'],
  ]) {
    const r = await dbutil(...bad);
    assert.equal(r.status, 2, `${bad.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^dbutil: /);
  }
  assert.equal(existsSync('/root/x.db'), false, 'the user could not create a file in /root');
  assert.match((await dbutil('--help')).stdout, /^usage: dbutil/);
  // the user's umask applies to the new file
  assert.equal((await shAs(u, 'umask 077; dbutil -u "$1" k v', [join(u.home, 'umask.db')])).status, 0);
  assert.equal(statSync(join(u.home, 'umask.db')).mode & 0o777, 0o600);
});

test(
  '50 processes adding 1 to one key at once: the value is exactly 50, and each saw its own count',
  { skip },
  async () => {
    const db = join(u.home, 'counter.db'); // a fresh file: the processes also race to create it
    const runs = await Promise.all(Array.from({ length: 50 }, () => dbutil('--add=1', '--expire=+1h', db, 'hits')));
    for (const r of runs) assert.equal(r.status, 0, r.stderr);
    const seen = runs.map((r) => Number(r.stdout)).sort((a, b) => a - b);
    assert.deepEqual(
      seen,
      Array.from({ length: 50 }, (_, i) => i + 1),
      'no two increments read the same value',
    );
    assert.deepEqual(await dbutil('-q', db, 'hits'), { status: 0, stdout: '50\n', stderr: '' });
  },
);

test('50 processes racing `-u -n` for one key: exactly one writes it', { skip }, async () => {
  const db = join(u.home, 'race.db');
  const runs = await Promise.all(Array.from({ length: 50 }, (_, i) => dbutil('-u', '-n', db, 'first', `p${i}`)));
  const codes = runs.map((r) => r.status);
  assert.equal(codes.filter((c) => c === 0).length, 1, JSON.stringify(runs.filter((r) => r.status !== 1)));
  assert.equal(codes.filter((c) => c === 1).length, 49);
  const winner = runs.findIndex((r) => r.status === 0);
  assert.equal((await dbutil('-q', db, 'first')).stdout, `p${winner}\n`);
});

test('an expiry is honoured: present at once, absent when queried no sooner than 5 s later', { skip }, async () => {
  const db = join(u.home, 'expiry.db');
  const started = Date.now();
  assert.equal((await dbutil('-u', '--expire=+5s', db, 'short', 'x')).status, 0);
  assert.equal((await dbutil('-u', '--expire=+1h', db, 'long', 'y')).status, 0);
  assert.equal((await dbutil('-q', db, 'short')).status, 0, 'there right after');
  // poll until it is gone (no sleep stands for the condition)
  let gone = -1;
  while (Date.now() - started < 30_000) {
    const r = await dbutil('-q', db, 'short');
    if (r.status === 1) {
      gone = Date.now() - started;
      break;
    }
    assert.equal(r.status, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.ok(gone >= 5000, `expired after ${gone} ms (not before 5000)`);
  assert.equal((await dbutil('-q', db, 'long')).stdout, 'y\n', 'the other record lives on');
  assert.equal((await dbutil('-d', db)).stdout.includes('short'), false, 'not in the dump either');
});
