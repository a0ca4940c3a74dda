/** match's options and exit codes (main called directly). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTool } from '../testing/tool-io.js';
import { main, NO_MATCH } from './match.js';

const match = (...argv: string[]) => runTool(main, argv);

test('prints the matching strings, exit 0; none matches → 67; -q prints nothing', async () => {
  assert.deepEqual(await match('*@spam.example', 'a@spam.example', 'b@ok.example', 'c@spam.example'), {
    code: 0,
    stdout: 'a@spam.example\nc@spam.example\n',
    stderr: '',
  });
  assert.deepEqual(await match('*@spam.example', 'b@ok.example'), { code: NO_MATCH, stdout: '', stderr: '' });
  assert.equal(NO_MATCH, 67);
  assert.deepEqual(await match('-q', '*@spam.example', 'a@spam.example'), { code: 0, stdout: '', stderr: '' });
  assert.equal((await match('*')).code, 67, 'no STRING: nothing matches');
});

test('-i, -s, -x CODE, -n N, -p PATTERN', async () => {
  assert.equal((await match('*@EXAMPLE.ORG', 'bob@example.org')).code, 67);
  assert.equal((await match('-i', '*@EXAMPLE.ORG', 'bob@example.org')).code, 0);
  assert.equal((await match('*', 'a/b')).code, 67, 'no / without -s');
  assert.equal((await match('-s', '*', 'a/b')).code, 0);
  assert.equal((await match('-x', '1', 'x', 'y')).code, 1);
  assert.equal((await match('-x3', 'x', 'y')).code, 3);
  assert.equal((await match('-n', '2', '*@*.example', 'bob@mail.example')).stdout, 'mail\n');
  assert.equal((await match('-qin', '1', '*@X', 'bob@x')).stdout, '');
  assert.equal((await match('-p', '-*', '--', '-x', 'x-')).stdout, '-x\n');
});

test('strings that look like options are strings: options end at the first operand', async () => {
  assert.deepEqual(await match('*', '-i', '--help', '-x@y'), { code: 0, stdout: '-i\n--help\n-x@y\n', stderr: '' });
  assert.equal((await match('-q', '--', '-*', '-rf')).code, 0);
});

test('-f FILE: one pattern a line, first match wins, comments and blanks skipped; missing file → 67', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-match-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'patterns');
  writeFileSync(file, '# dynamic names\n\n  *dsl*  \r\n*[0-9]-[0-9]*-[0-9]*\n#*mail*\n');
  assert.deepEqual(await match('-f', file, 'adsl1.example', 'mail.example', 'h-1-2-3.example'), {
    code: 0,
    stdout: 'adsl1.example\nh-1-2-3.example\n',
    stderr: '',
  });
  assert.equal((await match('-f', file, 'mail.example', '#*mail*')).code, 67, 'a comment is no pattern');
  assert.equal((await match('-f', join(dir, 'absent'), 'x')).code, 67);
  assert.equal((await match('-x', '9', '-f', join(dir, 'absent'), 'x')).code, 9);
  assert.equal((await match('-f', dir, 'x')).code, 2, 'a directory is an error');
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const r = await match('-f', fifo, 'x');
  assert.equal(r.code, 2, 'a FIFO is refused, not waited on');
  assert.match(r.stderr, /not a regular file/);
});

test("bad usage is exit 2 with a message; Mail Avenger's -g -l -r -c say they are not provided", async () => {
  for (const argv of [
    [],
    ['-x', '256', 'a', 'a'],
    ['-x', 'no', 'a', 'a'],
    ['-n', '0', 'a', 'a'],
    ['-Z', 'a'],
    ['-f'],
  ]) {
    const r = await match(...argv);
    assert.equal(r.code, 2, JSON.stringify(argv));
    assert.match(r.stderr, /^match: /);
  }
  for (const o of ['-g', '-l', '-r']) assert.match((await match(o, 'a', 'a')).stderr, /not provided/);
  assert.match((await match('-c', 'cmd', 'a', 'a')).stderr, /-c .*not provided/);
  assert.equal((await match('--help')).code, 0);
});
