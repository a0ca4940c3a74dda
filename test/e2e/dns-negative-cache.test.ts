// Negative caching (RFC 2308) of the daemon's tangerine resolver (packages/asmtpd/src/dns/
// negative-cache.ts) against the loopback dns2 server over DNS over HTTP: NXDOMAIN and NODATA
// answers with an SOA are kept for min(SOA TTL, MINIMUM) and answered without a query, with the
// error tangerine gives; no SOA, TTL 0 or SERVFAIL: every lookup asks.
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDnsResolver, type DnsResolver } from 'asmtpd/dist/dns/resolver.js';
import { rblName, reverseName, startDnsServer, type DnsServer, type Records } from '../support/dns-server.js';

const RECORDS: Records = {
  'host.zone.test': [{ type: 'A', address: '192.0.2.10', ttl: 300 }],
  'short.test': [{ type: 'A', address: '192.0.2.11', ttl: 300 }],
  'min.test': [{ type: 'A', address: '192.0.2.12', ttl: 300 }],
  'broken.zone.test': [{ type: 'SERVFAIL' }],
  'host.nosoa.test': [{ type: 'A', address: '192.0.2.13', ttl: 300 }],
};

let dns: DnsServer;
let nosoa: DnsServer;

before(async () => {
  dns = await startDnsServer({
    records: RECORDS,
    udp: false,
    soa: [
      { zone: 'zone.test', ttl: 300, minimum: 120 },
      { zone: 'short.test', ttl: 1, minimum: 300 }, // min(1, 300): 1 s
      { zone: 'min.test', ttl: 300, minimum: 1 }, // min(300, 1): 1 s
      { zone: 'zero.test', ttl: 0, minimum: 0 },
      { zone: 'in-addr.arpa', ttl: 300, minimum: 300 },
    ],
  });
  nosoa = await startDnsServer({ records: RECORDS, udp: false });
});
after(async () => {
  await dns.close();
  await nosoa.close();
});

function resolver(server: DnsServer, cacheEntries?: number): DnsResolver {
  const [host = '', port = ''] = server.doh.split(':');
  return createDnsResolver({
    kind: 'tangerine',
    servers: [{ host, port: Number(port), text: server.doh }],
    protocol: 'http',
    timeoutMs: 2000,
    ...(cacheEntries !== undefined ? { cacheEntries } : {}),
  });
}

async function failure(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & Record<string, unknown>;
    return { message: err.message, code: err.code, syscall: err.syscall, hostname: err.hostname, errno: err.errno };
  }
  throw new Error('expected a failure');
}

const asked = (server: DnsServer, name: string, type: string): number =>
  server.queries.filter((q) => q.name === name && q.type === type).length;

test('soa option: negative answers under a zone carry its SOA (checked through the cache)', async () => {
  // the server side: an SOA only where asked; the resolver side below relies on it
  const r = resolver(dns);
  dns.clearQueries();
  await failure(r.resolve4('nx.zone.test'));
  await failure(r.resolve4('nx.zone.test'));
  assert.equal(asked(dns, 'nx.zone.test', 'A'), 1);
});

test('NXDOMAIN with an SOA: kept, answered without a query, same error as the first', async () => {
  const r = resolver(dns);
  dns.clearQueries();
  const first = await failure(r.resolve4('Gone.Zone.test'));
  assert.equal(first.code, 'ENOTFOUND');
  const second = await failure(r.resolve4('Gone.Zone.test'));
  assert.deepEqual(second, first, 'same message, code, syscall, hostname, errno');
  await failure(r.resolve4('gone.zone.test.'));
  assert.equal(asked(dns, 'gone.zone.test', 'A'), 1, 'one query for three lookups');
  // another type of the same name is another question (and NXDOMAIN too)
  assert.equal((await failure(r.resolveTxt('gone.zone.test'))).syscall, 'queryTxt');
  assert.equal(asked(dns, 'gone.zone.test', 'TXT'), 1);
  await failure(r.resolveTxt('gone.zone.test'));
  assert.equal(asked(dns, 'gone.zone.test', 'TXT'), 1);
  // positive answers still come through
  assert.deepEqual(await r.resolve4('host.zone.test'), ['192.0.2.10']);
  assert.deepEqual(r.stats(), { lookups: 6, failures: 0 });
});

