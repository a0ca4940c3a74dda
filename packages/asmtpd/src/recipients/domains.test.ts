import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatIssue, type ConfigIssue } from '../config/issues.js';
import { createDomainTable, loadDomainFile, parseDomainFile, parseDomainTarget } from './domains.js';

const SAMPLE = [
  '# virtual domains', // 1
  'example.net      bob', // 2
  'Lists.Example.   bob+lists   # comment after', // 3
  '', // 4
  '  team.example\tcarol+team+x  ', // 5
  'bad_domain.example bob', // 6
  'only.example', // 7
  'extra.example bob more', // 8
  'dup.example alice', // 9
  'DUP.example. bob', // 10
  'u.example 1bob', // 11
  'p.example bob+../x', // 12
  'q.example bob+', // 13
  'r.example bob+.hidden', // 14
  's.example bob+a/b', // 15
  't.example Bob+MixedCase', // 16
  '192.0.2.1 bob', // 17
].join('\n');

test('parseDomainFile: entries, and each bad line reported at its line and skipped', () => {
  const { map, issues } = parseDomainFile(SAMPLE, 'domains');
  assert.deepEqual(Object.fromEntries(map), {
    'example.net': { user: 'bob', prefix: null },
    'lists.example': { user: 'bob', prefix: 'lists' },
    'team.example': { user: 'carol', prefix: 'team+x' },
    'dup.example': { user: 'alice', prefix: null },
    't.example': { user: 'bob', prefix: 'MixedCase' },
  });
  assert.deepEqual(issues.map(formatIssue), [
    'domains:6: bad domain "bad_domain.example": expected a domain name: labels of letters, digits and inner hyphens, 1 to 63 characters, separated by dots',
    'domains:7: only.example: missing user (expected: domain user[+prefix])',
    'domains:8: too many words (expected: domain user[+prefix]); a comment starts with #',
    'domains:10: dup.example: given twice (first at line 9); this line is ignored',
    'domains:11: u.example: bad user "1bob": expected a user name: letters, digits, _ . -, not starting with a digit, . or -, at most 32 characters',
    'domains:12: p.example: bad prefix "../x": no /, no empty part, no part starting with .',
    'domains:13: q.example: empty prefix after + in "bob+"',
    'domains:14: r.example: bad prefix ".hidden": no /, no empty part, no part starting with .',
    'domains:15: s.example: bad prefix "a/b": no /, no empty part, no part starting with .',
    'domains:17: bad domain "192.0.2.1": expected a domain name, not an IP address',
  ]);
});

const TARGETS: [string, { user: string; prefix: string | null } | null][] = [
  ['bob', { user: 'bob', prefix: null }],
  ['mail-admin', { user: 'mail-admin', prefix: null }],
  ['mail-admin+x-y', { user: 'mail-admin', prefix: 'x-y' }],
  ['bob+a+b', { user: 'bob', prefix: 'a+b' }],
  ['bob+a++b', null],
  ['+x', null],
  ['bob+a+.b', null],
  ['', null],
];
for (const [text, entry] of TARGETS) {
  test(`parseDomainTarget(${JSON.stringify(text)})`, () => {
    const r = parseDomainTarget(text);
    if (entry === null) assert.equal(r.kind, 'error');
    else assert.deepEqual(r, { kind: 'ok', entry });
  });
}

test('parseDomainFile: CRLF, a byte order mark, an empty file', () => {
  assert.deepEqual(Object.fromEntries(parseDomainFile('\uFEFFa.example bob\r\nb.example al\r\n', 'f').map), {
    'a.example': { user: 'bob', prefix: null },
    'b.example': { user: 'al', prefix: null },
  });
  assert.deepEqual(parseDomainFile('', 'f'), { map: new Map(), issues: [] });
});

test('loadDomainFile and createDomainTable: lookups lower-cased without the trailing dot, re-read on change', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-domains-'));
  try {
    const path = join(dir, 'domains');
    writeFileSync(path, 'example.net bob+net\nbad line here\n');
    const loaded = loadDomainFile(path);
    assert.equal(loaded.kind, 'ok');
    if (loaded.kind === 'ok') {
      assert.deepEqual(Object.fromEntries(loaded.map), { 'example.net': { user: 'bob', prefix: 'net' } });
      assert.equal(loaded.issues.length, 1);
    }
    assert.deepEqual(loadDomainFile(join(dir, 'nope')), {
      kind: 'error',
      issues: [{ file: join(dir, 'nope'), line: 0, message: 'no such file' }],
    });

    let clock = 0;
    const reported: ConfigIssue[] = [];
    const table = createDomainTable(path, { now: () => clock, onIssues: (i) => reported.push(...i) });
    assert.deepEqual(reported.map(formatIssue), [
      `${path}:2: too many words (expected: domain user[+prefix]); a comment starts with #`,
    ]);
    assert.deepEqual(table.lookup('Example.NET.'), { user: 'bob', prefix: 'net' });
    assert.equal(table.lookup('other.example'), null);
    assert.equal(table.lookup('sub.example.net'), null);

    writeFileSync(path, 'other.example carol\n');
    clock += 1000;
    assert.equal(table.lookup('example.net'), null);
    assert.deepEqual(table.lookup('OTHER.example'), { user: 'carol', prefix: null });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('createDomainTable(null): no virtual domains', () => {
  assert.equal(createDomainTable(null).lookup('example.net'), null);
});
