import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './deliver.js';
import { asctime } from './mbox-format.js';
import { fakeIo } from '../testing/tool-io-fake.js';

let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'deliver-test-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

const MSG = 'Subject: hello\n\nFrom the start\n>From quoted\nbody without newline';

/** The file equals one of the texts `make(asctime)` gives for a second between t0 and now. */
function assertWithDate(actual: Buffer, t0: number, make: (date: string) => string): void {
  const options: string[] = [];
  for (let s = Math.floor(t0 / 1000); s <= Math.floor(Date.now() / 1000); s++)
    options.push(make(asctime(new Date(s * 1000))));
  assert.ok(options.includes(actual.toString('latin1')), `got ${JSON.stringify(actual.toString('latin1'))}`);
}

async function deliver(args: string[], stdin: string | Buffer, env: Record<string, string> = {}) {
  const f = fakeIo({ stdin, env });
  const code = await main(args, f.io);
  return { code, stdout: f.stdout(), stderr: f.stderr() };
}

test('mbox: envelope line, Return-Path, >From quoting, final newline and empty line, byte for byte', async () => {
  const mbox = join(dir, 'mbox1');
  const t0 = Date.now();
  assert.equal((await deliver([mbox], MSG, { SENDER: 'bob@x.example' })).code, 0);
  assert.equal((await deliver(['-f', '', mbox], 'Subject: bounce\n\nFrom here\n')).code, 0);
  assertWithDate(
    readFileSync(mbox),
    t0,
    (d) =>
      `From bob@x.example ${d}\nReturn-Path: <bob@x.example>\nSubject: hello\n\n>From the start\n>>From quoted\nbody without newline\n\n` +
      `From MAILER-DAEMON ${d}\nReturn-Path: <>\nSubject: bounce\n\n>From here\n\n`,
  );
  assert.equal(statSync(mbox).mode & 0o777, 0o600, 'umask 077 by default');
});

test("mbox: a message's own envelope line is kept, an existing Return-Path is not doubled", async () => {
  const mbox = join(dir, 'mbox2');
  const own = 'From orig@x.example  Mon Jan  1 00:00:00 2024\nReturn-Path: <orig@x.example>\nSubject: s\n\nx\n';
  assert.equal((await deliver([mbox], own, { SENDER: 'other@x.example' })).code, 0);
  assert.equal(readFileSync(mbox, 'latin1'), `${own}\n`);
});

test('mbox: an existing mbox that does not end with an empty line gets one before the new message', async () => {
  const mbox = join(dir, 'mbox3');
  writeFileSync(mbox, 'From a Mon Jan  1 00:00:00 2024\nSubject: old\n\nno final newline');
  const t0 = Date.now();
  assert.equal((await deliver(['-f', 'c@x', mbox], 'Subject: new\n\nn\n')).code, 0);
  assertWithDate(
    readFileSync(mbox),
    t0,
    (d) =>
      `From a Mon Jan  1 00:00:00 2024\nSubject: old\n\nno final newline\n\nFrom c@x ${d}\nReturn-Path: <c@x>\nSubject: new\n\nn\n\n`,
  );
});

