import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedResolvers, type DnsOptions } from './resolver.js';

const server = { host: '127.0.0.1', port: 5353, text: '127.0.0.1:5353' };

test('sharedResolvers: tangerine is kept (with its cache) while the settings stay; system is made anew each time', () => {
  const shared = sharedResolvers();
  const doh: DnsOptions = { kind: 'tangerine', servers: [server], protocol: 'http', timeoutMs: 1000 };
  const a = shared(doh);
  assert.equal(shared({ ...doh }), a, 'a reload with the same settings keeps the tangerine resolver');
  assert.notEqual(shared({ ...doh, timeoutMs: 2000 }), a, 'other settings, another resolver');
  // c-ares reads /etc/resolv.conf only when a resolver is made: each reload must make one
  const system: DnsOptions = { kind: 'system', servers: [], protocol: 'https', timeoutMs: 1000 };
  assert.notEqual(shared(system), shared(system));
});
