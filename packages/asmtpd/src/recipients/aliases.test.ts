import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatIssue, type ConfigIssue } from '../config/issues.js';
import {
  aliasTableOf,
  createAliasTable,
  loadAliasFile,
  parseAliases,
  parseAliasTarget,
  resolveAlias,
  MAX_ALIAS_DEPTH,
  type AliasTarget,
} from './aliases.js';

const addr = (address: string, literal = false): AliasTarget => ({ kind: 'address', address, literal });

const SAMPLE = [
  '# system aliases', // 1
  'Postmaster: root', // 2
  'root:  bob,', // 3
  '       alice@Example.org', // 4
  '', // 5
  '   # an indented comment does not continue', // 6
  'lists: :include:/etc/mail/lists,', // 7
  '\t"|/usr/local/bin/archive --all, now", /var/mail/archive', // 8
  '"odd name": \\bob', // 9
  'quoted: "john doe"@example.org, "/tmp/x y"', // 10
  'nocolon bob', // 11
  'empty:', // 12
  'spaces: bob alice', // 13
  'remote@example.org: bob', // 14
  'root: carol,', // 15
  '  dave', // 16 (continues 15, which is a duplicate)
  'inc: :include:relative', // 17
  'pipe: |', // 18
  'trailing: bob, , alice,', // 19
].join('\n');

test('parseAliases: entries and kinds of targets', () => {
  const { map } = parseAliases(SAMPLE, 'aliases');
  assert.deepEqual(Object.fromEntries([...map].map(([name, e]) => [name, [e.line, e.targets]])), {
    postmaster: [2, [addr('root')]],
    root: [3, [addr('bob'), addr('alice@Example.org')]],
    lists: [
      7,
      [
        { kind: 'include', path: '/etc/mail/lists' },
        { kind: 'command', command: '/usr/local/bin/archive --all, now' },
        { kind: 'file', path: '/var/mail/archive' },
      ],
    ],
    'odd name': [9, [addr('bob', true)]],
    quoted: [10, [addr('"john doe"@example.org'), { kind: 'file', path: '/tmp/x y' }]],
    trailing: [19, [addr('bob'), addr('alice')]],
  });
});

test('parseAliases: each bad entry reported at the line where it starts, and skipped', () => {
  assert.deepEqual(parseAliases(SAMPLE, 'aliases').issues.map(formatIssue), [
    'aliases:11: expected name: target, target, ...',
    'aliases:12: empty: no target',
    'aliases:13: spaces: bad target "bob alice": blanks in an address; separate targets with commas',
    'aliases:14: alias name "remote@example.org" has an @: aliases are local names (DomainFile is for other domains)',
    'aliases:15: root: given twice (first at line 3); this entry is ignored',
    'aliases:17: inc: bad target ":include:relative": :include: needs an absolute path',
    'aliases:18: pipe: bad target "|": empty command',
  ]);
  assert.deepEqual(parseAliases('  bob\nx: y\n', 'a').issues.map(formatIssue), [
    'a:1: continuation line (starting with a blank) with no entry above it',
  ]);
});

const TARGETS: [string, AliasTarget | 'error'][] = [
  ['bob', addr('bob')],
  ['bob@example.org', addr('bob@example.org')],
  ['\\bob', addr('bob', true)],
  ['"\\\\bob"', addr('bob', true)],
  ['|/bin/cat', { kind: 'command', command: '/bin/cat' }],
  ['"| /bin/echo \\"hi\\""', { kind: 'command', command: ' /bin/echo "hi"' }],
  ['/var/mail/x', { kind: 'file', path: '/var/mail/x' }],
  [':INCLUDE:/etc/list', { kind: 'include', path: '/etc/list' }],
  ['"a b"@example.org', addr('"a b"@example.org')],
  ['"a b"', addr('a b')],
  ['@example.org', 'error'],
  ['bob@', 'error'],
  ['\\', 'error'],
  ['a\u0001b', 'error'],
];
for (const [written, expected] of TARGETS) {
  test(`parseAliasTarget(${JSON.stringify(written)})`, () => {
    const r = parseAliasTarget(written);
    if (expected === 'error') assert.equal(r.kind, 'error');
    else assert.deepEqual(r, expected);
  });
}

const USERS = new Set(['bob', 'alice', 'carol', 'root']);
const isLocalUser = (name: string): boolean => USERS.has(name);
const isLocalDomain = (domain: string): boolean => domain === 'example.org';

