import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './mailexec.js';
import { asctime } from './mbox-format.js';
import { fakeIo } from '../testing/tool-io-fake.js';

let dir: string;
let n = 0;
before(() => (dir = mkdtempSync(join(tmpdir(), 'mailexec-test-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run mailexec with a command that saves each message it gets; returns them in order. */
async function collect(args: string[], mailbox: string) {
  const out = join(dir, `out${++n}`);
  mkdirSync(out);
  const f = fakeIo();
  const code = await main([...args, mailbox, 'sh', '-c', 'cat > "$0/$(ls "$0" | wc -l)"', out], f.io);
  const files = readdirSync(out).sort((a, b) => Number(a) - Number(b));
  return { code, stderr: f.stderr(), messages: files.map((file) => readFileSync(join(out, file), 'latin1')) };
}

const MBOX =
  'From a@x.example Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From quoted\n\n' +
  'From MAILER-DAEMON Mon Jan  1 00:00:01 2024\nReturn-Path: <>\nMessage-ID: <two@x>\nSubject: two\n\nb\n\n';

test('mbox: one run per message, envelope line kept, Return-Path added from it, >From unquoted', async () => {
  const mbox = join(dir, 'mbox');
  writeFileSync(mbox, MBOX);
  const r = await collect([], mbox);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.messages, [
    'From a@x.example Mon Jan  1 00:00:00 2024\nReturn-Path: <a@x.example>\nSubject: one\n\nFrom quoted\n',
    'From MAILER-DAEMON Mon Jan  1 00:00:01 2024\nReturn-Path: <>\nMessage-ID: <two@x>\nSubject: two\n\nb\n',
  ]);
});

test('-F: no envelope line; -R: no Return-Path at the top (the one there removed); -v says Message-IDs', async () => {
  const mbox = join(dir, 'mbox-fr');
  writeFileSync(mbox, MBOX);
  const r = await collect(['-FRv'], mbox);
  assert.equal(r.code, 0);
  assert.deepEqual(r.messages, ['Subject: one\n\nFrom quoted\n', 'Message-ID: <two@x>\nSubject: two\n\nb\n']);
  assert.equal(r.stderr, '(no Message-ID)\n<two@x>\n');
});

test('Maildir: new/ and cur/ in name order, an envelope line from Return-Path and mtime; -n: new/ only', async () => {
  const md = join(dir, 'Maildir');
  for (const sub of ['new', 'cur', 'tmp']) mkdirSync(join(md, sub), { recursive: true });
  writeFileSync(join(md, 'cur', '1000.A.host:2,S'), 'Return-Path: <old@x>\nSubject: old\n\n');
  writeFileSync(join(md, 'new', '2000.B.host'), 'Subject: no return path\n\n');
  writeFileSync(join(md, 'tmp', '3000.C.host'), 'Subject: not delivered yet\n\n');
  const when = new Date(2024, 4, 6, 7, 8, 9);
  for (const f of ['cur/1000.A.host:2,S', 'new/2000.B.host']) utimesSync(join(md, f), when, when);
  const r = await collect(['-v'], md);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.messages, [
    `From old@x ${asctime(when)}\nReturn-Path: <old@x>\nSubject: old\n\n`,
    `From MAILER-DAEMON ${asctime(when)}\nSubject: no return path\n\n`,
  ]);
  assert.equal(r.stderr, `${join(md, 'cur', '1000.A.host:2,S')}\n${join(md, 'new', '2000.B.host')}\n`);
  const newOnly = await collect(['-n', '-F'], md);
  assert.deepEqual(newOnly.messages, ['Subject: no return path\n\n']);
});

test('exit: 1 when a command fails (the rest still run), 2 for usage, a missing mailbox or command', async () => {
  const mbox = join(dir, 'mbox-exit');
  writeFileSync(mbox, MBOX);
  const failing = fakeIo();
  assert.equal(await main([mbox, 'sh', '-c', 'grep -q "Subject: two"'], failing.io), 1);
  const count = join(dir, 'count');
  assert.equal(await main([mbox, 'sh', '-c', `echo x >> ${count}; exit 1`], fakeIo().io), 1);
  assert.equal(readFileSync(count, 'utf8'), 'x\nx\n');
  for (const args of [[], [mbox], ['-x', mbox, 'cat'], [join(dir, 'nope'), 'cat'], [mbox, 'no-such-command-xyz']]) {
    const f = fakeIo();
    assert.equal(await main(args, f.io), 2, args.join(' '));
    assert.match(f.stderr(), /^mailexec: /);
  }
  const notMbox = join(dir, 'not-mbox');
  writeFileSync(notMbox, 'Subject: x\n\n');
  const f = fakeIo();
  assert.equal(await main([notMbox, 'cat'], f.io), 2);
  assert.match(f.stderr(), /not an mbox file/);
});

test('a command that reads nothing (head -0) is not an error', async () => {
  const mbox = join(dir, 'mbox-head');
  writeFileSync(mbox, MBOX + 'From c Mon\n\n' + 'x\n'.repeat(200_000));
  assert.equal(await main([mbox, 'head', '-c', '0'], fakeIo().io), 0);
});
