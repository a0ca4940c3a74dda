import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { runAliascheck } from './aliascheck.js';
import type { Accounts } from '../recipients/accounts.js';
import type { ToolIo } from './tool-io.js';

const dir = mkdtempSync(join(tmpdir(), 'aliascheck-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ALIASES = join(dir, 'aliases');
writeFileSync(
  ALIASES,
  [
    '# See man 5 aliases for format',
    'postmaster:    root',
    'Sales: bob, alice@example.org',
    '# a comment inside an entry neither ends nor continues it',
    'lists: :include:/etc/mail/lists,',
    '        "|/usr/local/bin/archive --all",',
    '',
    '        /var/mail/archive, \\carol',
    '"odd name": bob',
    'broken line without a colon',
    'twice: a',
    'twice: b',
  ].join('\n') + '\n',
);

/** Accounts that exist: bob, and one whose lookup fails. */
const accounts: Accounts = {
  async lookup(name) {
    if (name === 'fails') throw new Error('getent: lookup failed');
    return name === 'bob'
      ? { name: 'bob', uid: 1001, gid: 1001, gecos: '', home: '/home/bob', shell: '/bin/sh' }
      : null;
  },
  async groups() {
    return [];
  },
};

async function run(
  argv: string[],
  acc: Accounts | 'system' = accounts,
): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '',
    err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const io: ToolIo = { stdin: Readable.from([]), stdout, stderr, env: {} };
  const code = await runAliascheck(argv, io, acc === 'system' ? undefined : acc);
  return { code, out, err };
}

test('an alias: exit 0 and its targets on one line (continuations joined, :include: not followed), any case', async () => {
  assert.deepEqual(await run(['sales', ALIASES]), { code: 0, out: 'bob, alice@example.org\n', err: '' });
  assert.deepEqual(await run(['SALES', ALIASES]), { code: 0, out: 'bob, alice@example.org\n', err: '' });
  assert.deepEqual(await run(['lists', ALIASES]), {
    code: 0,
    out: ':include:/etc/mail/lists, "|/usr/local/bin/archive --all", /var/mail/archive, \\carol\n',
    err: '',
  });
  assert.deepEqual(await run(['odd name', ALIASES]), { code: 0, out: 'bob\n', err: '' });
  assert.deepEqual(await run(['twice', ALIASES]), { code: 0, out: 'a\n', err: '' }, 'the first entry wins');
  assert.deepEqual(await run(['--', 'postmaster', ALIASES]), { code: 0, out: 'root\n', err: '' });
});

test('an account (unless --nopwd): exit 0 and its name; neither alias nor account: exit 1', async () => {
  assert.deepEqual(await run(['Bob', ALIASES]), { code: 0, out: 'bob\n', err: '' });
  assert.deepEqual(await run(['--nopwd', 'bob', ALIASES]), { code: 1, out: '', err: '' });
  assert.deepEqual(await run(['nobody-here', ALIASES]), { code: 1, out: '', err: '' });
  for (const hostile of [
    '$(reboot)',
    '-rf',
    '../../etc/passwd',
    'a\0b',
    'x'.repeat(100_000),
    'broken line without a colon',
  ])
    assert.deepEqual(
      await run(['--', hostile, ALIASES]),
      { code: 1, out: '', err: '' },
      JSON.stringify(hostile.slice(0, 20)),
    );
  // the system database, as the installed command asks it (getent passwd)
  assert.deepEqual(await run(['root', ALIASES], 'system'), { code: 0, out: 'root\n', err: '' });
  assert.deepEqual(await run(['0', ALIASES], 'system'), { code: 1, out: '', err: '' }, 'a uid is not a name');
  assert.deepEqual(await run(['no-such-account-x1', ALIASES], 'system'), { code: 1, out: '', err: '' });
});

test('exit 2: unreadable alias file, failed account lookup, bad usage; -v reports skipped lines', async () => {
  assert.deepEqual(await run(['bob', join(dir, 'missing')]), {
    code: 2,
    out: '',
    err: `aliascheck: ${join(dir, 'missing')}: no such file\n`,
  });
  assert.deepEqual(await run(['bob', dir]), { code: 2, out: '', err: `aliascheck: ${dir}: not a regular file\n` });
  assert.deepEqual(await run(['fails', ALIASES]), { code: 2, out: '', err: 'aliascheck: getent: lookup failed\n' });
  for (const argv of [[], ['a', 'b', 'c'], ['--frob', 'a'], ['']]) {
    const r = await run(argv);
    assert.equal(r.code, 2, JSON.stringify(argv));
    assert.match(r.err, /usage: aliascheck/);
  }
  const v = await run(['-v', 'sales', ALIASES]);
  assert.equal(v.code, 0);
  assert.equal(
    v.err,
    `aliascheck: ${ALIASES}:10: expected name: target, target, ...\n` +
      `aliascheck: ${ALIASES}:12: twice: given twice (first at line 11); this entry is ignored\n`,
  );
  assert.equal((await run(['--help'])).code, 0);
});
