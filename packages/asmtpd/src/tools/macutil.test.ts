import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main, sendmac } from './macutil.js';
import type { ToolIo } from './tool-io.js';

const BIN = fileURLToPath(new URL('../../tools/macutil', import.meta.url));
const base = mkdtempSync(join(tmpdir(), 'macutil-'));
after(() => rmSync(base, { recursive: true, force: true }));
let homes = 0;
function home(): string {
  const h = join(base, `home${++homes}`);
  mkdirSync(h);
  return h;
}

async function run(
  fn: typeof main,
  argv: string[],
  env: Record<string, string | undefined>,
  stdin = '',
): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '',
    err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const io: ToolIo = { stdin: Readable.from([Buffer.from(stdin)]), stdout, stderr, env };
  const code = await fn(argv, io);
  return { code, out, err };
}

test('--gen makes ~/.avenger/.macpass (0600, in a new 0700 ~/.avenger) on first use and prints a code --check accepts', async () => {
  const h = home();
  const gen = await run(main, ['--gen'], { HOME: h });
  assert.equal(gen.code, 0, gen.err);
  assert.match(gen.out, /^[a-z2-7]{16}\n$/);
  assert.equal(statSync(join(h, '.avenger')).mode & 0o777, 0o700);
  assert.equal(statSync(join(h, '.avenger', '.macpass')).mode & 0o777, 0o600);
  assert.match(readFileSync(join(h, '.avenger', '.macpass'), 'utf8'), /^[A-Za-z0-9_-]{43}\n$/);
  assert.deepEqual(readdirSync(join(h, '.avenger')), ['.macpass'], 'no temporary file left');
  const code = gen.out.trim();
  assert.deepEqual(await run(main, ['--check', code], { HOME: h }), { code: 0, out: '', err: '' });
  assert.equal((await run(main, ['-c', code.toUpperCase()], { HOME: h })).code, 0);
  assert.equal((await run(main, [`--check=${code}`], { HOME: h })).code, 0);
  // the second --gen uses the same key
  const again = (await run(main, ['-g', '--expire=+1h'], { HOME: h })).out.trim();
  assert.equal((await run(main, ['--check', again], { HOME: h })).code, 0);
});

test('--check: altered, expired, foreign and malformed codes exit 1 with the reason; no key file means no genuine code', async () => {
  const h = home();
  const code = (await run(main, ['--gen', '--expire', '+1h'], { HOME: h })).out.trim();
  const altered = code.slice(0, 10) + (code[10] === 'q' ? 'r' : 'q') + code.slice(11);
  assert.deepEqual(await run(main, ['--check', altered], { HOME: h }), {
    code: 1,
    out: '',
    err: `macutil: "${altered}": not a genuine code\n`,
  });
  const expired = (await run(main, ['--gen', '--expire=-1h'], { HOME: h })).out.trim();
  const r = await run(main, ['--check', expired], { HOME: h });
  assert.equal(r.code, 1);
  assert.match(r.err, /^macutil: "[a-z2-7]{16}": expired at \d{4}-\d\d-\d\dT/);
  const other = home();
  const foreign = await run(main, ['--check', code], { HOME: other });
  assert.deepEqual(foreign, {
    code: 1,
    out: '',
    err: `macutil: no key file ${other}/.avenger/.macpass yet: no code is genuine\n`,
  });
  assert.throws(() => statSync(join(other, '.avenger')), /ENOENT/, '--check creates nothing');
  await run(main, ['--gen'], { HOME: other });
  assert.equal((await run(main, ['--check', code], { HOME: other })).code, 1, "another user's key");
  const hostile = await run(main, ['--check', '$(reboot)\0x'], { HOME: h });
  assert.deepEqual(hostile, {
    code: 1,
    out: '',
    err: 'macutil: "$(reboot)\\u0000x": not a code (16 characters a-z, 2-7)\n',
  });
  const huge = await run(main, ['--check', 'a'.repeat(100_000)], { HOME: h });
  assert.equal(huge.code, 1);
  assert.ok(huge.err.length < 200, 'a huge argument is not echoed whole');
});

test('--sender puts a fresh code in the template; MACUTIL_SENDER is the default template', async () => {
  const h = home();
  const r = await run(main, ['--sender', 'bob+*@example.org', '-e', '+2d'], { HOME: h });
  assert.equal(r.code, 0, r.err);
  const m = /^bob\+([a-z2-7]{16})@example\.org\n$/.exec(r.out);
  assert.ok(m, r.out);
  assert.equal((await run(main, ['--check', m[1]!], { HOME: h })).code, 0);
  const env = await run(main, ['--sender'], { HOME: h, MACUTIL_SENDER: 'x+mac+*' });
  assert.match(env.out, /^x\+mac\+[a-z2-7]{16}\n$/);
  assert.match((await run(main, ['--sender=y*'], { HOME: h })).out, /^y[a-z2-7]{16}\n$/);
  for (const [argv, why] of [
    [['--sender'], /--sender needs a TEMPLATE/],
    [['--sender', 'no-star@x'], /needs exactly one \*/],
    [['--sender', 'a*b*@x'], /needs exactly one \*/],
  ] as const) {
    const bad = await run(main, [...argv], { HOME: h });
    assert.equal(bad.code, 2);
    assert.match(bad.err, why);
  }
});

