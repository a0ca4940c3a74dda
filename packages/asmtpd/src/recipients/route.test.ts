import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeRecipient, type RouteContext } from './route.js';
import { splitAddress, hasRoutingCharacters } from './address.js';

const accounts = {
  lookup: async (n: string) =>
    n.toLowerCase() === 'alice'
      ? { name: 'alice', uid: 1001, gid: 1001, gecos: '', home: '/home/alice', shell: '/bin/sh' }
      : null,
  groups: async () => [1001],
};
const ctx = (over: Partial<RouteContext> = {}): RouteContext => ({
  localDomains: new Set(['local.test']),
  mayRelay: false,
  sourceRoute: false,
  accounts,
  separator: '+',
  aliases: null,
  domains: null,
  ...over,
});

const CASES: Array<[string, Partial<RouteContext>, string]> = [
  ['alice@local.test', {}, 'user'],
  ['ALICE@Local.Test.', {}, 'user'],
  ['bob@local.test', {}, 'unknown'],
  ['postmaster@local.test', {}, 'postmaster'],
  ['"postmaster"@local.test', {}, 'postmaster'],
  ['postmaster', {}, 'postmaster'],
  ['x@other.test', {}, 'denied'],
  ['x@other.test', { mayRelay: true }, 'relay'],
  ['u%other.test@local.test', { mayRelay: true }, 'denied'],
  ['other!u@local.test', {}, 'denied'],
  ['"u@other.test"@local.test', {}, 'denied'],
  ['u@other.test@local.test', {}, 'denied'],
  ['alice@local.test', { sourceRoute: true }, 'denied'],
];

for (const [addr, over, kind] of CASES) {
  test(`${addr} ${JSON.stringify(over)} → ${kind}`, async () => {
    assert.equal((await routeRecipient(addr, ctx(over))).kind, kind);
  });
}

test('extensions: alice+a+b@local.test is alice with extension a+b', async () => {
  const r = await routeRecipient('alice+a+b@local.test', ctx());
  assert.equal(r.kind, 'user');
  if (r.kind === 'user') assert.equal(r.extension, 'a+b');
});

test('splitAddress splits at the last @ outside quotes', () => {
  assert.deepEqual(splitAddress('"a@b"@C.Example.'), { local: '"a@b"', domain: 'c.example' });
  assert.equal(hasRoutingCharacters('"a b"'), false);
  assert.equal(hasRoutingCharacters('"a%b"'), true);
});
