import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  createReadStream,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './edinplace.js';
import { fakeIo } from '../testing/tool-io-fake.js';

let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'edinplace-test-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[], stdin?: ReturnType<typeof createReadStream>) {
  const f = fakeIo(stdin ? { stdin } : {});
  const code = await main(args, f.io);
  return { code, stdout: f.stdout().toString(), stderr: f.stderr() };
}

/** A stdin on a file, as a shell's `< FILE` (read-only) or `<> FILE` gives it, at offset `at`. */
function stdinOn(file: string, flags: 'r' | 'r+', at = 0) {
  const fd = openSync(file, flags);
  if (at > 0) readSync(fd, Buffer.alloc(at), 0, at, null);
  return { fd, stream: createReadStream('', { fd, autoClose: false }) };
}

/** The descriptor's current offset: where a plain read(2) starts. */
function nextByte(fd: number): string {
  const b = Buffer.alloc(1);
  return readSync(fd, b, 0, 1, null) === 1 ? b.toString() : '(EOF)';
}

test('-f FILE: the command output replaces the contents, same inode; exit 0', async () => {
  const file = join(dir, 'a');
  writeFileSync(file, 'hello\nworld\n');
  const ino = statSync(file).ino;
  const r = await run(['-f', file, 'tr', 'a-z', 'A-Z']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(file, 'utf8'), 'HELLO\nWORLD\n');
  assert.equal(statSync(file).ino, ino);
  assert.equal((await run([`--file=${file}`, 'head', '-c', '3'])).code, 0);
  assert.equal(readFileSync(file, 'utf8'), 'HEL', 'shorter output truncates');
});

test("a command's non-zero exit leaves the file unchanged and is edinplace's exit status", async () => {
  const file = join(dir, 'b');
  writeFileSync(file, 'keep me\n');
  assert.equal((await run(['-f', file, 'sh', '-c', 'echo partial; exit 3'])).code, 3);
  assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
  assert.equal((await run(['-f', file, 'sh', '-c', 'kill -TERM $$'])).code, 128 + 15);
  assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
});

test('stdin: edited through /proc/self/fd even when opened read-only, then rewound to 0', async () => {
  const file = join(dir, 'c');
  writeFileSync(file, 'From s@x Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n');
  const { fd, stream } = stdinOn(file, 'r', 10); // a previous command read 10 bytes
  try {
    const r = await run(['--skipfrom', 'sed', 's/body/BODY/'], stream);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(file, 'utf8'), 'From s@x Mon Jan  1 00:00:00 2024\nSubject: x\n\nBODY\n');
    assert.equal(nextByte(fd), 'F', 'rewound to offset 0');
  } finally {
    closeSync(fd);
  }
});

test('--skipfrom: the envelope line is not given to the command', async () => {
  const file = join(dir, 'd');
  writeFileSync(file, 'From s@x Mon Jan  1 00:00:00 2024\nline\n');
  assert.equal((await run(['--skipfrom', '-f', file, 'wc', '-l'])).code, 0);
  assert.equal(readFileSync(file, 'utf8'), 'From s@x Mon Jan  1 00:00:00 2024\n1\n');
});

test('without COMMAND: rewinds stdin (--skipfrom: to the second line); -f then is an error', async () => {
  const file = join(dir, 'e');
  writeFileSync(file, 'From x\nSecond\n');
  const { fd, stream } = stdinOn(file, 'r+', 9);
  try {
    assert.equal((await run([], stream)).code, 0);
    assert.equal(nextByte(fd), 'F');
    assert.equal((await run(['--skipfrom'], stream)).code, 0);
    assert.equal(nextByte(fd), 'S');
  } finally {
    closeSync(fd);
  }
  const r = await run(['-f', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /without COMMAND/);
});

test("edinplace's own failures: CODE (-x, default 1)", async () => {
  const pipe = await run(['cat']); // the fake stdin is a stream, not a file
  assert.equal(pipe.code, 1);
  assert.match(pipe.stderr, /standard input is not a file/);
  assert.equal((await run(['-x', '75', 'cat'])).code, 75);
  assert.equal((await run(['--error=9', '-f', join(dir, 'nope'), 'cat'])).code, 9);
  const file = join(dir, 'f');
  writeFileSync(file, 'x\n');
  const missing = await run(['-x', '111', '-f', file, 'no-such-command-here']);
  assert.equal(missing.code, 111);
  assert.match(missing.stderr, /no-such-command-here/);
  assert.equal(readFileSync(file, 'utf8'), 'x\n');
  for (const args of [['-x', '0', 'cat'], ['-x', '256', 'cat'], ['--bogus'], ['-f']]) {
    const r = await run(args);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, /usage: edinplace/);
  }
  assert.match((await run(['--help'])).stdout, /^usage: edinplace/);
});
