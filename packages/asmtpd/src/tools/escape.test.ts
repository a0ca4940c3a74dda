/** escape: ordinary addresses unchanged; hostile text escaped so that one more shell gives it back. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { runTool } from '../testing/tool-io.js';
import { main, shellEscape } from './escape.js';

test('an ordinary address, with an extension, and non-ASCII text come out unchanged', () => {
  for (const s of ['bob@example.org', 'bob+news@example.org', 'a.b-c_d%e@x.example', 'josé@exämple.org', 'x/y:z,w'])
    assert.equal(shellEscape(s), s);
});

test('every shell-special character gets a backslash; a newline is quoted', () => {
  assert.equal(shellEscape('$(reboot)@x'), '\\$\\(reboot\\)@x');
  assert.equal(shellEscape('`id`@x'), '\\`id\\`@x');
  assert.equal(shellEscape('"a b"@x'), '\\"a\\ b\\"@x');
  assert.equal(
    shellEscape("a'b;c|d&e<f>g*h?i[j]k~l#m!n{o}p=q\\r\tt"),
    "a\\'b\\;c\\|d\\&e\\<f\\>g\\*h\\?i\\[j\\]k\\~l\\#m\\!n\\{o\\}p\\=q\\\\r\\\tt",
  );
  assert.equal(shellEscape('a\nb'), "a'\n'b");
  assert.equal(shellEscape(''), '');
});

test('one more pass of dash gives each argument back, whole, and runs nothing', () => {
  const hostile = [
    '$(touch /tmp/pwned)@x',
    '`id`',
    '"a b"@x',
    "it's",
    'a\nb',
    'tab\there',
    '*',
    '~root',
    '#x',
    'a\\b',
    'é ü',
  ];
  for (const s of hostile) {
    // what Mail Avenger did with a bodytest line: evaluate it with a shell
    const r = spawnSync('dash', ['-c', `eval "set -- $1"; printf '%s\\0' "$#" "$@"`, 'sh', shellEscape(s)], {
      encoding: 'utf8',
      cwd: '/',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `1\0${s}\0`, JSON.stringify(s));
  }
});

test('main: escapes each argument, joined by spaces; none → exit 2; --help', async () => {
  assert.deepEqual(await runTool(main, ['a b', 'c@x']), { code: 0, stdout: 'a\\ b c@x\n', stderr: '' });
  assert.deepEqual(await runTool(main, ['--', '--help']), { code: 0, stdout: '--help\n', stderr: '' });
  const none = await runTool(main, []);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^escape: no STRING/);
  assert.match((await runTool(main, ['--help'])).stdout, /^usage: escape/);
});
