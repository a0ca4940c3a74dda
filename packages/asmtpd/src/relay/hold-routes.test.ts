import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nullLogger } from '../log/logger.js';
import { testConfig } from '../testing/relay.js';
import { createHoldRoutes, createMxRelay } from './hold-routes.js';
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
  const routes = createHoldRoutes(config, { resolveMx: async () => [] });
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

test('MX: by preference, the next only while one is unreachable; implicit MX; null MX; no such domain; lookup failure', async () => {
  const seen: string[] = [];
  const down: DeliveryResult = {
    kind: 'deferred',
    reply: { code: 451, enhanced: '4.4.1', text: 'x', detail: 'downstream h:25 unavailable: ECONNREFUSED' } as never,
    ms: 0,
  };
  const ok: DeliveryResult = { kind: 'accepted', response: '250 ok', ms: 0 };
  const relays: Record<string, DeliveryResult> = { 'mx1.site.test': down, 'mx2.site.test': ok, 'site.test': ok };
  const relayOf = (h: string): Relay => fakeRelay(h, relays[h] ?? down, seen);
  const mx = createMxRelay(
    'site.test',
    async () => [
      { exchange: 'mx2.site.test.', priority: 20 },
      { exchange: 'mx1.site.test', priority: 10 },
    ],
    relayOf,
  );
  assert.equal((await mx.deliver(msg, nullLogger())).kind, 'accepted');
  assert.deepEqual(seen, ['mx1.site.test', 'mx2.site.test']);
  const err = (code: string) => async () => {
    throw Object.assign(new Error(code), { code });
  };
  seen.length = 0;
  assert.equal((await createMxRelay('site.test', err('ENODATA'), relayOf).deliver(msg, nullLogger())).kind, 'accepted');
  assert.deepEqual(seen, ['site.test'], 'no MX: the domain itself');
  const nullMx = await createMxRelay('site.test', async () => [{ exchange: '', priority: 0 }], relayOf).deliver(
    msg,
    nullLogger(),
  );
  assert.equal(nullMx.kind === 'rejected' && `${nullMx.reply.code} ${nullMx.reply.enhanced}`, '556 5.1.10');
  const nx = await createMxRelay('site.test', err('ENOTFOUND'), relayOf).deliver(msg, nullLogger());
  assert.equal(nx.kind === 'rejected' && `${nx.reply.code} ${nx.reply.enhanced}`, '550 5.1.2');
  const fail = await createMxRelay('site.test', err('ETIMEOUT'), relayOf).deliver(msg, nullLogger());
  assert.equal(fail.kind === 'deferred' && `${fail.reply.code} ${fail.reply.enhanced}`, '451 4.4.3');
});
