/** ETRN's node (RFC 1985 §5): `domain`, `@domain` with the HoldDomains under it, `#queue`; bad nodes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { etrnDomains } from './etrn.js';
import { testConfig } from '../../testing/relay.js';
import type { Runtime } from '../runtime.js';

const rt = {
  config: testConfig({
    holdDomains: [
      { domain: 'example.org', users: ['a'] },
      { domain: 'office.example.org', users: ['a'] },
      { domain: 'deep.office.example.org', users: ['b'] },
      { domain: 'notexample.org', users: ['c'] },
    ],
  }),
} as Runtime;

test('etrnDomains: the node as given and its domains', () => {
  assert.deepEqual(etrnDomains('Example.ORG.', rt), { node: 'example.org', domains: ['example.org'] });
  assert.deepEqual(etrnDomains('#office.example.org', rt), {
    node: '#office.example.org',
    domains: ['office.example.org'],
  });
  assert.deepEqual(etrnDomains('@example.org', rt), {
    node: '@example.org',
    domains: ['example.org', 'office.example.org', 'deep.office.example.org'],
  });
  // a subdomain that is not a HoldDomain still names itself
  assert.deepEqual(etrnDomains('@sub.unknown.test', rt), { node: '@sub.unknown.test', domains: ['sub.unknown.test'] });
});

test('etrnDomains: bad nodes are null (501)', () => {
  for (const bad of ['', '   ', 'two words', '@', '#', 'under_score.test', '192.0.2.1', 'a..b', '@@x.test'])
    assert.equal(etrnDomains(bad, rt), null, JSON.stringify(bad));
});
