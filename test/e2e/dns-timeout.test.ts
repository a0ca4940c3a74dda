/**
 * DNSTimeout holds with the system resolver (c-ares), against a real DNS server on loopback: after
 * many fast answers, as from a local unbound, c-ares' own timeout (from the answer times it has
 * seen) is ~1 s, and an answer that takes 1.5 s was a timeout at 1 s with DNSTimeout 4s. Now it is
 * an answer (the resolver asks once more on a fresh channel), and a server that never answers is a
 * timeout at DNSTimeout, not before. (Before the fix both failed at ~1 s: checked by disabling the
 * second try.) The daemon's facts use this resolver for every lookup (facts-dnsbl, faults-dns).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createDnsResolver } from 'asmtpd/dist/dns/resolver.js';
import { startDnsServer, type DnsServer, type Records } from '../support/dns-server.js';

const servers: DnsServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function warmResolver(records: Records, timeoutMs: number) {
  for (let i = 0; i < 60; i++) records[`fast${i}.test`] = [{ type: 'A', address: '192.0.2.1' }];
  const server = await startDnsServer({ records, doh: false });
  servers.push(server);
  const { host, port } = server.udp;
  const resolver = createDnsResolver({
    kind: 'system',
    servers: [{ host, port, text: `${host}:${port}` }],
    protocol: 'http',
    timeoutMs,
  });
  // many fast answers: c-ares now times its queries by them
  for (let i = 0; i < 60; i++) assert.deepEqual(await resolver.resolve4(`fast${i}.test`), ['192.0.2.1']);
  return { server, resolver };
}

test('system resolver: an answer that takes 1.5 s, after 60 fast ones, is an answer with DNSTimeout 4s', async () => {
  const { server, resolver } = await warmResolver(
    {
      'slow.test': [
        { type: 'A', address: '192.0.2.2' },
        { type: 'DELAY', ms: 1500 },
      ],
    },
    4000,
  );
  const t0 = performance.now();
  assert.deepEqual(await resolver.resolve4('slow.test'), ['192.0.2.2']);
  const ms = performance.now() - t0;
  assert.ok(ms >= 1400 && ms < 4000, `answered after ${Math.round(ms)} ms`);
  assert.ok(server.queries.some((q) => q.name === 'slow.test' && q.answeredAt !== undefined));
});

test('system resolver: a server that never answers is a timeout at DNSTimeout, not at c-ares own ~1 s', async () => {
  const { resolver } = await warmResolver({ 'hang.test': [{ type: 'HANG' }] }, 3000);
  const t0 = performance.now();
  await assert.rejects(resolver.resolve4('hang.test'), (e: { code?: string }) => e.code === 'ETIMEOUT');
  const ms = performance.now() - t0;
  assert.ok(ms >= 2800, `gave up after ${Math.round(ms)} ms, before DNSTimeout (3000 ms)`);
  assert.ok(ms < 3000 + 2000, `gave up after ${Math.round(ms)} ms`);
});