test('NODATA with an SOA: kept as ENODATA', async () => {
  const r = resolver(dns);
  dns.clearQueries();
  const first = await failure(r.resolveTxt('host.zone.test'));
  assert.equal(first.code, 'ENODATA');
  assert.deepEqual(await failure(r.resolveTxt('host.zone.test')), first);
  const mx = await failure(r.resolveMx('HOST.zone.test'));
  assert.deepEqual(await failure(r.resolveMx('HOST.zone.test')), mx);
  assert.equal(
    (await failure(r.resolveMx('host.zone.test'))).hostname,
    'host.zone.test',
    'the error names the name as asked',
  );
  assert.equal(asked(dns, 'host.zone.test', 'TXT'), 1);
  assert.equal(asked(dns, 'host.zone.test', 'MX'), 1);
  assert.deepEqual(await r.resolve4('host.zone.test'), ['192.0.2.10'], 'the A record is still there');
});

test('reverse(): an NXDOMAIN PTR is kept too', async () => {
  const r = resolver(dns);
  dns.clearQueries();
  const first = await failure(r.reverse('192.0.2.77'));
  assert.equal(first.code, 'ENOTFOUND');
  assert.deepEqual(await failure(r.reverse('192.0.2.77')), first);
  assert.equal(asked(dns, reverseName('192.0.2.77'), 'PTR'), 1);
});

test('expiry after min(SOA TTL, MINIMUM): 1 s from the TTL and from the MINIMUM', async () => {
  const r = resolver(dns);
  dns.clearQueries();
  await failure(r.resolve4('nx.short.test'));
  await failure(r.resolveTxt('min.test'));
  await failure(r.resolve4('nx.short.test'));
  await failure(r.resolveTxt('min.test'));
  assert.equal(asked(dns, 'nx.short.test', 'A'), 1);
  assert.equal(asked(dns, 'min.test', 'TXT'), 1);
  await sleep(1100);
  await failure(r.resolve4('nx.short.test'));
  await failure(r.resolveTxt('min.test'));
  assert.equal(asked(dns, 'nx.short.test', 'A'), 2, 'asked again after 1 s');
  assert.equal(asked(dns, 'min.test', 'TXT'), 2);
});

test('nothing kept without an SOA, with an SOA TTL of 0, or for SERVFAIL', async () => {
  const r = resolver(nosoa);
  nosoa.clearQueries();
  for (let i = 0; i < 3; i++) {
    assert.equal((await failure(r.resolve4('nx.zone.test'))).code, 'ENOTFOUND');
    assert.equal((await failure(r.resolveTxt('host.nosoa.test'))).code, 'ENODATA');
  }
  assert.equal(asked(nosoa, 'nx.zone.test', 'A'), 3);
  assert.equal(asked(nosoa, 'host.nosoa.test', 'TXT'), 3);

  const s = resolver(dns);
  dns.clearQueries();
  for (let i = 0; i < 3; i++) {
    assert.equal((await failure(s.resolve4('nx.zero.test'))).code, 'ENOTFOUND');
    assert.equal((await failure(s.resolve4('broken.zone.test'))).code, 'ESERVFAIL');
  }
  assert.equal(asked(dns, 'nx.zero.test', 'A'), 3);
  assert.equal(asked(dns, 'broken.zone.test', 'A'), 3);
  assert.deepEqual(s.stats(), { lookups: 6, failures: 3 });
});

test('bounded: with cacheEntries 2 the least recently used negative answer goes', async () => {
  const r = resolver(dns, 2);
  dns.clearQueries();
  const names = ['a', 'b', 'c'].map((l) => rblName('127.0.0.1', `${l}.zone.test`));
  for (const n of names) await failure(r.resolve4(n)); // a b c: a dropped
  for (const n of names.slice(1)) await failure(r.resolve4(n)); // b c from the cache
  await failure(r.resolve4(names[0]!)); // a asked again (drops b)
  assert.deepEqual(
    names.map((n) => asked(dns, n, 'A')),
    [2, 1, 1],
  );
});