test('Maildir: created, one file in new/ with Return-Path and the message as it came (no envelope line)', async () => {
  const md = join(dir, 'deep', 'Maildir');
  const r = await deliver([`${md}/`], `From s@x  Mon Jan  1 00:00:00 2024\n${MSG}`, { SENDER: 's@x' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(md).sort(), ['cur', 'new', 'tmp']);
  assert.deepEqual(readdirSync(join(md, 'tmp')), []);
  const [name] = readdirSync(join(md, 'new'));
  assert.match(name!, /^\d+\.M\d+P\d+R[0-9a-f]{16}Q\d+\.[^/:]+$/);
  assert.equal(readFileSync(join(md, 'new', name!), 'latin1'), `Return-Path: <s@x>\n${MSG}`);
  assert.equal(statSync(join(md, 'new')).mode & 0o777, 0o700);
});

test('Maildir: many deliveries get distinct names; a Maildir++ folder gets maildirfolder', async () => {
  const md = join(dir, 'Maildir2');
  for (let i = 0; i < 20; i++) assert.equal((await deliver([`${md}/`], `Subject: ${i}\n\n`)).code, 0);
  assert.equal(readdirSync(join(md, 'new')).length, 20);
  assert.equal((await deliver([`${md}/.lists/`], 'Subject: l\n\n')).code, 0);
  assert.ok(readdirSync(join(md, '.lists')).includes('maildirfolder'));
  assert.equal(readFileSync(join(md, 'new', readdirSync(join(md, 'new'))[0]!), 'latin1').startsWith('Subject: '), true);
});

test('"-": the message with Return-Path on stdout; no sender known: no Return-Path', async () => {
  const r = await deliver(['-'], MSG, { SENDER: 'a@b' });
  assert.equal(r.stdout.toString('latin1'), `Return-Path: <a@b>\n${MSG}`);
  assert.equal((await deliver(['-'], MSG)).stdout.toString('latin1'), MSG);
});

test('--umask: =MODE, and alone the inherited one', async () => {
  const md = join(dir, 'umask');
  assert.equal((await deliver(['--umask=022', `${md}/`, join(dir, 'umask.mbox')], 'x\n')).code, 0);
  assert.equal(statSync(join(md, 'new')).mode & 0o777, 0o755);
  assert.equal(statSync(join(dir, 'umask.mbox')).mode & 0o777, 0o644);
  const old = process.umask(0o027);
  try {
    assert.equal((await deliver(['--umask', join(dir, 'umask2.mbox')], 'x\n')).code, 0);
    assert.equal(statSync(join(dir, 'umask2.mbox')).mode & 0o777, 0o640);
  } finally {
    process.umask(old);
  }
  assert.equal(process.umask(), old, 'the process umask is restored');
});

test('a stdin that is a file is read from its start (rewound), unless --norewind', async () => {
  const file = join(dir, 'input');
  writeFileSync(file, 'Subject: whole\n\nbody\n');
  const stream = createReadStream(file, { start: 0 });
  await new Promise((resolve) => stream.once('open', resolve));
  const f = fakeIo({ stdin: stream });
  assert.equal(await main(['-'], f.io), 0);
  assert.equal(f.stdout().toString(), 'Subject: whole\n\nbody\n');
  stream.destroy();
});

test('usage: 64 without DEST, for unknown options, bad --umask, and for fcntl locking', async () => {
  for (const args of [[], ['--bogus', 'x'], ['--umask=999', 'x'], ['-P', 'x'], ['-f']]) {
    const r = await deliver(args, 'x');
    assert.equal(r.code, 64, args.join(' '));
    assert.match(r.stderr, /^deliver: .*\nusage: deliver/);
  }
  const help = await deliver(['--help'], '');
  assert.equal(help.code, 0);
  assert.match(help.stdout.toString(), /^usage: deliver/);
});

test('a failing DEST: 75, said on stderr; the other DESTs still get the message', async () => {
  const isDir = join(dir, 'a-directory');
  mkdirSync(isDir);
  const md = join(dir, 'Maildir3');
  writeFileSync(join(dir, 'a-file'), '');
  const r = await deliver([isDir, `${md}/`, join(dir, 'a-file', 'mbox')], 'x\n');
  assert.equal(r.code, 75);
  assert.match(r.stderr, new RegExp(`^deliver: ${isDir}: .*\\n`));
  assert.match(r.stderr, /a-file\/mbox: (EEXIST|ENOTDIR)/);
  assert.equal(readdirSync(join(md, 'new')).length, 1);
});

test('a fresh MBOX.lock held by someone else: 75 after --timeout, the mbox unchanged', async () => {
  const mbox = join(dir, 'locked');
  writeFileSync(mbox, '');
  writeFileSync(`${mbox}.lock`, '1\n');
  const t0 = Date.now();
  const r = await deliver(['--timeout=0.5', mbox], 'x\n');
  assert.equal(r.code, 75);
  assert.match(r.stderr, /timed out waiting for .*locked\.lock/);
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(readFileSync(mbox, 'latin1'), '');
});

test('Maildir++: a folder whose Maildir does not exist yet makes both', async () => {
  const md = join(dir, 'fresh', 'Maildir');
  assert.equal((await deliver([`${md}/.shop/`], 'Subject: s\n\n')).code, 0);
  assert.deepEqual(readdirSync(md).sort(), ['.shop', 'cur', 'new', 'tmp']);
  assert.deepEqual(readdirSync(join(md, '.shop')).sort(), ['cur', 'maildirfolder', 'new', 'tmp']);
  assert.equal((await deliver([`${join(dir, 'plain-dir')}/.hidden/`], 'x\n')).code, 0);
  assert.equal(readdirSync(join(dir, 'plain-dir', '.hidden')).includes('maildirfolder'), true);
  mkdirSync(join(dir, 'existing'));
  assert.equal((await deliver([`${join(dir, 'existing')}/.x/`], 'x\n')).code, 0);
  assert.equal(readdirSync(join(dir, 'existing', '.x')).includes('maildirfolder'), false, 'not in a Maildir');
});
