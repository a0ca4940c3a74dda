// Tests of the loopback DNS server (test/support/dns-server.ts): over UDP through node's resolver
// (c-ares) and over DNS-over-HTTP through tangerine.
import { strict as assert } from 'node:assert';
import { Resolver } from 'node:dns/promises';
import { after, before, test } from 'node:test';
import * as tangerineModule from 'tangerine';
import { createDohRequest } from '@asmtpd/spf/dist/doh-request.js';
import { rblName, reverseName, startDnsServer, type DnsServer, type Records } from './dns-server.js';

// tangerine is CommonJS (module.exports = class); its typings declare a default export
type TangerineClass = new (options: Record<string, unknown>, request?: unknown) => Resolver;
const Tangerine = ((tangerineModule as unknown as { default?: unknown }).default ?? tangerineModule) as TangerineClass;

const RECORDS: Records = {
  'Host.Example.TEST.': [
    { type: 'A', address: '192.0.2.10' },
    { type: 'A', address: '192.0.2.11', ttl: 300 },
    { type: 'AAAA', address: '2001:db8::10', ttl: 60 },
    { type: 'TXT', data: 'v=spf1 -all' },
  ],
  'example.test': [
    { type: 'MX', priority: 10, exchange: 'mx.example.test.' },
    { type: 'MX', priority: 20, exchange: 'MX2.example.test' },
    { type: 'TXT', data: ['part one ', 'part two'] },
  ],
  'null-mx.test': [{ type: 'MX', priority: 0, exchange: '.' }],
  [reverseName('192.0.2.10')]: [{ type: 'PTR', domain: 'host.example.test.' }],
  [reverseName('2001:db8::10')]: [{ type: 'PTR', domain: 'host.example.test' }],
  'alias.example.test': [{ type: 'CNAME', domain: 'host.example.test' }],
  'broken.test': [{ type: 'SERVFAIL' }, { type: 'A', address: '192.0.2.1' }],
  'refused.test': [{ type: 'REFUSED' }],
  'hang.test': [{ type: 'HANG' }],
  'slow.test': [
    { type: 'DELAY', ms: 250 },
    { type: 'A', address: '192.0.2.20' },
  ],
  [rblName('192.0.2.99', 'bl.test')]: [
    { type: 'A', address: '127.0.0.2' },
    { type: 'HANG', only: 'TXT' },
  ],
};

let dns: DnsServer;
let udp: Resolver;
let doh: Resolver;

before(async () => {
  dns = await startDnsServer({ records: RECORDS });
  udp = new Resolver({ timeout: 2000, tries: 1 });
  udp.setServers([`127.0.0.1:${dns.udp.port}`]);
  doh = new Tangerine(
    { servers: [dns.doh], protocol: 'http', cache: false, timeout: 1000, tries: 1 },
    createDohRequest(),
  );
});
after(() => dns.close());

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

test('helpers: reverseName and rblName', () => {
  assert.equal(reverseName('192.0.2.10'), '10.2.0.192.in-addr.arpa');
  assert.equal(rblName('192.0.2.10', 'zen.example.'), '10.2.0.192.zen.example');
  const v6 = '0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2';
  assert.equal(reverseName('2001:db8::10'), `${v6}.ip6.arpa`);
  assert.equal(rblName('2001:DB8:0:0:0:0:0:10', 'bl.test'), `${v6}.bl.test`);
  assert.equal(rblName('::ffff:192.0.2.1', 'z'), `1.0.2.0.0.0.0.c.f.f.f.f.${'0.'.repeat(20)}z`);
  assert.equal(rblName('::', 'z').split('.').length, 33);
  assert.throws(() => reverseName('nope'));
});

test('UDP: every record type, case-insensitive names, CNAME', async () => {
  assert.deepEqual((await udp.resolve4('host.example.test')).sort(), ['192.0.2.10', '192.0.2.11']);
  assert.deepEqual(await udp.resolve6('HOST.example.test'), ['2001:db8::10']);
  assert.deepEqual(await udp.resolveTxt('host.example.test'), [['v=spf1 -all']]);
  assert.deepEqual(await udp.resolveTxt('example.test'), [['part one ', 'part two']]);
  assert.deepEqual(
    (await udp.resolveMx('example.test')).sort((a, b) => a.priority - b.priority),
    [
      { priority: 10, exchange: 'mx.example.test' },
      { priority: 20, exchange: 'mx2.example.test' },
    ],
  );
  assert.deepEqual(await udp.resolveMx('null-mx.test'), [{ priority: 0, exchange: '' }]);
  assert.deepEqual(await udp.reverse('192.0.2.10'), ['host.example.test']);
  assert.deepEqual(await udp.reverse('2001:db8::10'), ['host.example.test']);
  assert.deepEqual(await udp.resolveCname('alias.example.test'), ['host.example.test']);
  assert.deepEqual((await udp.resolve4('alias.example.test')).sort(), ['192.0.2.10', '192.0.2.11']);
});

