import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nullLogger } from '../log/logger.js';
import { testConfig } from '../testing/relay.js';
import { createHoldRoutes, createMxRelay, type MxResolver } from './hold-routes.js';
import type { DeliveryResult, OutgoingMessage, Relay } from './types.js';

const msg = { id: 'X', from: 'a@b', to: ['u@site.test'] } as OutgoingMessage;

test('routes: target first, then HoldDomain site or MX, RelayDomain backends, RelayHost; none → null', async () => {
  const config = testConfig({
    relayHost: { kind: 'smtp', host: '127.0.0.1', port: 10025 },
    relayDomains: [{ domain: 'rd.test', backends: [{ host: '192.0.2.25', port: 25 }] }],
    holdDomains: [
      { domain: 'site.test', users: ['u'], site: { host: '192.0.2.80', port: 2525 } },
      { domain: 'mx.test', users: ['u'] },
    ],
  });
  const routes = createHoldRoutes(config, { resolver: fakeResolver(async () => [], {}) });
  try {
    assert.deepEqual(
      ['a@site.test', 'a@mx.test', 'a@RD.test', 'a@other.test'].map((a) => {
        const r = routes.routeOf(a)!;
        return [r.key, r.holdDomain, r.relay.describe()];
      }),
      [
        ['site:site.test', true, 'smtp 192.0.2.80:2525 (pooled)'],
        ['mx:mx.test', true, 'MX of mx.test'],
        ['rd:192.0.2.25:25', false, 'smtp 192.0.2.25:25 (pooled)'],
        ['main', false, 'smtp 127.0.0.1:10025 (pooled)'],
      ],
    );
    assert.equal(routes.routeOf('a@site.test')!.relay, routes.routeOf('b@site.test')!.relay, 'one relay per route');
  } finally {
    await routes.close();
  }
  const noMx = createHoldRoutes(testConfig({ holdDomains: [{ domain: 'mx.test', users: ['u'] }] }));
  assert.equal(noMx.routeOf('a@mx.test'), null, 'a HoldDomain without a site needs an MX lookup');
  assert.equal(noMx.routeOf('a@other.test'), null, 'no RelayHost, Sendmail or RelayDomain: no route');
  const target = createHoldRoutes(testConfig({}), { target: { host: '192.0.2.9', port: 26 } });
  assert.equal(target.routeOf('a@anything.test')!.relay.describe(), 'smtp 192.0.2.9:26 (pooled)');
  await target.close();
});

function fakeRelay(name: string, result: DeliveryResult, seen: string[]): Relay {
  return {
    deliver: async () => {
      seen.push(name);
      return result;
    },
    describe: () => name,
    close: async () => {},
  };
}

const dnsError = (code: string): Error => Object.assign(new Error(code), { code });

/** MX answers from `mx`; A records from `a` (a name not there: NXDOMAIN; 'fail': a timeout); no AAAA */
function fakeResolver(mx: MxResolver['resolveMx'], a: Record<string, string[] | 'fail'>): MxResolver {
  return {
    resolveMx: mx,
    resolve4: async (name) => {
      const r = a[name];
      if (r === 'fail') throw dnsError('ETIMEOUT');
      if (!r) throw dnsError('ENOTFOUND');
      return r;
    },
    resolve6: async () => {
      throw dnsError('ENODATA');
    },
  };
}

test('MX: by preference, each by its addresses, the next only while one is unreachable; implicit MX; null MX; no such domain; no address; lookup failures', async () => {
  const seen: string[] = [];
  const down: DeliveryResult = {
    kind: 'deferred',
    reply: { code: 451, enhanced: '4.4.1', text: 'x', detail: 'downstream h:25 unavailable: ECONNREFUSED' } as never,
    ms: 0,
  };
  const ok: DeliveryResult = { kind: 'accepted', response: '250 ok', ms: 0 };
  // mx1 has two addresses, both down; mx2 takes it; mx3 is never tried
  const results: Record<string, DeliveryResult> = { '192.0.2.1': down, '192.0.2.2': down, '192.0.2.3': ok };
  const relayOf = (ip: string): Relay => fakeRelay(ip, results[ip] ?? ok, seen);
  const addresses = {
    'mx1.site.test': ['192.0.2.1', '192.0.2.2'],
    'mx2.site.test': ['192.0.2.3'],
    'mx3.site.test': ['192.0.2.4'],
    'site.test': ['192.0.2.9'],
  };
  const mx = createMxRelay(
    'site.test',
    fakeResolver(
      async () => [
        { exchange: 'mx3.site.test', priority: 30 },
        { exchange: 'MX2.site.test.', priority: 20 },
        { exchange: 'mx1.site.test', priority: 10 },
      ],
      addresses,
    ),
    relayOf,
  );
  assert.equal((await mx.deliver(msg, nullLogger())).kind, 'accepted');
  assert.deepEqual(seen, ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  const via = (m: MxResolver['resolveMx'], a: Record<string, string[] | 'fail'> = addresses) =>
    createMxRelay('site.test', fakeResolver(m, a), relayOf).deliver(msg, nullLogger());
  const err = (code: string) => async () => {
    throw dnsError(code);
  };
  const replyOf = (r: DeliveryResult): string =>
    r.kind === 'rejected' || r.kind === 'deferred' ? `${r.kind} ${r.reply.code} ${r.reply.enhanced}` : r.kind;
  seen.length = 0;
  assert.equal((await via(err('ENODATA'))).kind, 'accepted');
  assert.deepEqual(seen, ['192.0.2.9'], 'no MX: the domain itself (implicit MX)');
  seen.length = 0;
  assert.equal(replyOf(await via(async () => [{ exchange: '', priority: 0 }])), 'rejected 556 5.1.10');
  assert.equal(replyOf(await via(async () => [{ exchange: '.', priority: 0 }])), 'rejected 556 5.1.10');
  assert.equal(replyOf(await via(err('ENOTFOUND'))), 'rejected 550 5.1.2');
  assert.equal(replyOf(await via(err('ETIMEOUT'))), 'deferred 451 4.4.3');
  const noAddress = async () => [{ exchange: 'nowhere.site.test', priority: 10 }];
  assert.equal(replyOf(await via(noAddress)), 'rejected 550 5.4.4', 'no exchanger with an address');
  assert.equal(replyOf(await via(noAddress, { 'nowhere.site.test': 'fail' })), 'deferred 451 4.4.3');
  assert.equal(replyOf(await via(err('ENODATA'), {})), 'rejected 550 5.4.4', 'no MX and no address');
  assert.deepEqual(seen, [], 'no connection for any of these');
});
