import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitStatus, main } from './avenger-local.js';
import { fakeIo } from '../testing/tool-io-fake.js';

let dir: string;
let conf: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'avenger-local-test-'));
  conf = join(dir, 'asmtpd.conf');
  writeFileSync(conf, 'Separator +\nHostname mx.example\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]) {
  const f = fakeIo({ stdin: 'Subject: x\n\nbody\n' });
  return { code: await main(args, f.io), stderr: f.stderr(), stdout: f.stdout().toString() };
}

test('bad usage: 64', async () => {
  for (const args of [[], ['a', 'b'], ['-f'], ['--bogus', 'bob'], ['-a', 'x', 'bob+y']]) {
    const r = await run([`--config=${conf}`, ...args]);
    assert.equal(r.code, 64, args.join(' '));
    assert.match(r.stderr, /^avenger\.local: /);
  }
  assert.match((await run(['--help'])).stdout, /^usage: avenger\.local/);
});

test('a recipient that cannot name a file or a mailbox, and an unknown user: 67', async () => {
  for (const args of [
    ['bob..x'],
    ['-a', '../x', 'bob'],
    ['-a', '.hidden', 'bob'],
    ['bob+a/b'],
    ['-D', 'a..b@x', 'bob'],
  ]) {
    const r = await run([`--config=${conf}`, ...args]);
    assert.equal(r.code, 67, args.join(' '));
  }
  // as root the runner first needs an AvengerUser: test/e2e/avenger-local.test.ts has one
  if (process.getuid?.() === 0) return;
  const unknown = await run([`--config=${conf}`, 'no-such-user-here-xyz']);
  assert.equal(unknown.code, 67);
  assert.match(unknown.stderr, /no-such-user-here-xyz: no such user/);
});

test('a configuration that does not load: 75 (temporary: the mail waits for the fix)', async () => {
  const bad = join(dir, 'bad.conf');
  writeFileSync(bad, 'NoSuchDirective 1\n');
  const r = await run([`--config=${bad}`, 'bob']);
  assert.equal(r.code, 75);
  assert.match(r.stderr, /bad\.conf/);
  assert.equal((await run([`--config=${join(dir, 'missing.conf')}`, 'bob'])).code, 75, 'a named file must exist');
});

test('exit statuses for the MTA', () => {
  const ran = (exitCode: number | null, script: string | null = '/h/.avenger/local', extra = {}) =>
    exitStatus({
      kind: 'ran',
      script,
      exitCode,
      signal: exitCode === null ? 'SIGKILL' : null,
      timedOut: false,
      stdout: '',
      stderr: '',
      user: 'bob',
      uid: 1000,
      ...extra,
    }).status;
  assert.equal(ran(0), 0);
  assert.equal(ran(0, null), 0, 'plain delivery');
  assert.equal(ran(75, null), 75);
  assert.equal(ran(64, null), 75, "deliver's own usage error is ours: the mail waits");
  assert.equal(ran(67), 67, 'a script may say "no such user"');
  assert.equal(ran(77), 77);
  assert.equal(ran(100), 77, "qmail's permanent failure");
  assert.equal(ran(111), 75);
  assert.equal(ran(1), 75);
  assert.equal(ran(null), 75, 'killed');
  assert.equal(ran(0, '/h/.avenger/local', { timedOut: true }), 75);
  assert.equal(exitStatus({ kind: 'unknown-user' }).status, 67);
  assert.equal(exitStatus({ kind: 'refused', script: null, reason: 'uid 0' }).status, 75);
  assert.equal(exitStatus({ kind: 'error', reason: 'x' }).status, 75);
});