test('UDP: NXDOMAIN vs NODATA, SERVFAIL, REFUSED', async () => {
  assert.equal(await code(udp.resolve4('missing.test')), 'ENOTFOUND');
  assert.equal(await code(udp.resolveMx('host.example.test')), 'ENODATA');
  assert.equal(await code(udp.resolve4('broken.test')), 'ESERVFAIL');
  assert.equal(await code(udp.resolveTxt('broken.test')), 'ESERVFAIL');
  assert.equal(await code(udp.resolve4('refused.test')), 'EREFUSED');
});

test('UDP: HANG times out, DELAY answers late, HANG limited to one type', async () => {
  const t0 = Date.now();
  assert.equal(await code(udp.resolve4('hang.test')), 'ETIMEOUT');
  assert.ok(Date.now() - t0 >= 250);

  const slow = new Resolver({ timeout: 2000, tries: 1 });
  slow.setServers([`127.0.0.1:${dns.udp.port}`]);
  const t1 = Date.now();
  assert.deepEqual(await slow.resolve4('slow.test'), ['192.0.2.20']);
  assert.ok(Date.now() - t1 >= 240, 'answered after the delay');

  const listed = rblName('192.0.2.99', 'bl.test');
  assert.deepEqual(await udp.resolve4(listed), ['127.0.0.2']);
  assert.equal(await code(udp.resolveTxt(listed)), 'ETIMEOUT');
});

test('UDP: TTLs (0 unless given)', async () => {
  const a = await udp.resolve4('host.example.test', { ttl: true });
  assert.deepEqual(
    a.sort((x, y) => x.ttl - y.ttl),
    [
      { address: '192.0.2.10', ttl: 0 },
      { address: '192.0.2.11', ttl: 300 },
    ],
  );
  assert.deepEqual(await udp.resolve6('host.example.test', { ttl: true }), [{ address: '2001:db8::10', ttl: 60 }]);
});

test('DoH (tangerine): answers, errors, hang', async () => {
  assert.deepEqual((await doh.resolve4('Host.Example.Test')).sort(), ['192.0.2.10', '192.0.2.11']);
  assert.deepEqual(await doh.resolve6('host.example.test'), ['2001:db8::10']);
  assert.deepEqual(await doh.resolveTxt('example.test'), [['part one ', 'part two']]);
  assert.deepEqual((await doh.resolveMx('example.test')).map((m) => m.exchange).sort(), [
    'mx.example.test',
    'mx2.example.test',
  ]);
  assert.deepEqual(await doh.reverse('192.0.2.10'), ['host.example.test']);
  assert.equal(await code(doh.resolve4('missing.test')), 'ENOTFOUND');
  assert.equal(await code(doh.resolveMx('host.example.test')), 'ENODATA');
  assert.equal(await code(doh.resolve4('broken.test')), 'ESERVFAIL');
  assert.equal(await code(doh.resolve4('refused.test')), 'EREFUSED');
  const t0 = Date.now();
  assert.equal(await code(doh.resolve4('hang.test')), 'ETIMEOUT');
  assert.ok(Date.now() - t0 >= 900, `timed out after ${Date.now() - t0} ms`);
  assert.deepEqual(await doh.resolve4('slow.test'), ['192.0.2.20']);
});

test('query log, set and add', async () => {
  dns.clearQueries();
  const t0 = Date.now();
  await udp.resolveTxt('Example.TEST');
  await code(udp.resolve4('nothing.test'));
  assert.deepEqual(
    dns.queries.map((q) => [q.name, q.type]),
    [
      ['example.test', 'TXT'],
      ['nothing.test', 'A'],
    ],
  );
  assert.ok(dns.queries.every((q) => q.at >= t0 && q.at <= Date.now()));

  dns.add('Nothing.test.', { type: 'A', address: '192.0.2.30' });
  assert.deepEqual(await udp.resolve4('nothing.test'), ['192.0.2.30']);
  dns.set({ 'only.test': [{ type: 'A', address: '192.0.2.40' }] });
  assert.deepEqual(await udp.resolve4('only.test'), ['192.0.2.40']);
  assert.equal(await code(udp.resolve4('host.example.test')), 'ENOTFOUND');
  dns.set(RECORDS);
  dns.clearQueries();
  assert.equal(dns.queries.length, 0);
});

test('a server without DoH, closed while a delayed answer is pending', async () => {
  const s = await startDnsServer({ doh: false, records: { 'late.test': [{ type: 'DELAY', ms: 5000 }] } });
  assert.throws(() => s.doh);
  const r = new Resolver({ timeout: 300, tries: 1 });
  r.setServers([`${s.udp.host}:${s.udp.port}`]);
  assert.equal(await code(r.resolve4('late.test')), 'ETIMEOUT');
  await s.close();
  await s.close();
});