test('the key file: --passfile and MACUTIL_PASSFILE, a hand-written passphrase, unusable files exit 2, a readable one warns', async () => {
  const dir = mkdtempSync(join(base, 'keys-'));
  const pass = join(dir, 'pass');
  writeFileSync(pass, 'my own passphrase\n', { mode: 0o600 });
  const code = (await run(main, ['--gen', `--passfile=${pass}`], {})).out.trim();
  assert.match(code, /^[a-z2-7]{16}$/);
  assert.equal((await run(main, ['--check', code], { MACUTIL_PASSFILE: pass })).code, 0);
  writeFileSync(pass, 'my own passphrase'); // without the newline: the same key
  assert.equal((await run(main, ['--check', code], { MACUTIL_PASSFILE: pass })).code, 0);
  writeFileSync(pass, 'another passphrase\n');
  assert.equal((await run(main, ['--check', code], { MACUTIL_PASSFILE: pass })).code, 1);
  chmodSync(pass, 0o644);
  const warned = await run(main, ['--gen'], { MACUTIL_PASSFILE: pass });
  assert.equal(warned.code, 0);
  assert.equal(warned.err, `macutil: warning: ${pass} can be read or written by others: chmod 600 it\n`);
  writeFileSync(pass, '\n');
  assert.deepEqual(await run(main, ['--gen'], { MACUTIL_PASSFILE: pass }), {
    code: 2,
    out: '',
    err: `macutil: ${pass}: empty passphrase\n`,
  });
  const missingDir = await run(main, ['--gen'], { MACUTIL_PASSFILE: join(dir, 'no', 'such', 'pass') });
  assert.equal(missingDir.code, 2, 'only ~/.avenger is created');
  assert.match(missingDir.err, /^macutil: .*ENOENT/);
  assert.match((await run(main, ['--gen'], {})).err, /HOME is not set/);
});

test('bad usage exits 2 with the usage', async () => {
  const h = home();
  for (const argv of [
    [],
    ['--frobnicate'],
    ['--check'],
    ['--gen', '--check', 'x'],
    ['--gen', 'extra'],
    ['--gen', '--expire=soon'],
    ['--gen', '--expire'],
    ['--sendmail=x'],
  ]) {
    const r = await run(main, argv, { HOME: h });
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, /^macutil: .*\nusage: macutil --gen/, argv.join(' '));
  }
  const help = await run(main, ['--help'], {});
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: macutil --gen/);
  assert.deepEqual(await run(sendmac, ['--help'], {}), help);
});

/** A fake sendmail recording its argv (NUL-separated) and stdin, then exiting with `status`. */
function fakeSendmail(dir: string, status: number): string {
  const path = join(dir, 'sendmail');
  writeFileSync(
    path,
    `#!/bin/sh\nfor a in "$@"; do printf '%s\\0' "$a"; done > '${dir}/argv'\ncat > '${dir}/stdin'\nexit ${status}\n`,
    { mode: 0o755 },
  );
  return path;
}

test('--sendmail and sendmac run sendmail with -f and a fresh coded sender, the message on stdin, and pass its status on', async () => {
  const h = home();
  const dir = mkdtempSync(join(base, 'sendmail-'));
  const env = { HOME: h, USER: 'bob', MACUTIL_SENDMAIL: fakeSendmail(dir, 0) };
  const message = 'Subject: hi\n\n.\nbody\n';
  const r = await run(sendmac, ['-oi', '-t'], env, message);
  assert.deepEqual(r, { code: 0, out: '', err: '' });
  const argv = readFileSync(join(dir, 'argv'), 'utf8').split('\0').slice(0, -1);
  assert.equal(argv[0], '-f');
  const m = /^bob\+([a-z2-7]{16})$/.exec(argv[1]!);
  assert.ok(m, argv[1]);
  assert.deepEqual(argv.slice(2), ['-oi', '-t']);
  assert.equal(readFileSync(join(dir, 'stdin'), 'utf8'), message);
  assert.equal((await run(main, ['--check', m[1]!], env)).code, 0);

  await run(main, ['--sender', 'lists+*@example.org', '--expire=+1d', '--sendmail', '--', 'a@b'], env);
  const argv2 = readFileSync(join(dir, 'argv'), 'utf8').split('\0').slice(0, -1);
  assert.match(argv2[1]!, /^lists\+[a-z2-7]{16}@example\.org$/);
  assert.deepEqual(argv2.slice(2), ['--', 'a@b']);
  await run(sendmac, ['x@y'], { ...env, MACUTIL_SENDER: 'env+*' });
  assert.match(readFileSync(join(dir, 'argv'), 'utf8').split('\0')[1]!, /^env\+[a-z2-7]{16}$/);

  const tempfail = await run(sendmac, ['x@y'], { ...env, MACUTIL_SENDMAIL: fakeSendmail(dir, 75) });
  assert.equal(tempfail.code, 75, "sendmail's status");
  for (const own of [['-f', 'me@x'], ['-fme@x'], ['-r', 'me@x']]) {
    const r2 = await run(sendmac, [...own, 'x@y'], env);
    assert.equal(r2.code, 2, own.join(' '));
    assert.match(r2.err, /the envelope sender is the one macutil makes/);
  }
  const missing = await run(sendmac, ['x@y'], { ...env, MACUTIL_SENDMAIL: join(dir, 'nope') });
  assert.equal(missing.code, 2);
  assert.match(missing.err, /cannot run .*nope/);
});

test('two first uses at once end with one key: 12 concurrent `macutil --gen` (the installed command) agree', async () => {
  const h = home();
  const runs = await Promise.all(
    Array.from(
      { length: 12 },
      () =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, [BIN, '--gen'], { env: { HOME: h, PATH: process.env.PATH } });
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.on('close', (status) => (status === 0 ? resolve(out.trim()) : reject(new Error(`exit ${status}`))));
        }),
    ),
  );
  assert.deepEqual(readdirSync(join(h, '.avenger')), ['.macpass']);
  for (const code of runs) assert.equal((await run(main, ['--check', code], { HOME: h })).code, 0, code);
});