const CHAINS = parseAliases(
  [
    'postmaster: root',
    'root: bob',
    'webmaster: postmaster',
    'team: bob, alice',
    'dupes: bob, bob@example.org, \\bob, root',
    'fwd: bob@elsewhere.example',
    'local-domain: alice@EXAMPLE.org.',
    'self: \\self', // a local name that is no account
    'selfish: selfish', // an alias that names itself
    'bobalias: bob, bobalias',
    'loop-a: loop-b',
    'loop-b: loop-a',
    'prog: "|/bin/true"',
    'mixed: bob, /var/mail/x',
    'nobody-here: ghost',
    'diamond: left, right',
    'left: shared',
    'right: shared',
    'shared: carol',
    ...Array.from({ length: MAX_ALIAS_DEPTH + 2 }, (_, i) => `deep${i}: deep${i + 1}`),
    `deep${MAX_ALIAS_DEPTH + 2}: alice`,
    ...Array.from({ length: MAX_ALIAS_DEPTH - 1 }, (_, i) => `ok${i}: ok${i + 1}`),
    `ok${MAX_ALIAS_DEPTH - 1}: alice`,
  ].join('\n'),
  'aliases',
).map;

const RESOLVE: [string, unknown][] = [
  ['Postmaster', { kind: 'user', user: 'bob' }],
  ['webmaster', { kind: 'user', user: 'bob' }],
  ['bob', { kind: 'none' }],
  ['team', { kind: 'multiple', targets: [addr('bob', true), addr('alice', true)] }],
  ['dupes', { kind: 'user', user: 'bob' }],
  ['fwd', { kind: 'multiple', targets: [addr('bob@elsewhere.example')] }],
  ['local-domain', { kind: 'user', user: 'alice' }],
  ['self', { kind: 'multiple', targets: [addr('self', true)] }],
  ['selfish', { kind: 'multiple', targets: [addr('selfish', true)] }],
  ['bobalias', { kind: 'multiple', targets: [addr('bob', true), addr('bobalias', true)] }],
  ['loop-a', { kind: 'multiple', targets: [addr('loop-a', true)] }],
  ['prog', { kind: 'multiple', targets: [{ kind: 'command', command: '/bin/true' }] }],
  ['mixed', { kind: 'multiple', targets: [addr('bob', true), { kind: 'file', path: '/var/mail/x' }] }],
  ['nobody-here', { kind: 'multiple', targets: [addr('ghost', true)] }],
  ['diamond', { kind: 'user', user: 'carol' }],
  ['deep0', { kind: 'multiple', targets: [addr(`deep${MAX_ALIAS_DEPTH}`)] }],
  ['ok0', { kind: 'user', user: 'alice' }],
];

for (const [name, expected] of RESOLVE) {
  test(`resolveAlias(${name})`, async () => {
    assert.deepEqual(await resolveAlias(name, aliasTableOf(CHAINS), isLocalUser, isLocalDomain), expected);
  });
}

test('resolveAlias: a loop whose name is an account resolves to it; async account lookups', async () => {
  const map = parseAliases('root: admin\nadmin: root\n', 'a').map;
  assert.deepEqual(await resolveAlias('root', aliasTableOf(map), async (n) => n === 'root'), {
    kind: 'user',
    user: 'root',
  });
  // without isLocalDomain every user@domain is remote
  const remote = parseAliases('x: alice@example.org\n', 'a').map;
  assert.deepEqual(await resolveAlias('x', aliasTableOf(remote), isLocalUser), {
    kind: 'multiple',
    targets: [addr('alice@example.org')],
  });
});

test('loadAliasFile and createAliasTable: lower-cased lookups, re-read on change', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asmtpd-aliases-'));
  try {
    const path = join(dir, 'aliases');
    writeFileSync(path, 'Root: bob\nbroken\n');
    const loaded = loadAliasFile(path);
    assert.equal(loaded.kind, 'ok');
    if (loaded.kind === 'ok') assert.deepEqual([[...loaded.map.keys()], loaded.issues.length], [['root'], 1]);
    assert.equal(loadAliasFile(join(dir, 'nope')).kind, 'error');

    let clock = 0;
    const reported: ConfigIssue[] = [];
    const table = createAliasTable(path, { now: () => clock, onIssues: (i) => reported.push(...i) });
    assert.deepEqual(reported.map(formatIssue), [`${path}:2: expected name: target, target, ...`]);
    assert.deepEqual(table.lookup('ROOT')?.targets, [addr('bob')]);
    writeFileSync(path, 'root: alice, carol\n');
    clock += 1000;
    assert.deepEqual(table.lookup('root')?.targets, [addr('alice'), addr('carol')]);
    assert.equal(createAliasTable(null).lookup('root'), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
