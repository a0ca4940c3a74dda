/** Glob patterns: each case judged by dash's own `case` and by compileGlob, which must agree. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { compileGlob } from './glob.js';

/** [pattern, string] pairs: literals, *, ?, sets, classes, escapes, regexp characters, Unicode. */
const CASES: Array<[string, string]> = [
  ['abc', 'abc'],
  ['abc', 'abd'],
  ['abc', 'abcd'],
  ['*', ''],
  ['*', 'anything at all'],
  ['a*c', 'abbbc'],
  ['a*c', 'ab'],
  ['*@*.spam.example', 'x@mail.spam.example'],
  ['*@*.spam.example', 'x@spam.example'],
  ['a?c', 'abc'],
  ['a?c', 'ac'],
  ['[abc]x', 'bx'],
  ['[a-c]', 'd'],
  ['[!a-c]', 'd'],
  ['[!a-c]', 'b'],
  ['[^a-c]', 'b'],
  ['[]a]', ']'],
  ['[]a]', 'a'],
  ['[!]a]', 'b'],
  ['[!]a]', ']'],
  ['[a-]', '-'],
  ['[-a]', '-'],
  ['[[:digit:]]*', '5abc'],
  ['[[:digit:]]*', 'x5'],
  ['[[:alpha:]]', '1'],
  ['[[:upper:][:digit:]]', 'Q'],
  ['[[:upper:][:digit:]]', 'q'],
  ['[[:space:]]', ' '],
  ['[[:punct:]]', '$'],
  ['[[:xdigit:]][[:xdigit:]]', 'fF'],
  ['[z-a]', 'm'],
  ['[[:nosuch:]]', '[[:nosuch:]]'],
  ['[[:nosuch:]]', 'n]'],
  ['[[:nosuch:]]', ':]'],
  ['[abc', '[abc'],
  ['[abc', 'a'],
  ['[\\]]', ']'],
  ['[a\\-z]', '-'],
  ['[a\\-z]', 'm'],
  ['\\*', '*'],
  ['\\*', 'a'],
  ['a\\?', 'a?'],
  ['a\\?', 'ab'],
  ['a\\b', 'ab'],
  ['*.example', 'x.example'],
  ['a.c', 'abc'],
  ['a+b', 'a+b'],
  ['a+b', 'aab'],
  ['(a|b)', '(a|b)'],
  ['(a|b)', 'a'],
  ['{a,b}', 'a'],
  ['{a,b}', '{a,b}'],
  ['$x^', '$x^'],
  ['a.*', 'a.bc'],
  ['a.*', 'abc'],
  ['*', 'a/b'],
  ['a?b', 'a/b'],
  ['*', 'line\nbreak'],
  ['*[0-9]-[0-9]*-[0-9]*-[0-9]*', 'dsl-192-0-2-1.dyn.example'],
  ['*[0-9]-[0-9]*-[0-9]*-[0-9]*', 'mail.example'],
];

function dashSays(pattern: string, s: string): boolean {
  // the pattern is an unquoted expansion in the case pattern: active, as a script's pattern is
  const r = spawnSync('dash', ['-c', 'case "$1" in $2) exit 0 ;; esac; exit 1', 'sh', s, pattern]);
  assert.ok(r.status === 0 || r.status === 1, `dash ran: ${r.stderr}`);
  return r.status === 0;
}

test('compileGlob (slash: true) agrees with dash on every case', () => {
  for (const [pattern, s] of CASES) {
    const want = dashSays(pattern, s);
    assert.equal(compileGlob(pattern, { slash: true }).regexp.test(s), want, `${pattern} vs ${JSON.stringify(s)}`);
  }
  // the table is not one-sided
  const verdicts = CASES.map(([p, s]) => dashSays(p, s));
  assert.ok(verdicts.filter(Boolean).length > 20 && verdicts.filter((v) => !v).length > 20);
});

test('without slash, * ? and sets never match "/" (Mail Avenger): with it they do', () => {
  for (const [p, s] of [
    ['*', 'a/b'],
    ['a?b', 'a/b'],
    ['a[/]b', 'a/b'],
    ['a[!x]b', 'a/b'],
  ]) {
    assert.equal(compileGlob(p!).regexp.test(s!), false, p);
    assert.equal(compileGlob(p!, { slash: true }).regexp.test(s!), true, p);
  }
  assert.equal(compileGlob('a/*').regexp.test('a/b'), true, 'a literal / still matches');
});

test('nocase matches letters of either case, also in sets and ranges', () => {
  assert.equal(compileGlob('*@EXAMPLE.org', { nocase: true }).regexp.test('Bob@example.ORG'), true);
  assert.equal(compileGlob('[a-c]x', { nocase: true }).regexp.test('BX'), true);
  assert.equal(compileGlob('*@EXAMPLE.org').regexp.test('Bob@example.ORG'), false);
});

test('stars are capture groups, in order', () => {
  const g = compileGlob('*@*.example');
  assert.equal(g.stars, 2);
  const m = g.regexp.exec('bob@mail.example')!;
  assert.deepEqual([m[1], m[2]], ['bob', 'mail']);
});

test('characters are code points: ? matches é whole', () => {
  assert.equal(compileGlob('caf?').regexp.test('café'), true);
  assert.equal(compileGlob('caf??').regexp.test('café'), false);
  assert.equal(compileGlob('[é]').regexp.test('é'), true);
});

test('hostile text is only text', () => {
  assert.equal(compileGlob('$(reboot)').regexp.test('$(reboot)'), true);
  assert.equal(compileGlob('`id`*').regexp.test('`id`x'), true);
  // a 4 KiB string against a pattern of a few stars ends at once
  const t0 = Date.now();
  assert.equal(compileGlob('*a*b*c*d*').regexp.test('a'.repeat(4096)), false);
  assert.ok(Date.now() - t0 < 5000);
});
