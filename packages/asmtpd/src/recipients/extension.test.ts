import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyDomainFile, extensionSeparator, splitExtension } from './extension.js';
import { scriptCandidates } from '../policy/lookup.js';

const SPLITS: [string, string | null, string, string | null][] = [
  ['bob', '+', 'bob', null],
  ['bob+a', '+', 'bob', 'a'],
  ['bob+a+b', '+', 'bob', 'a+b'],
  ['Bob+Lists', '+', 'bob', 'Lists'],
  ['BOB', '+', 'bob', null],
  ['bob-a-b', '-', 'bob', 'a-b'],
  ['bob+a-b', '-', 'bob+a', 'b'],
  ['mail-admin', '+', 'mail-admin', null],
  ['bob+a', null, 'bob+a', null],
  ['Bob+a', null, 'bob+a', null],
  ['bob+', '+', 'bob', ''],
  ['+bob', '+', '+bob', null],
  ['bob++x', '+', 'bob', '+x'],
  ['bob+../x', '+', 'bob', '../x'],
];

for (const [local, separator, user, extension] of SPLITS) {
  test(`splitExtension(${JSON.stringify(local)}, ${JSON.stringify(separator)}) → ${user} ${JSON.stringify(extension)}`, () => {
    assert.deepEqual(splitExtension(local, separator), { user, extension });
  });
}

const DOMAIN_CASES: [string, { user: string; prefix: string | null }, string | null, string, string][] = [
  ['anything', { user: 'bob', prefix: null }, '+', 'bob', 'anything'],
  ['Sales', { user: 'bob', prefix: 'net' }, '+', 'bob', 'net+Sales'],
  ['sales', { user: 'bob', prefix: 'net' }, '-', 'bob', 'net-sales'],
  ['a+b', { user: 'bob', prefix: 'net' }, '+', 'bob', 'net+a+b'],
  // no Separator: DomainFile still gives an extension, joined with +
  ['sales', { user: 'bob', prefix: 'net' }, null, 'bob', 'net+sales'],
  ['sales', { user: 'bob', prefix: null }, null, 'bob', 'sales'],
];

for (const [local, entry, separator, user, extension] of DOMAIN_CASES) {
  test(`applyDomainFile(${local}, ${entry.user}+${entry.prefix}, ${JSON.stringify(separator)}) → ${user} ${extension}`, () => {
    assert.deepEqual(applyDomainFile(local, entry, separator), { user, extension });
  });
}

test('DomainFile without Separator: the scripts are named with +', () => {
  const { extension } = applyDomainFile('sales', { user: 'bob', prefix: 'net' }, null);
  assert.equal(extensionSeparator(null), '+');
  assert.equal(extensionSeparator('-'), '-');
  assert.deepEqual(scriptCandidates(extension, extensionSeparator(null)), {
    kind: 'ok',
    candidates: [
      { file: 'rcpt+net+sales', default: null },
      { file: 'rcpt+net+default', default: 'sales' },
      { file: 'rcpt+default', default: 'net+sales' },
    ],
  });
});

test('a hostile local part in a DomainFile domain never names a file', () => {
  for (const local of ['../etc', '.profile', 'a/b']) {
    const { extension } = applyDomainFile(local, { user: 'bob', prefix: null }, '+');
    assert.equal(scriptCandidates(extension, '+').kind, 'invalid', local);
  }
});
