import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scriptCandidates, type ScriptCandidate } from './lookup.js';

/** [file, DEFAULT] pairs, in lookup order */
type Expected = [string, string | null][];

const FOUND: [string | null, string, Expected][] = [
  [null, '+', [['rcpt', null]]],
  [
    'a',
    '+',
    [
      ['rcpt+a', null],
      ['rcpt+default', 'a'],
    ],
  ],
  [
    'a+b',
    '+',
    [
      ['rcpt+a+b', null],
      ['rcpt+a+default', 'b'],
      ['rcpt+default', 'a+b'],
    ],
  ],
  [
    'a+b+c',
    '+',
    [
      ['rcpt+a+b+c', null],
      ['rcpt+a+b+default', 'c'],
      ['rcpt+a+default', 'b+c'],
      ['rcpt+default', 'a+b+c'],
    ],
  ],
  [
    'Lists',
    '+',
    [
      ['rcpt+Lists', null],
      ['rcpt+default', 'Lists'],
    ],
  ],
  // the configured separator names the files
  [
    'a-b',
    '-',
    [
      ['rcpt-a-b', null],
      ['rcpt-a-default', 'b'],
      ['rcpt-default', 'a-b'],
    ],
  ],
  [
    'a+b',
    '-',
    [
      ['rcpt-a+b', null],
      ['rcpt-default', 'a+b'],
    ],
  ],
  [
    'x',
    '_',
    [
      ['rcpt_x', null],
      ['rcpt_default', 'x'],
    ],
  ],
  // dots inside a part are fine; only a leading one hides a file
  [
    'a.b',
    '+',
    [
      ['rcpt+a.b', null],
      ['rcpt+default', 'a.b'],
    ],
  ],
  [
    'a..b',
    '+',
    [
      ['rcpt+a..b', null],
      ['rcpt+default', 'a..b'],
    ],
  ],
  // a name met twice is listed once, at its first place
  ['default', '+', [['rcpt+default', null]]],
  [
    'a+default',
    '+',
    [
      ['rcpt+a+default', null],
      ['rcpt+default', 'a+default'],
    ],
  ],
  [
    'sub name',
    '+',
    [
      ['rcpt+sub name', null],
      ['rcpt+default', 'sub name'],
    ],
  ],
];

for (const [extension, separator, expected] of FOUND) {
  test(`scriptCandidates(${JSON.stringify(extension)}, ${separator})`, () => {
    const r = scriptCandidates(extension, separator);
    assert.equal(r.kind, 'ok', r.kind === 'invalid' ? r.reason : '');
    if (r.kind === 'ok')
      assert.deepEqual(
        r.candidates.map((c: ScriptCandidate) => [c.file, c.default]),
        expected,
      );
  });
}

test('scriptCandidates: another base (avenger.local)', () => {
  assert.deepEqual(scriptCandidates(null, '+', 'local'), {
    kind: 'ok',
    candidates: [{ file: 'local', default: null }],
  });
  assert.deepEqual(scriptCandidates('x+y', '+', 'local'), {
    kind: 'ok',
    candidates: [
      { file: 'local+x+y', default: null },
      { file: 'local+x+default', default: 'y' },
      { file: 'local+default', default: 'x+y' },
    ],
  });
});

const INVALID: [string, string, string][] = [
  ['../x', '+', 'extension contains /'],
  ['a/b', '+', 'extension contains /'],
  ['/etc/passwd', '+', 'extension contains /'],
  ['.hidden', '+', 'extension has a part starting with .'],
  ['..', '+', 'extension has a part starting with .'],
  ['a+.b', '+', 'extension has a part starting with .'],
  ['a+..', '+', 'extension has a part starting with .'],
  ['a-.x', '-', 'extension has a part starting with .'],
  ['a++b', '+', 'extension has an empty part'],
  ['', '+', 'extension has an empty part'],
  ['a+', '+', 'extension has an empty part'],
  ['+a', '+', 'extension has an empty part'],
  ['a--b', '-', 'extension has an empty part'],
  ['a\nb', '+', 'extension contains a control character'],
  ['a\0b', '+', 'extension contains a control character'],
  ['x'.repeat(251), '+', 'extension too long for a file name'],
  ['a+b', '/', 'separator "/" cannot be used in file names'],
];

for (const [extension, separator, reason] of INVALID) {
  test(`scriptCandidates(${JSON.stringify(extension.slice(0, 20))}, ${separator}) never names a file`, () => {
    assert.deepEqual(scriptCandidates(extension, separator), { kind: 'invalid', reason });
  });
}

test('scriptCandidates: under the name length limit, every candidate fits', () => {
  const r = scriptCandidates(`${'x'.repeat(240)}+a`, '+');
  assert.equal(r.kind, 'ok');
  if (r.kind === 'ok') for (const c of r.candidates) assert.ok(c.file.length <= 255 && !c.file.includes('/'));
});
